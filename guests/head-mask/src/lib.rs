//! Stage `head-mask`: the head (or brain) mask of an MR volume (`imaging::head_mask`:
//! Otsu's threshold, the largest 26-connected component, holes filled slice by slice).
//!
//! Input: the upstream results holding `volume.json`. Writes `labels.raw` + `labels.json`
//! (label 1, named `head`, as `segment` writes labels, so `render` and `dicom-writer` take
//! it) and `stats.json`.

use imaging::{head_mask, raw_io, stats};
use serde::Serialize;
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, failed, invalid_input, log_info, Guest, StageError};

struct HeadMask;

#[derive(Serialize)]
struct StatsFile {
    otsu_threshold: f64,
    total_voxels: usize,
    total_ml: f64,
    components: Vec<stats::LabelStats>,
}

impl Guest for HeadMask {
    fn run() -> Result<(), StageError> {
        let (_, dir) = sdk::input_containing("volume.json")?;
        let (volume, _) = raw_io::read_volume::<i16>(&dir, "volume")
            .map_err(|e| StageError::InvalidInput(e.to_string()))?;
        let out = PathBuf::from(sdk::results()?.path);
        sdk::progress(0.1, "thresholding");
        let (mask, threshold) = head_mask::head_mask(&volume).ok_or_else(|| {
            invalid_input!("volume.json: the volume is flat; there is no head to mask")
        })?;
        let components = stats::measure(&mask, &volume, 1);
        let total_voxels: usize = components.iter().map(|c| c.voxels).sum();
        let total_ml: f64 = components.iter().map(|c| c.volume_ml).sum();
        log_info!(
            "head: {total_voxels} of {} voxels ({total_ml:.1} ml) above {threshold:.1} (Otsu), holes filled",
            volume.len()
        );
        sdk::progress(0.8, "writing the mask");
        let mut extra = serde_json::Map::new();
        extra.insert("labels".into(), serde_json::json!(1));
        extra.insert("names".into(), serde_json::json!(["head"]));
        raw_io::write_volume(&out, "labels", &mask, extra).map_err(|e| failed!("{e}"))?;
        let file = StatsFile {
            otsu_threshold: threshold,
            total_voxels,
            total_ml,
            components,
        };
        raw_io::write_json(&out.join("stats.json"), &file).map_err(|e| failed!("{e}"))?;
        Ok(())
    }
}

sdk::export!(HeadMask);
