//! Reading an image series from a directory of DICOM files into a volume (feature `dicom`).
//!
//! Two passes keep memory to one series: the first reads every file's header (up to the
//! pixel data) to group frames by SeriesInstanceUID (and, in an enhanced multi-frame file,
//! by stack) and order the chosen series along the slice normal; the second decodes only
//! the chosen series' pixels. Frames without a place in the patient (ultrasound cine, NM,
//! secondary capture) make a frame stack, in frame and InstanceNumber order.

mod colour;
mod decode;
mod error;
mod fields;
mod files;
mod frames;
mod header;
#[cfg(test)]
mod tests;

pub use colour::Rgb;
pub use decode::{decode_slice, Frame, FrameReader};
pub use error::DicomError;
pub use files::{list_files, SourceFile};
pub use header::{scan_header, Geometry, Photometric, Scan, SliceHeader, StudyInfo};

use crate::volume::{normal_of, Volume};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use serde::Serialize;
use std::collections::BTreeMap;

/// What to do with a file that cannot be read or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFilePolicy {
    /// End with the file's error.
    Fail,
    /// Report it through [`Observer::skipped`] and go on without it.
    Skip,
}

#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub on_bad_file: BadFilePolicy,
    /// The series to read; by default the one with the most slices.
    pub series_uid: Option<String>,
}

/// Hears how reading goes. Every method defaults to doing nothing.
pub trait Observer {
    /// `done` of `total` steps (first pass over every file, then the chosen slices).
    fn progress(&mut self, _done: usize, _total: usize, _file: &str) {}
    /// A file was skipped under [`BadFilePolicy::Skip`].
    fn skipped(&mut self, _error: &DicomError) {}
    /// A DICOM file that is not an image was left out.
    fn not_image(&mut self, _file: &str, _sop_class_uid: &str) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// A file left out under [`BadFilePolicy::Skip`]: `skipped_files[]` of `volume.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedFile {
    pub file: String,
    pub reason: String,
}

/// A series that was not read: `other_series[]` of `volume.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtherSeries {
    pub series_instance_uid: String,
    /// The stack of an enhanced multi-frame series (StackID, TemporalPositionIndex).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stack: String,
    /// Its files, sorted.
    pub files: Vec<String>,
}

/// Identity of the series read, carried into `volume.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesMeta {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    pub patient_id: String,
    pub patient_name: String,
    pub modality: String,
    pub sop_class_uid: String,
    /// In z order: one per slice, the same instance repeated for frames of one file.
    pub sop_instance_uids: Vec<String>,
    /// In z order, 1-based: the frame of its instance each slice is, when a source file
    /// holds several frames (a SEG then references frames).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frame_numbers: Vec<u32>,
    pub series_description: String,
    /// `patient` (a grid in patient space) or `frame-stack` (frames without a place in the
    /// patient, stacked in order: spacing along z is nominal).
    pub geometry: &'static str,
    /// PhotometricInterpretation of the source.
    pub photometric_interpretation: String,
    /// The stack read from an enhanced multi-frame series.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stack: String,
    /// FrameTime (ms) of a cine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_time_ms: Option<f64>,
    /// Written flattened into `volume.json` (study_date, study_time, ...).
    #[serde(flatten)]
    pub study: StudyInfo,
}

/// The result of reading a series.
#[derive(Debug, Clone)]
pub struct SeriesVolume {
    /// Grey values (HU for CT), or the luma of a colour series.
    pub volume: Volume<i16>,
    /// The RGB of a colour or palette series, interleaved, in the volume's voxel order.
    pub rgb: Option<Rgb>,
    pub meta: SeriesMeta,
    /// The files of the slices, in z order.
    pub files: Vec<String>,
    pub skipped: Vec<SkippedFile>,
    pub other_series: Vec<OtherSeries>,
}

impl SeriesVolume {
    /// The keys of `volume.json` besides the geometry and dtype.
    pub fn header_extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = match serde_json::to_value(&self.meta) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        map.insert("skipped_files".into(), serde_json::json!(self.skipped));
        map.insert("other_series".into(), serde_json::json!(self.other_series));
        map
    }
}

/// Reads one series out of `files`.
pub fn read_series(
    files: &[SourceFile],
    options: &ReadOptions,
    observer: &mut dyn Observer,
) -> Result<SeriesVolume, DicomError> {
    if files.is_empty() {
        return Err(DicomError::NoDicomFiles);
    }
    let mut skipped = Vec::new();
    let mut bad = |e: DicomError, observer: &mut dyn Observer| -> Result<(), DicomError> {
        if options.on_bad_file == BadFilePolicy::Skip && e.is_per_file() {
            observer.skipped(&e);
            skipped.push(SkippedFile {
                file: e.file().unwrap_or_default().to_string(),
                reason: e.reason(),
            });
            Ok(())
        } else {
            Err(e)
        }
    };

    // Pass 1: headers, grouped by series and (in enhanced files) stack.
    let mut total = files.len();
    let mut series: BTreeMap<(String, String), Vec<SliceHeader>> = BTreeMap::new();
    let mut dicom_files = 0;
    for (n, file) in files.iter().enumerate() {
        observer.progress(n, total, &file.name);
        match scan_header(file) {
            Ok(Scan::Image(frames)) => {
                dicom_files += 1;
                for h in frames {
                    series
                        .entry((h.series_instance_uid.clone(), h.stack.clone()))
                        .or_default()
                        .push(h);
                }
            }
            Ok(Scan::NotImage { sop_class_uid }) => {
                dicom_files += 1;
                observer.not_image(&file.name, &sop_class_uid);
            }
            Err(e) => bad(e, observer)?,
        }
    }
    if dicom_files == 0 {
        return Err(DicomError::NoDicomFiles);
    }
    if series.is_empty() {
        return Err(DicomError::NoImageSeries);
    }

    // Choose: the requested series (its largest stack), or the most slices (ties: smallest
    // UID and stack, for determinism).
    let largest = |wanted: Option<&str>| {
        series
            .iter()
            .filter(|((uid, _), _)| wanted.is_none_or(|w| w == uid))
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
            .map(|(key, _)| key.clone())
    };
    let chosen = match &options.series_uid {
        Some(uid) => largest(Some(uid)).ok_or_else(|| DicomError::SeriesNotFound {
            uid: uid.clone(),
            available: series
                .iter()
                .map(|((u, stack), s)| match stack.is_empty() {
                    true => format!("{u} ({} slices)", s.len()),
                    false => format!("{u} {stack} ({} slices)", s.len()),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })?,
        None => largest(None).ok_or(DicomError::NoImageSeries)?,
    };
    let mut slices = series.remove(&chosen).unwrap_or_default();
    let other_series = series
        .into_iter()
        .map(|((uid, stack), s)| {
            let mut files: Vec<String> = s.into_iter().map(|h| h.file.name).collect();
            files.dedup();
            OtherSeries {
                series_instance_uid: uid,
                stack,
                files,
            }
        })
        .collect();

    if slices.is_empty() {
        return Err(DicomError::NoImageSeries);
    }
    check_consistent(&slices)?;
    let geometry = slices[0].geometry;
    let normal = normal_of(&slices[0].orientation);
    let along = |h: &SliceHeader| dot(normal, h.position);
    match geometry {
        Geometry::Patient => {
            slices.sort_by(|a, b| {
                along(a)
                    .total_cmp(&along(b))
                    .then_with(|| a.file.name.cmp(&b.file.name))
                    .then(a.frame.cmp(&b.frame))
            });
            for pair in slices.windows(2) {
                if (along(&pair[1]) - along(&pair[0])).abs() < 1e-3 {
                    return Err(DicomError::DuplicatePosition {
                        file: frame_name(&pair[1]),
                        other: frame_name(&pair[0]),
                        position: along(&pair[1]),
                    });
                }
            }
        }
        Geometry::FrameStack => slices.sort_by(|a, b| {
            a.instance_number
                .cmp(&b.instance_number)
                .then_with(|| a.file.name.cmp(&b.file.name))
                .then(a.frame.cmp(&b.frame))
        }),
    }

    // Pass 2: pixels of the chosen series.
    total += slices.len();
    // Decoded planes go straight into the volume's buffer: one copy of the series in memory.
    let (nx, ny) = (slices[0].columns, slices[0].rows);
    let mut data = Vec::with_capacity(nx * ny * slices.len());
    let mut rgb: Option<Rgb> = None;
    let mut kept = Vec::with_capacity(slices.len());
    let mut reader = FrameReader::new();
    for (n, h) in slices.into_iter().enumerate() {
        observer.progress(files.len() + n, total, &h.file.name);
        match reader.read(&h) {
            Ok(frame) => {
                data.extend_from_slice(&frame.grey);
                match (&mut rgb, frame.rgb) {
                    (None, Some(first)) => rgb = Some(first),
                    (Some(Rgb::U8(all)), Some(Rgb::U8(more))) => all.extend_from_slice(&more),
                    (Some(Rgb::U16(all)), Some(Rgb::U16(more))) => all.extend_from_slice(&more),
                    (_, None) => {}
                    (Some(_), Some(_)) => {
                        return Err(DicomError::Inconsistent {
                            file: h.file.name.clone(),
                            tag: tags::BITS_ALLOCATED,
                            name: "BitsAllocated",
                            found: "a different colour depth".into(),
                            expected: "the same".into(),
                            reference: kept
                                .first()
                                .map(|k: &SliceHeader| k.file.name.clone())
                                .unwrap_or_default(),
                        })
                    }
                }
                kept.push(h);
            }
            Err(e) => bad(e, observer)?,
        }
    }
    drop(reader);
    observer.progress(total, total, "");
    let first = kept.first().ok_or_else(|| DicomError::NoSlicesLeft {
        uid: chosen.0.clone(),
    })?;

    let (dz, origin) = match geometry {
        Geometry::Patient => (slice_spacing(&kept, &along)?, first.position),
        Geometry::FrameStack => (
            first
                .spacing_between_slices
                .or(first.slice_thickness)
                .unwrap_or(1.0),
            [0.0; 3],
        ),
    };
    let nz = kept.len();
    let volume = Volume {
        dims: [nx, ny, nz],
        spacing: [first.pixel_spacing[1], first.pixel_spacing[0], dz],
        origin,
        orientation: first.orientation,
        data,
    };
    let multi_frame = kept.iter().any(|h| h.frames_in_file > 1);
    let meta = SeriesMeta {
        study_instance_uid: first.study_instance_uid.clone(),
        series_instance_uid: first.series_instance_uid.clone(),
        frame_of_reference_uid: first.frame_of_reference_uid.clone(),
        patient_id: first.patient_id.clone(),
        patient_name: first.patient_name.clone(),
        modality: first.modality.clone(),
        sop_class_uid: first.sop_class_uid.clone(),
        sop_instance_uids: kept.iter().map(|h| h.sop_instance_uid.clone()).collect(),
        frame_numbers: match multi_frame {
            true => kept.iter().map(|h| h.frame + 1).collect(),
            false => Vec::new(),
        },
        series_description: first.series_description.clone(),
        geometry: match geometry {
            Geometry::Patient => "patient",
            Geometry::FrameStack => "frame-stack",
        },
        photometric_interpretation: match &first.photometric {
            Photometric::Grey(name) => name.clone(),
            Photometric::Palette => "PALETTE COLOR".to_string(),
            Photometric::Colour(name) => name.clone(),
        },
        stack: first.stack.clone(),
        frame_time_ms: first.frame_time_ms,
        study: first.study.clone(),
    };
    let mut files: Vec<String> = kept.into_iter().map(|h| h.file.name).collect();
    if multi_frame {
        // One name per file, in the order first met.
        let mut seen = std::collections::BTreeSet::new();
        files.retain(|f| seen.insert(f.clone()));
    }
    Ok(SeriesVolume {
        volume,
        rgb,
        meta,
        files,
        skipped,
        other_series,
    })
}

/// A frame's name in messages: the file, and the frame when the file has several.
fn frame_name(h: &SliceHeader) -> String {
    match h.frames_in_file {
        1 => h.file.name.clone(),
        _ => format!("{} frame {}", h.file.name, h.frame + 1),
    }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Every slice must share the first slice's grid: a volume has one geometry.
fn check_consistent(slices: &[SliceHeader]) -> Result<(), DicomError> {
    let Some(first) = slices.first() else {
        return Ok(());
    };
    let differs =
        |h: &SliceHeader, tag: Tag, name: &'static str, found: String, expected: String| {
            DicomError::Inconsistent {
                file: frame_name(h),
                tag,
                name,
                found,
                expected,
                reference: frame_name(first),
            }
        };
    let close = |a: &[f64], b: &[f64], tol: f64| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol);
    for h in &slices[1..] {
        if h.geometry != first.geometry {
            return Err(differs(
                h,
                tags::IMAGE_POSITION_PATIENT,
                "ImagePositionPatient",
                match h.geometry {
                    Geometry::Patient => "present".into(),
                    Geometry::FrameStack => "absent".into(),
                },
                match first.geometry {
                    Geometry::Patient => "present".into(),
                    Geometry::FrameStack => "absent".into(),
                },
            ));
        }
        if h.photometric != first.photometric {
            return Err(differs(
                h,
                tags::PHOTOMETRIC_INTERPRETATION,
                "PhotometricInterpretation",
                format!("{:?}", h.photometric),
                format!("{:?}", first.photometric),
            ));
        }
        if h.rows != first.rows {
            return Err(differs(
                h,
                tags::ROWS,
                "Rows",
                h.rows.to_string(),
                first.rows.to_string(),
            ));
        }
        if h.columns != first.columns {
            return Err(differs(
                h,
                tags::COLUMNS,
                "Columns",
                h.columns.to_string(),
                first.columns.to_string(),
            ));
        }
        if first.geometry == Geometry::FrameStack {
            continue;
        }
        if !close(&h.pixel_spacing, &first.pixel_spacing, 1e-4) {
            return Err(differs(
                h,
                tags::PIXEL_SPACING,
                "PixelSpacing",
                format!("{:?}", h.pixel_spacing),
                format!("{:?}", first.pixel_spacing),
            ));
        }
        if !close(&h.orientation, &first.orientation, 1e-4) {
            return Err(differs(
                h,
                tags::IMAGE_ORIENTATION_PATIENT,
                "ImageOrientationPatient",
                format!("{:?}", h.orientation),
                format!("{:?}", first.orientation),
            ));
        }
    }
    Ok(())
}

/// The distance between slices, from their positions; it must be the same everywhere
/// (within 1% or 0.02 mm), because the volume is a regular grid.
fn slice_spacing(
    slices: &[SliceHeader],
    along: &dyn Fn(&SliceHeader) -> f64,
) -> Result<f64, DicomError> {
    if slices.len() < 2 {
        return Ok(slices
            .first()
            .and_then(|h| h.slice_thickness)
            .unwrap_or(1.0));
    }
    let n = slices.len();
    let mean = (along(&slices[n - 1]) - along(&slices[0])) / (n - 1) as f64;
    let tolerance = (mean * 0.01).max(0.02);
    for pair in slices.windows(2) {
        let d = along(&pair[1]) - along(&pair[0]);
        if (d - mean).abs() > tolerance {
            return Err(DicomError::NonUniformSpacing {
                file: pair[1].file.name.clone(),
                previous: pair[0].file.name.clone(),
                found: d,
                expected: mean,
            });
        }
    }
    Ok(mean)
}
