//! One stage's GPU state: its buffers and modules by handle (another stage cannot name
//! them), its memory quota, and checked copies and launches. Everything is freed when the
//! session is dropped, whatever the stage did.

use crate::device::DeviceInfo;
use crate::limits::{check_launch, Dim3};
use crate::nvrtc::{self, Compiler};
use crate::ptx::{check_args, kernel_params, module_memory, ArgKind, Param};
use crate::GpuError;
use cudarc::driver::{CudaContext, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleId(pub u32);

/// One kernel argument as a stage gives it; buffers by handle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KernelArg {
    Buffer(BufferId),
    Int32(i32),
    Uint32(u32),
    Int64(i64),
    Uint64(u64),
    Float32(f32),
    Float64(f64),
}

impl KernelArg {
    fn kind(&self) -> ArgKind {
        match self {
            KernelArg::Buffer(_) => ArgKind::Buffer,
            KernelArg::Int32(_) => ArgKind::Int32,
            KernelArg::Uint32(_) => ArgKind::Uint32,
            KernelArg::Int64(_) => ArgKind::Int64,
            KernelArg::Uint64(_) => ArgKind::Uint64,
            KernelArg::Float32(_) => ArgKind::Float32,
            KernelArg::Float64(_) => ArgKind::Float64,
        }
    }
}

struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    info: DeviceInfo,
}

/// A loaded module: its PTX, the device memory charged for it, and its kernels'
/// parameters as they were first read.
struct Module {
    module: Arc<CudaModule>,
    ptx: String,
    charge: u64,
    kernels: HashMap<String, Vec<Param>>,
}

pub struct Session {
    device: Option<Device>,
    compiler: Option<Compiler>,
    quota: u64,
    used: u64,
    next: u32,
    buffers: HashMap<BufferId, CudaSlice<u8>>,
    modules: HashMap<ModuleId, Module>,
    deadline: Option<Instant>,
}

/// Held while device memory is taken (an allocation, a module load), so the driver's
/// free-memory figure around a load changes by that load alone among this process's.
static TAKING_DEVICE_MEMORY: Mutex<()> = Mutex::new(());

/// The `.global` and `.const` bytes `ptx` declares; PTX whose variables cannot be counted
/// is not loaded.
fn declared_memory(ptx: &str) -> Result<u64, GpuError> {
    module_memory(ptx)
        .map(|m| m.total())
        .map_err(|e| GpuError::Compile(format!("the PTX does not load: {e}")))
}

/// What a module loaded with `declared` bytes of `.global`/`.const` variables is charged,
/// given the driver's `measured` drop in free memory around the load: the larger, when it
/// fits in `free`.
fn module_charge(
    declared: u64,
    measured: Option<u64>,
    free: u64,
    quota: u64,
) -> Result<u64, GpuError> {
    let needs = declared.max(measured.unwrap_or(0));
    if needs > free {
        return Err(GpuError::ModuleOverQuota {
            needs,
            declared,
            measured,
            free,
            quota,
        });
    }
    Ok(needs)
}

/// Bytes `offset..offset + len` of a buffer of `size`, if they lie within it.
fn check_range(size: u64, offset: u64, len: u64) -> Result<std::ops::Range<usize>, GpuError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(offset as usize..end as usize),
        _ => Err(GpuError::InvalidArgument(format!(
            "bytes {offset}..{} are outside the buffer of {size}",
            offset.saturating_add(len)
        ))),
    }
}

/// Whether `bytes` more fit in `quota` with `used` taken; the bytes free before it.
fn reserve(used: u64, quota: u64, bytes: u64) -> Result<u64, GpuError> {
    let free = quota.saturating_sub(used);
    if bytes == 0 {
        return Err(GpuError::InvalidArgument("a buffer of 0 bytes".into()));
    }
    if bytes > free {
        return Err(GpuError::QuotaExceeded { free });
    }
    Ok(free)
}

fn driver(e: cudarc::driver::DriverError) -> GpuError {
    GpuError::Launch(e.to_string())
}

impl Session {
    pub(crate) fn new(
        device: Option<(Arc<CudaContext>, DeviceInfo)>,
        compiler: Option<Compiler>,
        quota: u64,
    ) -> Session {
        // A stream of the stage's own: its work is ordered, and waiting on it waits for it
        // alone.
        let device = device.and_then(|(ctx, info)| {
            let stream = ctx.new_stream().ok()?;
            Some(Device { ctx, stream, info })
        });
        Session {
            device,
            compiler,
            quota,
            used: 0,
            next: 0,
            buffers: HashMap::new(),
            modules: HashMap::new(),
            deadline: None,
        }
    }

    pub fn info(&self) -> Option<&DeviceInfo> {
        self.device.as_ref().map(|d| &d.info)
    }

    pub fn quota(&self) -> u64 {
        self.quota
    }

    fn device(&self) -> Result<&Device, GpuError> {
        self.device.as_ref().ok_or(GpuError::NoDevice)
    }

    fn id(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    /// `bytes` of zeroed device memory under the quota.
    pub fn alloc(&mut self, bytes: u64) -> Result<BufferId, GpuError> {
        let device = self.device()?;
        let free = reserve(self.used, self.quota, bytes)?;
        let len = usize::try_from(bytes).map_err(|_| GpuError::QuotaExceeded { free })?;
        let slice = {
            let _taking = TAKING_DEVICE_MEMORY
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            device.stream.alloc_zeros::<u8>(len).map_err(driver)?
        };
        let id = BufferId(self.id());
        self.used += bytes;
        self.buffers.insert(id, slice);
        Ok(id)
    }

    fn buffer(&self, id: BufferId) -> Result<&CudaSlice<u8>, GpuError> {
        self.buffers.get(&id).ok_or_else(|| {
            GpuError::InvalidArgument(format!(
                "buffer handle {} is not this stage's or was freed",
                id.0
            ))
        })
    }

    pub fn len(&self, id: BufferId) -> Result<u64, GpuError> {
        Ok(self.buffer(id)?.len() as u64)
    }

    fn range(
        &self,
        id: BufferId,
        offset: u64,
        len: u64,
    ) -> Result<std::ops::Range<usize>, GpuError> {
        check_range(self.len(id)?, offset, len)
    }

    pub fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        let range = self.range(id, offset, data.len() as u64)?;
        // Copies queue behind the stage's kernels and can block in the driver: wait for
        // those first, under the deadline.
        self.synchronize()?;
        let stream = self.device()?.stream.clone();
        {
            let slice = self.buffers.get_mut(&id).expect("checked above");
            stream
                .memcpy_htod(data, &mut slice.slice_mut(range))
                .map_err(driver)?;
        }
        // The copy reads `data` asynchronously: it must be done before the call returns.
        self.synchronize()
    }

    pub fn read(&self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        let range = self.range(id, offset, len)?;
        self.synchronize()?;
        let stream = &self.device()?.stream;
        let mut out = vec![0u8; range.len()];
        stream
            .memcpy_dtoh(&self.buffer(id)?.slice(range), &mut out[..])
            .map_err(driver)?;
        self.synchronize()?;
        Ok(out)
    }

    /// Forgets a module (the driver unloads it when its last launch is done) and gives its
    /// memory back to the quota.
    pub fn unload(&mut self, id: ModuleId) {
        if let Some(m) = self.modules.remove(&id) {
            self.used -= m.charge;
        }
    }

    pub fn free(&mut self, id: BufferId) {
        if let Some(slice) = self.buffers.remove(&id) {
            self.used -= slice.len() as u64;
        }
    }

    /// Loads PTX, or CUDA C compiled for this device with NVRTC (in a child process, under
    /// the compiler's limits and the stage's deadline). The module's `.global` and `.const`
    /// variables are charged to the quota, counted from the PTX before it is loaded and by
    /// the driver's free memory around the load, whichever is larger.
    pub fn load(&mut self, ptx: Option<&str>, cuda: Option<&str>) -> Result<ModuleId, GpuError> {
        let device = self.device()?;
        let ptx = match (ptx, cuda) {
            (Some(p), _) => p.to_string(),
            (None, Some(src)) => {
                let compiler = self
                    .compiler
                    .as_ref()
                    .ok_or_else(|| GpuError::Compile("this node has no CUDA C compiler".into()))?;
                let (major, minor) = device.info.compute_capability;
                compiler.compile(src, nvrtc::arch_for(major, minor), self.deadline)?
            }
            (None, None) => return Err(GpuError::InvalidArgument("no kernel source".into())),
        };
        let declared = declared_memory(&ptx)?;
        let free = self.quota.saturating_sub(self.used);
        module_charge(declared, None, free, self.quota)?;
        let (module, measured) = {
            let _taking = TAKING_DEVICE_MEMORY
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let before = device.ctx.mem_get_info().ok();
            let module = device
                .ctx
                .load_module(Ptx::from_src(ptx.clone()))
                .map_err(|e| GpuError::Compile(format!("the PTX does not load: {e}")))?;
            let after = device.ctx.mem_get_info().ok();
            let measured = before
                .zip(after)
                .map(|((before, _), (after, _))| before.saturating_sub(after) as u64);
            (module, measured)
        };
        // Over the quota by the driver's figure, the module is unloaded again when dropped.
        let charge = module_charge(declared, measured, free, self.quota)?;
        let id = ModuleId(self.id());
        self.used += charge;
        self.modules.insert(
            id,
            Module {
                module,
                ptx,
                charge,
                kernels: HashMap::new(),
            },
        );
        Ok(id)
    }

    /// Device memory charged for `module`.
    pub fn module_charge(&self, module: ModuleId) -> Option<u64> {
        self.modules.get(&module).map(|m| m.charge)
    }

    /// Launches `entry` of `module` after checking its shape against the device and its
    /// arguments against the kernel's parameters.
    pub fn launch(
        &mut self,
        module: ModuleId,
        entry: &str,
        grid: Dim3,
        block: Dim3,
        shared: u32,
        args: &[KernelArg],
    ) -> Result<(), GpuError> {
        let device = self.device()?;
        check_launch(grid, block, shared, &device.info.limits)
            .map_err(GpuError::InvalidArgument)?;
        let loaded = self.modules.get_mut(&module).ok_or_else(|| {
            GpuError::InvalidArgument(format!("module handle {} is not this stage's", module.0))
        })?;
        if !loaded.kernels.contains_key(entry) {
            let params = kernel_params(&loaded.ptx, entry).map_err(GpuError::InvalidArgument)?;
            loaded.kernels.insert(entry.to_string(), params);
        }
        let kinds: Vec<ArgKind> = args.iter().map(KernelArg::kind).collect();
        check_args(entry, &loaded.kernels[entry], &kinds).map_err(GpuError::InvalidArgument)?;
        let module = loaded.module.clone();
        let device = self.device()?;
        let function = module
            .load_function(entry)
            .map_err(|e| GpuError::InvalidArgument(format!("kernel '{entry}': {e}")))?;
        for a in args {
            if let KernelArg::Buffer(b) = a {
                self.buffer(*b)?;
            }
        }
        let mut builder = device.stream.launch_builder(&function);
        for a in args {
            match a {
                KernelArg::Buffer(b) => builder.arg(&self.buffers[b]),
                KernelArg::Int32(v) => builder.arg(v),
                KernelArg::Uint32(v) => builder.arg(v),
                KernelArg::Int64(v) => builder.arg(v),
                KernelArg::Uint64(v) => builder.arg(v),
                KernelArg::Float32(v) => builder.arg(v),
                KernelArg::Float64(v) => builder.arg(v),
            };
        }
        let config = LaunchConfig {
            grid_dim: (grid.x, grid.y, grid.z),
            block_dim: (block.x, block.y, block.z),
            shared_mem_bytes: shared,
        };
        // Arguments were checked against the kernel's own parameter list above.
        unsafe { builder.launch(config) }.map_err(driver)?;
        Ok(())
    }

    /// The stage's wall-clock deadline: waiting on the device stops there.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// Waits until the stage's launches have finished, or its deadline passes: the wait
    /// polls an event rather than blocking in the driver, so a kernel that never ends
    /// cannot hold the stage past its deadline.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        let device = self.device()?;
        let done = device.stream.record_event(None).map_err(driver)?;
        let mut pause = Duration::from_micros(20);
        loop {
            if done.try_is_complete().map_err(driver)? {
                return Ok(());
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(GpuError::Deadline);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_device_every_operation_says_so() {
        let mut s = Session::new(None, None, 1 << 20);
        assert_eq!(s.alloc(1024), Err(GpuError::NoDevice));
        assert_eq!(
            s.load(None, Some("__global__ void k() {}")),
            Err(GpuError::NoDevice)
        );
        assert_eq!(s.synchronize(), Err(GpuError::NoDevice));
        assert!(s.info().is_none());
    }

    #[test]
    fn allocations_beyond_the_quota_are_refused_with_what_is_left() {
        assert_eq!(reserve(0, 1000, 1000), Ok(1000));
        assert_eq!(
            reserve(600, 1000, 500),
            Err(GpuError::QuotaExceeded { free: 400 })
        );
        assert!(matches!(
            reserve(0, 1000, 0),
            Err(GpuError::InvalidArgument(_))
        ));
        // Without a device, that is the answer, whatever the size.
        assert_eq!(
            Session::new(None, None, 1000).alloc(1001),
            Err(GpuError::NoDevice)
        );
    }

    #[test]
    fn a_modules_global_memory_is_charged_and_refused_past_the_quota() {
        let ptx = ".version 8.8\n.target sm_80\n.address_size 64\n.global .align 4 .b8 pool[6000];\n.const .align 4 .f32 w[27];\n.visible .entry k()\n{\n\tret;\n}\n";
        let declared = declared_memory(ptx).unwrap();
        assert_eq!(declared, 6108);
        assert_eq!(module_charge(declared, None, 8192, 8192), Ok(6108));
        let err = module_charge(declared, None, 4096, 8192).unwrap_err();
        assert_eq!(
            err.to_string(),
            "over the stage's GPU memory quota: the module takes 6108 bytes of device memory (6108 bytes of .global and .const variables in its PTX), 4096 bytes are left of the quota of 8192"
        );
        assert_eq!(
            err,
            GpuError::ModuleOverQuota {
                needs: 6108,
                declared: 6108,
                measured: None,
                free: 4096,
                quota: 8192
            }
        );
        // With a device, the driver's figure counts when it is the larger.
        assert_eq!(
            module_charge(declared, Some(2 << 20), 4 << 20, 4 << 20),
            Ok(2 << 20)
        );
        assert_eq!(module_charge(declared, Some(0), 8192, 8192), Ok(6108));
        let err = module_charge(declared, Some(2 << 20), 1 << 20, 4 << 20).unwrap_err();
        assert!(err.to_string().contains("(6108 bytes of .global and .const variables in its PTX; 2097152 bytes by the driver's free-memory figure)"), "{err}");
        // Variables that cannot be counted do not load.
        assert!(
            matches!(declared_memory(".global .b8 x[N];"), Err(GpuError::Compile(m)) if m.contains("dimension [N] of 'x'"))
        );
    }

    #[test]
    fn copies_outside_a_buffer_are_refused() {
        assert_eq!(check_range(100, 90, 10), Ok(90..100));
        assert!(
            matches!(check_range(100, 90, 11), Err(GpuError::InvalidArgument(m)) if m == "bytes 90..101 are outside the buffer of 100")
        );
        assert!(check_range(100, u64::MAX, 2).is_err(), "no overflow");
    }

    #[test]
    fn a_foreign_or_freed_handle_is_refused() {
        let mut s = Session::new(None, None, 1000);
        assert!(
            matches!(s.len(BufferId(7)), Err(GpuError::InvalidArgument(m)) if m.contains("not this stage's"))
        );
        assert!(s.read(BufferId(7), 0, 1).is_err());
        assert!(s.write(BufferId(7), 0, &[1]).is_err());
    }
}
