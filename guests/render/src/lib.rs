//! Stage `render`: pictures of the CT volume and its segmentation for a person to look at.
//!
//! Inputs: the upstream results holding `volume.json` and those holding `labels.json`.
//! Writes `axial.png`, `coronal.png`, `sagittal.png` (through the centroid of label 1, or
//! the volume centre without labels; window `window-center` 40 / `window-width` 400; labels
//! overlaid translucently; square pixels), `mip.png` (maximum along y, anterior-posterior,
//! window 300 / 1500) and `render.json`.

use imaging::image::Image;
use imaging::raw_io;
use imaging::reformat::{self, Plane};
use imaging::render::{self as draw, RenderError};
use imaging::{project, Volume};
use serde::Serialize;
use std::path::{Path, PathBuf};
use ward_stage_sdk::{self as sdk, invalid_input, log_info, Guest, StageError};

/// Overlay opacity inside a label; outlines are drawn nearly opaque.
const OVERLAY_ALPHA: f64 = 0.35;
/// Bounds on the longest side of a written picture: small volumes are enlarged so they can
/// be seen, huge ones reduced so the file stays viewable.
const MIN_SIDE: usize = 512;
const MAX_SIDE: usize = 2048;

#[derive(Serialize)]
struct Picture {
    file: String,
    /// axial | coronal | sagittal | mip.
    view: String,
    /// The slice shown (voxel index along the fixed axis); none for the projection.
    slice_index: Option<usize>,
    window_center: f64,
    window_width: f64,
    width: usize,
    height: usize,
}

#[derive(Serialize)]
struct RenderFile {
    /// "label 1 centroid" or "volume centre".
    centred_on: String,
    /// Voxel index [i, j, k] the slices pass through.
    slice_indices: [usize; 3],
    files: Vec<Picture>,
}

struct Render;

impl Guest for Render {
    fn run() -> Result<(), StageError> {
        let center: f64 = sdk::param("window-center", 40.0)?;
        let width: f64 = sdk::param("window-width", 400.0)?;
        if !(width.is_finite() && width > 0.0 && center.is_finite()) {
            return Err(invalid_input!(
                "parameter 'window-width' = '{width}' must be positive"
            ));
        }

        let (_, vol_dir) = sdk::input_containing("volume.json")?;
        let (_, lab_dir) = sdk::input_containing("labels.json")?;
        let bad_input = |e: raw_io::RawIoError| StageError::InvalidInput(e.to_string());
        let (ct, _) = raw_io::read_volume::<i16>(&vol_dir, "volume").map_err(bad_input)?;
        let (labels, _) = raw_io::read_volume::<u16>(&lab_dir, "labels").map_err(bad_input)?;
        if labels.dims != ct.dims {
            return Err(invalid_input!(
                "labels.json dims {:?} differ from volume.json dims {:?}",
                labels.dims,
                ct.dims
            ));
        }
        let out = PathBuf::from(sdk::results()?.path);

        let (centre, centred_on) = match centroid_of_label(&labels, 1) {
            Some(c) => (c, "label 1 centroid"),
            None => (ct.dims.map(|d| d / 2), "volume centre"),
        };
        log_info!("slices through voxel {centre:?} ({centred_on})");

        let mut files = Vec::new();
        for (n, plane) in [Plane::Axial, Plane::Coronal, Plane::Sagittal]
            .into_iter()
            .enumerate()
        {
            sdk::progress(n as f32 / 4.0, plane.name());
            let index = centre[plane.axis()];
            let grey = draw::window(&reformat::slice(&ct, plane, index), center, width);
            let lab = reformat::slice(&labels, plane, index);
            let rgb = draw::overlay(&grey, Some(&lab), OVERLAY_ALPHA);
            files.push(save(
                &out,
                plane.name(),
                Some(index),
                (center, width),
                &grey,
                rgb,
            )?);
        }

        sdk::progress(0.75, "maximum-intensity projection");
        let (mip_c, mip_w) = (300.0, 1500.0);
        let grey = draw::window(&project::mip(&ct, Plane::Coronal), mip_c, mip_w);
        let rgb = draw::overlay(&grey, None, 0.0);
        files.push(save(&out, "mip", None, (mip_c, mip_w), &grey, rgb)?);

        let index = RenderFile {
            centred_on: centred_on.to_string(),
            slice_indices: centre,
            files,
        };
        raw_io::write_json(&out.join("render.json"), &index)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        Ok(())
    }
}

/// Resamples to square pixels, encodes and writes `<view>.png`.
fn save(
    out: &Path,
    view: &str,
    slice_index: Option<usize>,
    (window_center, window_width): (f64, f64),
    grey: &Image<u8>,
    rgb: draw::Rgb,
) -> Result<Picture, StageError> {
    let square = draw::to_physical_aspect(&rgb, grey.pixel_mm, MIN_SIDE, MAX_SIDE);
    let png = draw::encode_png(&square)
        .map_err(|e: RenderError| StageError::Failed(format!("{view}.png: {e}")))?;
    let file = format!("{view}.png");
    sdk::write_file(out, &file, &png)?;
    Ok(Picture {
        file,
        view: view.to_string(),
        slice_index,
        window_center,
        window_width,
        width: square.width,
        height: square.height,
    })
}

/// The voxel nearest the centroid of `label`, or None if it is absent.
fn centroid_of_label(labels: &Volume<u16>, label: u16) -> Option<[usize; 3]> {
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for (idx, &l) in labels.data.iter().enumerate() {
        if l == label {
            let c = labels.coords(idx);
            for a in 0..3 {
                sum[a] += c[a] as u64;
            }
            n += 1;
        }
    }
    (n > 0).then(|| sum.map(|s| (s as f64 / n as f64).round() as usize))
}

sdk::export!(Render);
