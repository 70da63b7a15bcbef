//! The `gpu` interface as this host provides it: declared, so that every stage component
//! links, but answering each call with `no-device` rather than a trap. No handle is ever
//! created, so the resource methods can only be reached with handles the host never gave out.

use super::bindings::gpu;
use super::StageState;
use wasmtime::component::Resource;

/// A device buffer. None is ever created by this host.
pub struct BufferHandle;
/// A kernel module. None is ever created by this host.
pub struct ModuleHandle;

impl gpu::Host for StageState {
    fn device(&mut self) -> Option<gpu::DeviceInfo> {
        None
    }

    fn alloc(&mut self, _bytes: u64) -> Result<Resource<BufferHandle>, gpu::GpuError> {
        Err(gpu::GpuError::NoDevice)
    }

    fn load(
        &mut self,
        _source: gpu::KernelSource,
    ) -> Result<Resource<ModuleHandle>, gpu::GpuError> {
        Err(gpu::GpuError::NoDevice)
    }

    fn launch(
        &mut self,
        _module: Resource<ModuleHandle>,
        _entry: String,
        _grid: gpu::Dim3,
        _block: gpu::Dim3,
        _shared_bytes: u32,
        _args: Vec<gpu::KernelArg>,
    ) -> Result<(), gpu::GpuError> {
        Err(gpu::GpuError::NoDevice)
    }

    fn synchronize(&mut self) -> Result<(), gpu::GpuError> {
        Err(gpu::GpuError::NoDevice)
    }
}

impl gpu::HostBuffer for StageState {
    fn len(&mut self, _buffer: Resource<BufferHandle>) -> u64 {
        0
    }

    fn write(
        &mut self,
        _buffer: Resource<BufferHandle>,
        _offset: u64,
        _data: Vec<u8>,
    ) -> Result<(), gpu::GpuError> {
        Err(gpu::GpuError::NoDevice)
    }

    fn read(
        &mut self,
        _buffer: Resource<BufferHandle>,
        _offset: u64,
        _len: u64,
    ) -> Result<Vec<u8>, gpu::GpuError> {
        Err(gpu::GpuError::NoDevice)
    }

    fn drop(&mut self, _buffer: Resource<BufferHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl gpu::HostModule for StageState {
    fn drop(&mut self, _module: Resource<ModuleHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}
