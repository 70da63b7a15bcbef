//! `ward:stage/gpu` on the GPU host: buffers and modules are resources of the stage's store,
//! so another stage cannot name them, and everything is freed when the stage ends. Without a
//! GPU, `device` answers none and the rest `no-device`.

use super::bindings::gpu::{self, GpuError as WitError};
use super::StageState;
use gpu_host::{BufferId, Dim3, GpuError, KernelArg, ModuleId};
use wasmtime::component::Resource;

/// A device buffer of this stage.
pub struct BufferHandle(BufferId);
/// A loaded kernel module of this stage.
pub struct ModuleHandle(ModuleId);

fn wit(e: GpuError) -> WitError {
    match e {
        GpuError::NoDevice => WitError::NoDevice,
        GpuError::QuotaExceeded { free } => WitError::QuotaExceeded(free),
        GpuError::ModuleOverQuota { free, .. } => WitError::QuotaExceeded(free),
        GpuError::InvalidArgument(m) => WitError::InvalidArgument(m),
        GpuError::Compile(m) => WitError::Compile(m),
        GpuError::Launch(m) => WitError::Launch(m),
        GpuError::Deadline => WitError::Deadline,
    }
}

fn dim(d: gpu::Dim3) -> Dim3 {
    Dim3 {
        x: d.x,
        y: d.y,
        z: d.z,
    }
}

impl gpu::Host for StageState {
    fn device(&mut self) -> Option<gpu::DeviceInfo> {
        let quota = self.gpu.quota();
        self.gpu.info().map(|d| gpu::DeviceInfo {
            name: d.name.clone(),
            total_memory: d.total_memory,
            compute_capability: d.compute_capability,
            quota,
        })
    }

    fn alloc(&mut self, bytes: u64) -> Result<Resource<BufferHandle>, WitError> {
        let id = self.gpu.alloc(bytes).map_err(wit)?;
        self.table.push(BufferHandle(id)).map_err(|_| {
            self.gpu.free(id);
            WitError::InvalidArgument("the stage holds too many handles".into())
        })
    }

    fn load(&mut self, source: gpu::KernelSource) -> Result<Resource<ModuleHandle>, WitError> {
        let loaded = match &source {
            gpu::KernelSource::Ptx(p) => self.gpu.load(Some(p), None),
            gpu::KernelSource::Cuda(c) => self.gpu.load(None, Some(c)),
        };
        let id = loaded.map_err(|e| {
            // The stage is told only what is left; its log says what the module takes.
            if let GpuError::ModuleOverQuota { .. } = &e {
                self.log.line("WARN", &e.to_string());
            }
            wit(e)
        })?;
        self.table.push(ModuleHandle(id)).map_err(|_| {
            self.gpu.unload(id);
            WitError::InvalidArgument("the stage holds too many handles".into())
        })
    }

    fn launch(
        &mut self,
        module: Resource<ModuleHandle>,
        entry: String,
        grid: gpu::Dim3,
        block: gpu::Dim3,
        shared_bytes: u32,
        args: Vec<gpu::KernelArg>,
    ) -> Result<(), WitError> {
        let stale =
            |what: &str| WitError::InvalidArgument(format!("a stale or foreign {what} handle"));
        let module = self.table.get(&module).map_err(|_| stale("module"))?.0;
        let mut resolved = Vec::with_capacity(args.len());
        for a in &args {
            resolved.push(match a {
                gpu::KernelArg::Buffer(b) => {
                    KernelArg::Buffer(self.table.get(b).map_err(|_| stale("buffer"))?.0)
                }
                gpu::KernelArg::Int32(v) => KernelArg::Int32(*v),
                gpu::KernelArg::Uint32(v) => KernelArg::Uint32(*v),
                gpu::KernelArg::Int64(v) => KernelArg::Int64(*v),
                gpu::KernelArg::Uint64(v) => KernelArg::Uint64(*v),
                gpu::KernelArg::Float32(v) => KernelArg::Float32(*v),
                gpu::KernelArg::Float64(v) => KernelArg::Float64(*v),
            });
        }
        self.gpu
            .launch(
                module,
                &entry,
                dim(grid),
                dim(block),
                shared_bytes,
                &resolved,
            )
            .map_err(wit)
    }

    fn synchronize(&mut self) -> Result<(), WitError> {
        self.gpu.synchronize().map_err(wit)
    }
}

impl gpu::HostBuffer for StageState {
    fn len(&mut self, buffer: Resource<BufferHandle>) -> u64 {
        self.table
            .get(&buffer)
            .ok()
            .and_then(|b| self.gpu.len(b.0).ok())
            .unwrap_or(0)
    }

    fn write(
        &mut self,
        buffer: Resource<BufferHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), WitError> {
        let id = self
            .table
            .get(&buffer)
            .map_err(|_| WitError::InvalidArgument("a stale or foreign buffer handle".into()))?
            .0;
        self.gpu.write(id, offset, &data).map_err(wit)
    }

    fn read(
        &mut self,
        buffer: Resource<BufferHandle>,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, WitError> {
        let id = self
            .table
            .get(&buffer)
            .map_err(|_| WitError::InvalidArgument("a stale or foreign buffer handle".into()))?
            .0;
        self.gpu.read(id, offset, len).map_err(wit)
    }

    fn drop(&mut self, buffer: Resource<BufferHandle>) -> wasmtime::Result<()> {
        let b = self.table.delete(buffer)?;
        self.gpu.free(b.0);
        Ok(())
    }
}

impl gpu::HostModule for StageState {
    fn drop(&mut self, module: Resource<ModuleHandle>) -> wasmtime::Result<()> {
        let m = self.table.delete(module)?;
        self.gpu.unload(m.0);
        Ok(())
    }
}
