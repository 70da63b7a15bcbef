//! What a GPU operation answers a stage when it cannot be done.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuError {
    #[error("there is no GPU on this node")]
    NoDevice,
    #[error("over the stage's GPU memory quota: {free} bytes left of it")]
    QuotaExceeded { free: u64 },
    #[error(
        "over the stage's GPU memory quota: the module takes {needs} bytes of device memory ({declared} bytes of .global and .const variables in its PTX{}), {free} bytes are left of the quota of {quota}",
        by_the_driver(.measured)
    )]
    ModuleOverQuota {
        /// What the module is charged: the larger of `declared` and `measured`.
        needs: u64,
        /// Counted from the PTX.
        declared: u64,
        /// The driver's free memory before the load less after it, when there is a device.
        measured: Option<u64>,
        free: u64,
        quota: u64,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("compile: {0}")]
    Compile(String),
    #[error("launch: {0}")]
    Launch(String),
    #[error("the stage's deadline passed while waiting on the device or the compiler")]
    Deadline,
}

fn by_the_driver(measured: &Option<u64>) -> String {
    measured.map_or(String::new(), |m| {
        format!("; {m} bytes by the driver's free-memory figure")
    })
}
