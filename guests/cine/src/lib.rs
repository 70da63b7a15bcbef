//! Stage `cine`: per-frame statistics of a cine and the pictures a person looks at: an
//! animated PNG of the loop and a PNG of its key frame (`imaging::cine`: the frame that
//! changed most from the one before).
//!
//! Parameters: `max-side` (the previews' longest side in pixels, default 320). Input: the
//! upstream results holding `volume.json`. Writes `cine.json` (per frame: mean, std, min,
//! max, p5, p95, change; the key frame; the frame time), `cine.png` (APNG, at the source's
//! FrameTime, else 10 frames a second) and `key-frame.png`. Grey is shown from the cine's
//! 1st to 99th percentile.

use imaging::image::Image;
use imaging::reformat::{self, Plane};
use imaging::{apng, cine, raw_io, render};
use serde::Serialize;
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, failed, invalid_input, log_info, Guest, StageError};

struct Cine;

#[derive(Serialize)]
struct CineFile {
    frames: usize,
    frame_time_ms: f64,
    key_frame: usize,
    window: [f64; 2],
    per_frame: Vec<cine::FrameStats>,
}

impl Guest for Cine {
    fn run() -> Result<(), StageError> {
        let max_side: usize = sdk::param("max-side", 320)?;
        if !(16..=2048).contains(&max_side) {
            return Err(invalid_input!(
                "parameter 'max-side' = '{max_side}' must be 16 to 2048 pixels"
            ));
        }
        let (_, dir) = sdk::input_containing("volume.json")?;
        let (volume, header) = raw_io::read_volume::<i16>(&dir, "volume")
            .map_err(|e| StageError::InvalidInput(e.to_string()))?;
        let out = PathBuf::from(sdk::results()?.path);
        let frame_time_ms = header
            .extra
            .get("frame_time_ms")
            .and_then(|v| v.as_f64())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0);

        sdk::progress(0.1, "per-frame statistics");
        let stats = cine::frame_stats(&volume);
        let key = cine::key_frame(&stats);
        let mut sorted = volume.data.clone();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64;
        let (low, high) = (at(0.01), at(0.99).max(at(0.01) + 1.0));

        sdk::progress(0.4, "previews");
        let picture = |k: usize| {
            let slice: Image<i16> = reformat::slice(&volume, Plane::Axial, k);
            let grey = render::window(&slice, (low + high) / 2.0, high - low);
            let rgb = render::overlay(&grey, None, 0.0);
            render::to_physical_aspect(&rgb, slice.pixel_mm, 1, max_side)
        };
        let frames: Vec<render::Rgb> = (0..volume.dims[2]).map(picture).collect();
        let delay = frame_time_ms.round().clamp(1.0, u16::MAX as f64) as u16;
        let animated = apng::encode_apng(&frames, delay).map_err(|e| failed!("{e}"))?;
        sdk::write_file(&out, "cine.png", &animated)?;
        let still = render::encode_png(&frames[key]).map_err(|e| failed!("{e}"))?;
        sdk::write_file(&out, "key-frame.png", &still)?;
        log_info!(
            "{} frames at {frame_time_ms} ms; key frame {} (change {:.2}); cine.png {} bytes",
            stats.len(),
            key + 1,
            stats[key].change,
            animated.len()
        );
        let file = CineFile {
            frames: stats.len(),
            frame_time_ms,
            key_frame: key + 1,
            window: [low, high],
            per_frame: stats,
        };
        raw_io::write_json(&out.join("cine.json"), &file).map_err(|e| failed!("{e}"))?;
        Ok(())
    }
}

sdk::export!(Cine);
