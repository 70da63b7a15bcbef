//! The `ports` and `gpu` interfaces as this host provides them: declared, so that every
//! stage component links, but answering each call with a clear `unavailable` error (ports)
//! or `no-device` (gpu) rather than a trap. No handle is ever created, so the resource
//! methods can only be reached with handles the host never gave out.

use super::bindings::{gpu, ports};
use super::StageState;
use wasmtime::component::Resource;

/// A port handle. None is ever created by this host.
pub struct InputPortHandle;
/// A port handle. None is ever created by this host.
pub struct OutputPortHandle;
/// A device buffer. None is ever created by this host.
pub struct BufferHandle;
/// A kernel module. None is ever created by this host.
pub struct ModuleHandle;

const NO_PORTS: &str =
    "this Ward host does not provide streaming ports yet; exchange data through volumes";

fn ports_unavailable() -> ports::PortError {
    ports::PortError::Unavailable(NO_PORTS.to_string())
}

impl ports::Host for StageState {
    fn open_input(&mut self, _name: String) -> Result<Resource<InputPortHandle>, ports::PortError> {
        Err(ports_unavailable())
    }

    fn open_output(
        &mut self,
        _name: String,
    ) -> Result<Resource<OutputPortHandle>, ports::PortError> {
        Err(ports_unavailable())
    }
}

impl ports::HostInputPort for StageState {
    fn recv(
        &mut self,
        _port: Resource<InputPortHandle>,
    ) -> Result<Option<Vec<u8>>, ports::PortError> {
        Err(ports_unavailable())
    }

    fn drop(&mut self, _port: Resource<InputPortHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl ports::HostOutputPort for StageState {
    fn send(
        &mut self,
        _port: Resource<OutputPortHandle>,
        _message: Vec<u8>,
    ) -> Result<(), ports::PortError> {
        Err(ports_unavailable())
    }

    fn close(&mut self, _port: Resource<OutputPortHandle>) {}

    fn drop(&mut self, _port: Resource<OutputPortHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

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
