//! The first pass: what each file is, read without its pixel data. A file gives one
//! [`SliceHeader`] per frame: a classic CT or MR file one, an enhanced multi-frame file
//! (Enhanced CT/MR) one per frame with its own position, orientation, pixel measures and
//! rescale from the functional groups, a cine or multi-frame image (US, NM, secondary
//! capture) one per frame of a frame stack.

use super::error::{chain, DicomError};
use super::fields::Fields;
use super::files::SourceFile;
use super::frames;
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;

/// Segmentation Storage: a DICOM SEG has pixel data but is a result, not a source image.
const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// Where a frame sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    /// In patient space (ImagePositionPatient/ImageOrientationPatient, or their functional
    /// groups): frames are ordered along the slice normal and must be evenly spaced.
    Patient,
    /// No place in patient space (ultrasound cine, NM, secondary capture, a projection
    /// radiograph): frames are stacked in frame and InstanceNumber order.
    FrameStack,
}

/// How the stored samples make a colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Photometric {
    /// MONOCHROME1 or MONOCHROME2 (as named): one sample, a grey value.
    Grey(String),
    /// PALETTE COLOR: one sample, an index into the palette's red, green and blue tables.
    Palette,
    /// Three samples: RGB, YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT (as named).
    Colour(String),
}

/// What a frame needs to be placed in a volume, and the identity carried to the output.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceHeader {
    pub file: SourceFile,
    /// The frame of the file this header is (0 for a single-frame file).
    pub frame: u32,
    /// NumberOfFrames of the file.
    pub frames_in_file: u32,
    pub transfer_syntax: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub patient_id: String,
    pub patient_name: String,
    pub modality: String,
    pub series_description: String,
    pub instance_number: Option<i64>,
    /// Study-level identity, carried so derived objects (DICOM SEG) repeat the source study.
    pub study: StudyInfo,
    pub rows: usize,
    pub columns: usize,
    pub photometric: Photometric,
    pub geometry: Geometry,
    /// PixelSpacing as stored: [between rows (y), between columns (x)].
    pub pixel_spacing: [f64; 2],
    pub orientation: [f64; 6],
    pub position: [f64; 3],
    pub slice_thickness: Option<f64>,
    /// SpacingBetweenSlices: the step of a frame stack.
    pub spacing_between_slices: Option<f64>,
    /// (slope, intercept) of this frame's Pixel Value Transformation functional group; None
    /// for the file's own RescaleSlope/RescaleIntercept.
    pub rescale: Option<(f64, f64)>,
    /// The frames of an enhanced file that form one volume share a key (StackID and
    /// TemporalPositionIndex); empty for other files.
    pub stack: String,
    /// FrameTime (ms) of a cine.
    pub frame_time_ms: Option<f64>,
}

/// Study and patient attributes that a derived series must repeat; empty when absent.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StudyInfo {
    pub study_date: String,
    pub study_time: String,
    pub study_id: String,
    pub accession_number: String,
    pub referring_physician_name: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_description: String,
}

/// The outcome of reading one file's header.
#[derive(Debug, Clone, PartialEq)]
pub enum Scan {
    /// One header per frame, in frame order.
    Image(Vec<SliceHeader>),
    /// A DICOM object without an image (structured report, presentation state, SEG, ...).
    NotImage { sop_class_uid: String },
}

/// Reads the header of `file` (up to the pixel data).
pub fn scan_header(file: &SourceFile) -> Result<Scan, DicomError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(&file.path)
        .map_err(|e| DicomError::Parse {
            file: file.name.clone(),
            reason: chain(&e),
        })?;
    let transfer_syntax = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let f = Fields {
        obj: &obj,
        file: &file.name,
    };
    let sop_class_uid = f.opt_str(tags::SOP_CLASS_UID).unwrap_or_default();
    if f.opt_str(tags::ROWS).is_none() || sop_class_uid == SEGMENTATION_STORAGE {
        return Ok(Scan::NotImage { sop_class_uid });
    }
    let frames_in_file = match f.opt_str(tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(f.invalid(
                    tags::NUMBER_OF_FRAMES,
                    "NumberOfFrames",
                    text,
                    "must be a positive integer",
                ))
            }
        },
    };
    let photometric = photometric_of(&f)?;
    let rows = f.count(tags::ROWS, "Rows")?;
    let columns = f.count(tags::COLUMNS, "Columns")?;
    let places = frames::places(&f, frames_in_file)?;

    let first = SliceHeader {
        file: file.clone(),
        frame: 0,
        frames_in_file,
        transfer_syntax,
        study_instance_uid: f.req_str(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series_instance_uid: f.req_str(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        frame_of_reference_uid: f.opt_str(tags::FRAME_OF_REFERENCE_UID).unwrap_or_default(),
        sop_class_uid: f.req_str(tags::SOP_CLASS_UID, "SOPClassUID")?,
        sop_instance_uid: f.req_str(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        patient_id: f.opt_str(tags::PATIENT_ID).unwrap_or_default(),
        patient_name: f.opt_str(tags::PATIENT_NAME).unwrap_or_default(),
        modality: f.opt_str(tags::MODALITY).unwrap_or_default(),
        series_description: f.opt_str(tags::SERIES_DESCRIPTION).unwrap_or_default(),
        instance_number: f.opt_int(tags::INSTANCE_NUMBER),
        study: StudyInfo {
            study_date: f.opt_str(tags::STUDY_DATE).unwrap_or_default(),
            study_time: f.opt_str(tags::STUDY_TIME).unwrap_or_default(),
            study_id: f.opt_str(tags::STUDY_ID).unwrap_or_default(),
            accession_number: f.opt_str(tags::ACCESSION_NUMBER).unwrap_or_default(),
            referring_physician_name: f
                .opt_str(tags::REFERRING_PHYSICIAN_NAME)
                .unwrap_or_default(),
            patient_birth_date: f.opt_str(tags::PATIENT_BIRTH_DATE).unwrap_or_default(),
            patient_sex: f.opt_str(tags::PATIENT_SEX).unwrap_or_default(),
            study_description: f.opt_str(tags::STUDY_DESCRIPTION).unwrap_or_default(),
        },
        rows,
        columns,
        photometric,
        geometry: Geometry::FrameStack,
        pixel_spacing: [1.0; 2],
        orientation: crate::volume::AXIAL_ORIENTATION,
        position: [0.0; 3],
        slice_thickness: None,
        spacing_between_slices: f
            .opt_float(tags::SPACING_BETWEEN_SLICES)
            .filter(|s| *s > 0.0),
        rescale: None,
        stack: String::new(),
        frame_time_ms: f.opt_float(tags::FRAME_TIME).filter(|t| *t > 0.0),
    };
    let headers = places
        .into_iter()
        .enumerate()
        .map(|(n, place)| SliceHeader {
            frame: n as u32,
            geometry: place.geometry,
            pixel_spacing: place.pixel_spacing,
            orientation: place.orientation,
            position: place.position,
            slice_thickness: place.slice_thickness,
            rescale: place.rescale,
            stack: place.stack,
            ..first.clone()
        })
        .collect();
    Ok(Scan::Image(headers))
}

/// SamplesPerPixel and PhotometricInterpretation together, refused with the reason when
/// Ward does not read that kind of image.
fn photometric_of(f: &Fields) -> Result<Photometric, DicomError> {
    let samples = f
        .opt_str(tags::SAMPLES_PER_PIXEL)
        .unwrap_or_else(|| "1".into());
    let name = f
        .opt_str(tags::PHOTOMETRIC_INTERPRETATION)
        .unwrap_or_else(|| "MONOCHROME2".into());
    match (samples.as_str(), name.as_str()) {
        ("1", "MONOCHROME1" | "MONOCHROME2") => Ok(Photometric::Grey(name)),
        ("1", "PALETTE COLOR") => Ok(Photometric::Palette),
        ("3", "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT") => {
            Ok(Photometric::Colour(name))
        }
        ("1" | "3", _) => Err(f.invalid(
            tags::PHOTOMETRIC_INTERPRETATION,
            "PhotometricInterpretation",
            name,
            "not read: Ward reads MONOCHROME1/2, PALETTE COLOR, RGB and YBR_FULL/422/ICT/RCT",
        )),
        _ => Err(f.invalid(
            tags::SAMPLES_PER_PIXEL,
            "SamplesPerPixel",
            samples,
            "only greyscale or palette (1 sample) and colour (3 samples) images are read",
        )),
    }
}
