//! What a GPU operation answers a stage when it cannot be done.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuError {
    #[error("there is no GPU on this node")]
    NoDevice,
    #[error("over the stage's GPU memory quota: {free} bytes left of it")]
    QuotaExceeded { free: u64 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("compile: {0}")]
    Compile(String),
    #[error("launch: {0}")]
    Launch(String),
    #[error("the stage's deadline passed while waiting on the device")]
    Deadline,
}
