//! Stage `speckle`: speckle reduction of an ultrasound cine or image, frame by frame
//! (`imaging::speckle`: Lee's adaptive filter, noise taken as the frame's median local
//! variance).
//!
//! Parameters: `radius` (window radius in pixels, default 2: a 5x5 window).
//! Input: the upstream results holding `volume.json`. Writes `volume.raw` + `volume.json`
//! with the source's identity kept, so later stages still reference the source.

use imaging::{raw_io, speckle};
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, failed, invalid_input, log_info, Guest, StageError};

struct Speckle;

impl Guest for Speckle {
    fn run() -> Result<(), StageError> {
        let radius: usize = sdk::param("radius", 2)?;
        if !(1..=16).contains(&radius) {
            return Err(invalid_input!(
                "parameter 'radius' = '{radius}' must be 1 to 16 pixels"
            ));
        }
        let (_, dir) = sdk::input_containing("volume.json")?;
        let (volume, header) = raw_io::read_volume::<i16>(&dir, "volume")
            .map_err(|e| StageError::InvalidInput(e.to_string()))?;
        let out = PathBuf::from(sdk::results()?.path);
        sdk::progress(0.1, "filtering");
        let filtered = speckle::lee(&volume, radius);
        log_info!(
            "Lee filter, {0}x{0} window, over {1} frames of {2}x{3}",
            2 * radius + 1,
            volume.dims[2],
            volume.dims[0],
            volume.dims[1]
        );
        // The colour of the source does not describe the filtered grey: it is left behind.
        let mut extra = header.extra;
        extra.remove("rgb");
        extra.insert(
            "speckle_filter".into(),
            serde_json::json!({"lee_radius": radius}),
        );
        raw_io::write_volume(&out, "volume", &filtered, extra).map_err(|e| failed!("{e}"))?;
        Ok(())
    }
}

sdk::export!(Speckle);
