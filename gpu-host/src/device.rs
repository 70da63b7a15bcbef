//! Finding the GPU: the driver is loaded at run time; without it, or without a device, the
//! node has none and every stage is told so.

use crate::limits::Limits;
use crate::nvrtc::Compiler;
use crate::session::Session;
use cudarc::driver::sys::CUdevice_attribute as Attr;
use cudarc::driver::CudaContext;
use std::sync::Arc;

/// The device stages may use.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    pub total_memory: u64,
    pub compute_capability: (u32, u32),
    pub limits: Limits,
}

/// This node's GPU, if it has one. One CUDA context (the device's primary context) serves
/// every stage; each stage's buffers and modules live in its own [`Session`].
#[derive(Clone)]
pub struct Gpu {
    device: Option<(Arc<CudaContext>, DeviceInfo)>,
    /// Compiles stages' CUDA C (NVRTC in a child process).
    compiler: Option<Compiler>,
}

impl Gpu {
    /// A node without a GPU.
    pub fn none() -> Gpu {
        Gpu {
            device: None,
            compiler: None,
        }
    }

    /// The same GPU, compiling CUDA C with `compiler`.
    pub fn with_compiler(self, compiler: Compiler) -> Gpu {
        Gpu {
            compiler: Some(compiler),
            ..self
        }
    }

    pub fn compiler(&self) -> Option<&Compiler> {
        self.compiler.as_ref()
    }

    /// Device 0, if the driver loads and finds one; none otherwise (never a panic). CUDA C
    /// is compiled by this executable's `__nvrtc` subcommand.
    pub fn probe() -> Gpu {
        // Looks for libcuda without calling into it: cudarc panics when a library it calls
        // is missing.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Gpu::none();
        }
        let opened = std::panic::catch_unwind(|| {
            let ctx = CudaContext::new(0).ok()?;
            let attr = |a| ctx.attribute(a).ok().map(|v| v.max(0) as u32);
            let (major, minor) = ctx.compute_capability().ok()?;
            let info = DeviceInfo {
                name: ctx.name().ok()?,
                total_memory: ctx.total_mem().ok()? as u64,
                compute_capability: (major.max(0) as u32, minor.max(0) as u32),
                limits: Limits {
                    max_threads_per_block: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
                    max_block: [
                        attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)?,
                        attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y)?,
                        attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z)?,
                    ],
                    max_grid: [
                        attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?,
                        attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)?,
                        attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)?,
                    ],
                    max_shared_bytes: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)?,
                },
            };
            Some((ctx, info))
        });
        match opened {
            Ok(Some(device)) => Gpu {
                device: Some(device),
                compiler: Compiler::of_this_executable(),
            },
            _ => Gpu::none(),
        }
    }

    pub fn info(&self) -> Option<&DeviceInfo> {
        self.device.as_ref().map(|(_, info)| info)
    }

    /// A stage's view of the GPU, allowed `quota` bytes of device memory.
    pub fn session(&self, quota: u64) -> Session {
        Session::new(self.device.clone(), self.compiler.clone(), quota)
    }
}
