//! Stage `dicom-writer`: results as DICOM, in the results volume under `dicom/`.
//!
//! Parameter `kind` = `seg` (default) or `secondary-capture`. `secondary-capture` writes the
//! input volume's frames as `dicom/cine.dcm`, a Multi-frame Grayscale Byte Secondary Capture
//! in the source study (parameters `window-low`/`window-high`: the grey range mapped to
//! 0..255, by default luma's 0..255 or the 1st..99th percentile; `description`: its
//! DerivationDescription). The rest of this describes `seg`.
//!
//! Inputs: the upstream results holding `volume.json` (for the source series' identity) and
//! those holding `labels.json`. Writes `dicom/segmentation.dcm`, a DICOM Segmentation
//! (BINARY, one segment per label up to parameter `max-segments`, default 8) in the source
//! study and frame of reference, and `dicom/manifest.json`. UIDs are derived from the source
//! series UID and the label data, so two runs write identical bytes.

mod elements;
mod sc;
mod seg;
mod source;
mod uid;

use imaging::raw_io;
use serde::Serialize;
use source::Source;
use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, failed, invalid_input, log_info, log_warn, Guest, StageError};

const SEG_FILE: &str = "dicom/segmentation.dcm";
const SC_FILE: &str = "dicom/cine.dcm";

#[derive(Serialize)]
struct ManifestFile {
    file: String,
    sop_class_uid: String,
    sop_instance_uid: String,
    series_instance_uid: String,
    segments: Vec<seg::SegmentInfo>,
}

#[derive(Serialize)]
struct Manifest {
    source_series_instance_uid: String,
    study_instance_uid: String,
    files: Vec<ManifestFile>,
}

struct DicomWriter;

impl Guest for DicomWriter {
    fn run() -> Result<(), StageError> {
        match sdk::param_choice("kind", &["seg", "secondary-capture"], "seg")?.as_str() {
            "secondary-capture" => write_secondary_capture(),
            _ => write_seg(),
        }
    }
}

/// The labels as a DICOM SEG.
fn write_seg() -> Result<(), StageError> {
    let max_segments: u16 = sdk::param("max-segments", 8)?;
    if max_segments == 0 {
        return Err(invalid_input!(
            "parameter 'max-segments' = '0' must be at least 1"
        ));
    }
    let (_, vol_dir) = sdk::input_containing("volume.json")?;
    let (_, lab_dir) = sdk::input_containing("labels.json")?;
    let bad = |e: raw_io::RawIoError| StageError::InvalidInput(e.to_string());
    let volume_header = raw_io::read_header(&vol_dir.join("volume.json")).map_err(bad)?;
    let (labels, labels_header) = raw_io::read_volume::<u16>(&lab_dir, "labels").map_err(bad)?;
    let mut source =
        Source::from_extra(&volume_header.extra).map_err(|e| invalid_input!("volume.json: {e}"))?;
    check_inputs(&volume_header, &labels, &source)?;
    if source.frame_of_reference_uid.is_empty() {
        // Real scanners' files sometimes lack (0020,0052); the SEG must have one, and one
        // derived from the source series keeps two runs byte-identical.
        source.frame_of_reference_uid =
            uid::derive(&[b"frame-of-reference", source.series_instance_uid.as_bytes()]);
        log_warn!(
            "source series {} has no (0020,0052) FrameOfReferenceUID; the SEG gets a new one, {}",
            source.series_instance_uid,
            source.frame_of_reference_uid
        );
    }
    let out = PathBuf::from(sdk::results()?.path);

    let n_labels = labels_header
        .extra
        .get("labels")
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| labels.data.iter().copied().max().unwrap_or(0) as u64);
    if n_labels > max_segments as u64 {
        log_warn!("{n_labels} labels; writing the largest {max_segments} ('max-segments')");
    }
    let segments = n_labels.min(max_segments as u64) as u16;

    sdk::progress(0.2, "building DICOM SEG");
    let label_digest = uid::digest(&raw_io::encode_samples(&labels.data));
    let seed = |purpose: &str| {
        uid::derive(&[
            purpose.as_bytes(),
            source.series_instance_uid.as_bytes(),
            &label_digest,
            &segments.to_le_bytes(),
        ])
    };
    let ids = seg::Ids {
        series_instance_uid: seed("series"),
        sop_instance_uid: seed("sop-instance"),
        dimension_organization_uid: seed("dimension-organization"),
        implementation_class_uid: uid::derive(&[b"ward dicom-writer implementation"]),
    };
    // A segmenter that knows what it found names its labels (`names` in labels.json).
    let names: Vec<String> = labels_header
        .extra
        .get("names")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str())
                .map(|n| n.chars().take(64).collect())
                .collect()
        })
        .unwrap_or_default();
    let built = seg::build(&labels, &source, segments, &names, &ids).map_err(|e| failed!("{e}"))?;

    let mut files = Vec::new();
    match built {
        Some((bytes, infos)) => {
            sdk::write_file(&out, SEG_FILE, &bytes)?;
            log_info!(
                "{SEG_FILE}: {} segments, {} frames, {} bytes",
                infos.len(),
                infos.iter().map(|i| i.frames).sum::<usize>(),
                bytes.len()
            );
            files.push(ManifestFile {
                file: SEG_FILE.to_string(),
                sop_class_uid: seg::SEG_STORAGE.to_string(),
                sop_instance_uid: ids.sop_instance_uid.clone(),
                series_instance_uid: ids.series_instance_uid.clone(),
                segments: infos,
            });
        }
        None => log_warn!("no labelled voxels: no DICOM SEG written"),
    }
    let manifest = Manifest {
        source_series_instance_uid: source.series_instance_uid.clone(),
        study_instance_uid: source.study_instance_uid.clone(),
        files,
    };
    std::fs::create_dir_all(out.join("dicom")).map_err(|e| failed!("cannot create dicom/: {e}"))?;
    raw_io::write_json(&out.join("dicom/manifest.json"), &manifest).map_err(|e| failed!("{e}"))?;
    Ok(())
}

/// The input volume's frames as a Multi-frame Grayscale Byte Secondary Capture: a processed
/// cine (or stack) the PACS shows as a loop beside its source.
fn write_secondary_capture() -> Result<(), StageError> {
    let (_, dir) = sdk::input_containing("volume.json")?;
    let bad = |e: raw_io::RawIoError| StageError::InvalidInput(e.to_string());
    let (volume, header) = raw_io::read_volume::<i16>(&dir, "volume").map_err(bad)?;
    let source =
        Source::from_extra(&header.extra).map_err(|e| invalid_input!("volume.json: {e}"))?;
    source.check_identity("the capture")?;
    // Grey from a colour source is luma on 0..255; other values are windowed from their
    // 1st to 99th percentile unless the parameters say otherwise.
    let (auto_low, auto_high) = if header.extra.contains_key("rgb") {
        (0.0, 255.0)
    } else {
        let mut sorted = volume.data.clone();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64;
        (at(0.01), at(0.99))
    };
    let low: f64 = sdk::param("window-low", auto_low)?;
    let high: f64 = sdk::param("window-high", auto_high)?;
    if !(low.is_finite() && high.is_finite() && low < high) {
        return Err(invalid_input!(
            "parameters 'window-low' = {low} and 'window-high' = {high}: need low < high"
        ));
    }
    let description = sdk::param_opt("description")
        .unwrap_or_else(|| "Processed by Ward".to_string())
        .chars()
        .take(1024)
        .collect::<String>();
    let pixels = sc::to_bytes(&volume, low, high);
    let pixel_digest = uid::digest(&pixels);
    let seed = |purpose: &str| {
        uid::derive(&[
            purpose.as_bytes(),
            source.series_instance_uid.as_bytes(),
            &pixel_digest,
        ])
    };
    let ids = seg::Ids {
        series_instance_uid: seed("sc-series"),
        sop_instance_uid: seed("sc-sop-instance"),
        dimension_organization_uid: String::new(),
        implementation_class_uid: uid::derive(&[b"ward dicom-writer implementation"]),
    };
    let derivation = sc::Derivation {
        description: &description,
        frame_time_ms: source.frame_time_ms,
    };
    sdk::progress(0.3, "building the secondary capture");
    let bytes =
        sc::build(&volume, pixels, &source, &derivation, &ids).map_err(|e| failed!("{e}"))?;
    let out = PathBuf::from(sdk::results()?.path);
    sdk::write_file(&out, SC_FILE, &bytes)?;
    log_info!(
        "{SC_FILE}: {} frames of {}x{}, grey {low}..{high} as 0..255, {} bytes",
        volume.dims[2],
        volume.dims[0],
        volume.dims[1],
        bytes.len()
    );
    let manifest = Manifest {
        source_series_instance_uid: source.series_instance_uid.clone(),
        study_instance_uid: source.study_instance_uid.clone(),
        files: vec![ManifestFile {
            file: SC_FILE.to_string(),
            sop_class_uid: sc::MULTI_FRAME_GRAYSCALE_BYTE_SC.to_string(),
            sop_instance_uid: ids.sop_instance_uid.clone(),
            series_instance_uid: ids.series_instance_uid.clone(),
            segments: Vec::new(),
        }],
    };
    raw_io::write_json(&out.join("dicom/manifest.json"), &manifest).map_err(|e| failed!("{e}"))?;
    Ok(())
}

/// The labels must sit on the source grid and the source must say which instance each
/// slice is, or the SEG cannot reference its source.
fn check_inputs(
    volume: &raw_io::VolumeHeader,
    labels: &imaging::Volume<u16>,
    source: &Source,
) -> Result<(), StageError> {
    if volume.dims != labels.dims {
        return Err(invalid_input!(
            "labels.json dims {:?} differ from volume.json dims {:?}",
            labels.dims,
            volume.dims
        ));
    }
    if labels.dims[0] > u16::MAX as usize || labels.dims[1] > u16::MAX as usize {
        return Err(invalid_input!(
            "labels.json dims {:?}: DICOM rows and columns are at most 65535",
            labels.dims
        ));
    }
    if source.sop_instance_uids.len() != labels.dims[2] {
        return Err(invalid_input!(
            "volume.json: sop_instance_uids has {} entries for {} slices",
            source.sop_instance_uids.len(),
            labels.dims[2]
        ));
    }
    source.check_identity("a DICOM SEG")
}

sdk::export!(DicomWriter);
