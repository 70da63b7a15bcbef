//! CUDA for sandboxed stages, brokered by the host: a stage names buffers and modules by
//! handle and never sees a device pointer. The driver and NVRTC are loaded at run time, so
//! this builds and its tests run on a machine without a GPU or a CUDA toolkit; there
//! [`Gpu::probe`] finds no device and every device operation answers
//! [`GpuError::NoDevice`].

mod device;
mod error;
mod limits;
pub mod nvrtc;
mod ptx;
mod session;

pub use device::{DeviceInfo, Gpu};
pub use error::GpuError;
pub use limits::{check_launch, Dim3, Limits};
pub use ptx::{
    check_args, entry_params, kernel_params, module_memory, ArgKind, ModuleMemory, Param, ParamType,
};
pub use session::{BufferId, KernelArg, ModuleId, Session};
