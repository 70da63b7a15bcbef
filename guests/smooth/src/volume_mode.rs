//! Volume in, volume out, in the reader's file format.

use imaging::raw_io;
use imaging::smooth::smooth_volume;
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, log_info, StageError};

pub fn run() -> Result<(), StageError> {
    let (_, dir) = sdk::input_containing("volume.json")?;
    let (ct, header) = raw_io::read_volume::<i16>(&dir, "volume")
        .map_err(|e| StageError::InvalidInput(e.to_string()))?;
    let out = PathBuf::from(sdk::results()?.path);
    sdk::progress(0.3, "smoothing");
    let smoothed = match crate::gpu_mode::smooth(&ct) {
        Some(samples) => ct.with_data(samples),
        None => smooth_volume(&ct),
    };
    sdk::progress(0.8, "writing volume");
    // The reader's keys (series identity, source instances) carry over unchanged, so the
    // stages downstream read this volume as they would the original.
    raw_io::write_volume(&out, "volume", &smoothed, header.extra)
        .map_err(|e| StageError::Failed(e.to_string()))?;
    let [nx, ny, nz] = ct.dims;
    log_info!("smoothed {nx}x{ny}x{nz} voxels");
    Ok(())
}
