//! Stage `bias-correct`: MR intensity non-uniformity correction and normalisation
//! (`imaging::bias_field`: a quadratic field fitted to the head's log intensities, divided
//! out; the head's median scaled to `target`).
//!
//! Parameters: `target` (the head's median after normalisation, default 1000).
//! Input: the upstream results holding `volume.json`. Writes `volume.raw` + `volume.json`
//! (the source's identity kept, so later stages and `dicom-writer` still reference it) and
//! `bias.json` (threshold, field range, scale).

use imaging::{bias_field, raw_io};
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, failed, invalid_input, log_info, Guest, StageError};

struct BiasCorrect;

impl Guest for BiasCorrect {
    fn run() -> Result<(), StageError> {
        let target: f64 = sdk::param("target", 1000.0)?;
        if !(target.is_finite() && target > 0.0 && target <= 16000.0) {
            return Err(invalid_input!(
                "parameter 'target' = '{target}' must be in (0, 16000]"
            ));
        }
        let (_, dir) = sdk::input_containing("volume.json")?;
        let (volume, header) = raw_io::read_volume::<i16>(&dir, "volume")
            .map_err(|e| StageError::InvalidInput(e.to_string()))?;
        let out = PathBuf::from(sdk::results()?.path);
        sdk::progress(0.1, "fitting the bias field");
        let (corrected, report) = bias_field::correct(&volume, target).ok_or_else(|| {
            invalid_input!("volume.json: the volume is flat or has no positive intensities")
        })?;
        log_info!(
            "head: {} voxels above {:.1} (Otsu); field {:.3}..{:.3} divided out; scaled by {:.4}",
            report.head_voxels,
            report.otsu_threshold,
            report.field_min,
            report.field_max,
            report.scale
        );
        sdk::progress(0.8, "writing the corrected volume");
        raw_io::write_volume(&out, "volume", &corrected, header.extra)
            .map_err(|e| failed!("{e}"))?;
        raw_io::write_json(&out.join("bias.json"), &report).map_err(|e| failed!("{e}"))?;
        Ok(())
    }
}

sdk::export!(BiasCorrect);
