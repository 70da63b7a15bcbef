//! Stage `segment`: threshold, optional morphology and connected components of the CT
//! volume from the upstream stage whose results hold `volume.json`.
//!
//! Parameters: `lower` (HU, 200), `upper` (HU, 3071), `connectivity` (6 | 26), `morphology`
//! (none | open | close), `element` (cross | box), `radius` (voxels, 1), `min-voxels` (1).
//! Writes `labels.raw`, `labels.json` and `stats.json`.

use imaging::components::Connectivity;
use imaging::morphology::{Element, Operation};
use imaging::raw_io;
use imaging::segmentation::{segment, Params};
use imaging::stats::LabelStats;
use serde::Serialize;
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, invalid_input, log_info, Guest, StageError};

struct Segment;

/// `stats.json`.
#[derive(Serialize)]
struct StatsFile {
    lower: f64,
    upper: f64,
    connectivity: u32,
    morphology: String,
    morphology_element: String,
    morphology_radius: usize,
    min_voxels: usize,
    /// Components dropped for being smaller than `min_voxels`.
    dropped_components: usize,
    total_voxels: usize,
    total_ml: f64,
    components: Vec<LabelStats>,
}

impl Guest for Segment {
    fn run() -> Result<(), StageError> {
        let lower: f64 = sdk::param("lower", 200.0)?;
        let upper: f64 = sdk::param("upper", 3071.0)?;
        if !(lower.is_finite() && upper.is_finite()) || lower > upper {
            return Err(invalid_input!(
                "parameters 'lower' = {lower} and 'upper' = {upper}: need lower <= upper"
            ));
        }
        let conn_n: u32 = sdk::param("connectivity", 6)?;
        let connectivity = Connectivity::from_number(conn_n).ok_or_else(|| {
            invalid_input!("parameter 'connectivity' = '{conn_n}' is not 6 or 26")
        })?;
        let morph = sdk::param_choice("morphology", &["none", "open", "close"], "none")?;
        let element_name = sdk::param_choice("element", &["cross", "box"], "cross")?;
        let element = if element_name == "box" {
            Element::Box
        } else {
            Element::Cross
        };
        let radius: usize = sdk::param("radius", 1)?;
        if radius > 32 {
            return Err(invalid_input!(
                "parameter 'radius' = '{radius}' is over 32 voxels"
            ));
        }
        let min_voxels: usize = sdk::param("min-voxels", 1)?;

        let (_, dir) = sdk::input_containing("volume.json")?;
        let (ct, _) = raw_io::read_volume::<i16>(&dir, "volume")
            .map_err(|e| StageError::InvalidInput(e.to_string()))?;
        let out = PathBuf::from(sdk::results()?.path);

        let params = Params {
            lower,
            upper,
            connectivity,
            morphology: match morph.as_str() {
                "open" => Some((Operation::Open, element, radius)),
                "close" => Some((Operation::Close, element, radius)),
                _ => None,
            },
            min_voxels,
        };
        let seg = segment(&ct, &params, &mut |fraction, phase| {
            sdk::progress(fraction, phase)
        })
        .map_err(|e| invalid_input!("{e}; raise 'min-voxels' or narrow 'lower'/'upper'"))?;
        log_info!(
            "{} of {} voxels within [{lower}, {upper}] HU; {} components kept, {} dropped below {min_voxels} voxels",
            seg.thresholded_voxels,
            ct.len(),
            seg.components.len(),
            seg.dropped
        );
        let n = seg.components.len();

        sdk::progress(0.9, "writing labels");
        let mut extra = serde_json::Map::new();
        extra.insert("labels".into(), serde_json::json!(n));
        let failed = |e: raw_io::RawIoError| StageError::Failed(e.to_string());
        raw_io::write_volume(&out, "labels", &seg.labels, extra).map_err(failed)?;
        let stats_file = StatsFile {
            lower,
            upper,
            connectivity: connectivity.number(),
            morphology: morph,
            morphology_element: element_name,
            morphology_radius: radius,
            min_voxels,
            dropped_components: seg.dropped,
            total_voxels: seg.total_voxels,
            total_ml: seg.total_ml,
            components: seg.components,
        };
        raw_io::write_json(&out.join("stats.json"), &stats_file).map_err(failed)?;
        Ok(())
    }
}

sdk::export!(Segment);
