//! The smoothing on the GPU when the node has one and the stage's GPU memory quota holds
//! the volume twice: the host compiles the kernel (gpu-host/kernels/smooth3d.cu, the same
//! integer arithmetic as the CPU path) with NVRTC and runs it. Any GPU error falls back to
//! the CPU path with a warning: both give the same samples.

use imaging::volume::Volume;
use ward_stage_sdk::gpu::{self, Dim3, KernelArg, KernelSource};
use ward_stage_sdk::{log_info, log_warn};

const KERNEL: &str = include_str!("../../../gpu-host/kernels/smooth3d.cu");
const BLOCK: u32 = 256;

/// The smoothed samples, or none when the GPU is not to be used.
pub fn smooth(ct: &Volume<i16>) -> Option<Vec<i16>> {
    if ward_stage_sdk::param_opt("device").as_deref() == Some("cpu") {
        return None;
    }
    let device = gpu::device()?;
    let bytes = (ct.data.len() * 2) as u64;
    if device.quota < 2 * bytes {
        log_info!(
            "GPU {} present but the stage's GPU memory quota ({} bytes) is under the {} needed; smoothing on the CPU",
            device.name,
            device.quota,
            2 * bytes
        );
        return None;
    }
    match run(ct, bytes) {
        Ok(samples) => {
            log_info!("smoothed on the GPU ({})", device.name);
            Some(samples)
        }
        Err(e) => {
            log_warn!("the GPU path failed ({e:?}); smoothing on the CPU");
            None
        }
    }
}

fn run(ct: &Volume<i16>, bytes: u64) -> Result<Vec<i16>, gpu::GpuError> {
    let [nx, ny, nz] = ct.dims;
    let input = gpu::alloc(bytes)?;
    let le: Vec<u8> = ct.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    input.write(0, &le)?;
    let output = gpu::alloc(bytes)?;
    let module = gpu::load(&KernelSource::Cuda(KERNEL.to_string()))?;
    let voxels = ct.data.len() as u64;
    let blocks = u32::try_from(voxels.div_ceil(u64::from(BLOCK))).map_err(|_| {
        gpu::GpuError::InvalidArgument("the volume is too large for one grid".into())
    })?;
    gpu::launch(
        &module,
        "smooth3d",
        Dim3 {
            x: blocks,
            y: 1,
            z: 1,
        },
        Dim3 {
            x: BLOCK,
            y: 1,
            z: 1,
        },
        0,
        &[
            KernelArg::Buffer(&input),
            KernelArg::Buffer(&output),
            KernelArg::Int32(nx as i32),
            KernelArg::Int32(ny as i32),
            KernelArg::Int32(nz as i32),
        ],
    )?;
    gpu::synchronize()?;
    let out = output.read(0, bytes)?;
    Ok(out
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}
