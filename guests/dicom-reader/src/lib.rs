//! Stage `dicom-reader`: reads the image series of the payload into `volume.raw` +
//! `volume.json`: classic single-frame series, enhanced multi-frame CT/MR (each frame placed
//! by its functional groups), multi-frame images without a place in the patient (ultrasound
//! cine, NM, secondary capture: a frame stack, `geometry: frame-stack`), greyscale as
//! rescaled values and colour as RGB. For a colour or palette series `volume.raw` holds the
//! luma (0–255) and `rgb.raw` the RGB samples, interleaved, x fastest (`rgb` in
//! `volume.json` gives its file and dtype).
//!
//! Parameters:
//! - `on-bad-file` = `fail` (default) | `skip`: what a non-DICOM, truncated or undecodable
//!   file does; skipped files are listed in `skipped_files`.
//! - `series-uid`: the series to read; by default the one with the most slices (the others
//!   are listed in `other_series`).
//!
//! When the operator declares an output port `slices`, the series is also streamed on it
//! (`ward/ct-slice-v1`: header, then the axial slices in order) before the volume is written.

use imaging::dicom_series::{self, BadFilePolicy, DicomError, Observer, ReadOptions, Rgb};
use imaging::raw_io::{self, VolumeHeader};
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, log_info, log_warn, Guest, StageError};

mod stream;

struct DicomReader;

impl Guest for DicomReader {
    fn run() -> Result<(), StageError> {
        let policy = match sdk::param_choice("on-bad-file", &["fail", "skip"], "fail")?.as_str() {
            "skip" => BadFilePolicy::Skip,
            _ => BadFilePolicy::Fail,
        };
        let series_uid = sdk::param_opt("series-uid")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        // Checked before reading, so a port declared with another format fails at once.
        let streaming = stream::wanted()?;
        let payload = PathBuf::from(sdk::payload()?.path);
        let out = PathBuf::from(sdk::results()?.path);

        let files = dicom_series::list_files(&payload).map_err(input_error)?;
        log_info!("payload holds {} files", files.len());
        let options = ReadOptions {
            on_bad_file: policy,
            series_uid,
        };
        let series =
            dicom_series::read_series(&files, &options, &mut StageObserver).map_err(input_error)?;

        let v = &series.volume;
        log_info!(
            "series {} ({}): {}x{}x{} voxels of {:.3}x{:.3}x{:.3} mm, {} skipped files, {} other series",
            series.meta.series_instance_uid,
            series.meta.series_description,
            v.dims[0],
            v.dims[1],
            v.dims[2],
            v.spacing[0],
            v.spacing[1],
            v.spacing[2],
            series.skipped.len(),
            series.other_series.len()
        );
        let mut extra = series.header_extra();
        if let Some(rgb) = &series.rgb {
            extra.insert(
                "rgb".into(),
                serde_json::json!({"file": "rgb.raw", "dtype": rgb.dtype(), "samples": 3}),
            );
        }
        if series.meta.geometry == "frame-stack" {
            log_warn!(
                "the frames have no place in the patient (no ImagePositionPatient): stacked in \
                 frame and InstanceNumber order, {} mm apart nominally",
                v.spacing[2]
            );
        }
        if streaming {
            let mut header = VolumeHeader::of(v);
            header.extra = extra.clone();
            stream::send_series(v, &header)?;
        }
        sdk::progress(1.0, "writing volume");
        raw_io::write_volume(&out, "volume", v, extra)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        if let Some(rgb) = &series.rgb {
            let bytes = match rgb {
                Rgb::U8(d) => raw_io::encode_samples(d),
                Rgb::U16(d) => raw_io::encode_samples(d),
            };
            raw_io::write_bytes(&out.join("rgb.raw"), &bytes)
                .map_err(|e| StageError::Failed(e.to_string()))?;
        }
        Ok(())
    }
}

/// Every reading error is about the payload.
fn input_error(e: DicomError) -> StageError {
    StageError::InvalidInput(e.to_string())
}

struct StageObserver;

impl Observer for StageObserver {
    fn progress(&mut self, done: usize, total: usize, file: &str) {
        let fraction = if total == 0 {
            1.0
        } else {
            done as f32 / total as f32
        };
        sdk::progress(fraction, file);
    }

    fn skipped(&mut self, error: &DicomError) {
        log_warn!("skipped {error}");
    }

    fn not_image(&mut self, file: &str, sop_class_uid: &str) {
        log_info!("{file}: not an image (SOP class {sop_class_uid}), left out");
    }
}

sdk::export!(DicomReader);
