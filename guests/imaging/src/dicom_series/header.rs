//! The first pass: what each file is, read without its pixel data.

use super::error::{chain, DicomError};
use super::files::SourceFile;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};

/// What a slice needs to be placed in a volume, and the identity carried to the output.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceHeader {
    pub file: SourceFile,
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
    /// Study-level identity, carried so derived objects (DICOM SEG) repeat the source study.
    pub study: StudyInfo,
    pub rows: usize,
    pub columns: usize,
    /// PixelSpacing as stored: [between rows (y), between columns (x)].
    pub pixel_spacing: [f64; 2],
    pub orientation: [f64; 6],
    pub position: [f64; 3],
    pub slice_thickness: Option<f64>,
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
    Image(Box<SliceHeader>),
    /// A DICOM object without an image (structured report, presentation state, ...).
    NotImage {
        sop_class_uid: String,
    },
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
    if f.opt_str(tags::ROWS).is_none() {
        return Ok(Scan::NotImage {
            sop_class_uid: f.opt_str(tags::SOP_CLASS_UID).unwrap_or_default(),
        });
    }
    if let Some(frames) = f.opt_str(tags::NUMBER_OF_FRAMES) {
        if frames.parse::<u32>() != Ok(1) {
            return Err(f.invalid(
                tags::NUMBER_OF_FRAMES,
                "NumberOfFrames",
                frames,
                "only single-frame images can be stacked into a volume",
            ));
        }
    }
    if let Some(spp) = f.opt_str(tags::SAMPLES_PER_PIXEL) {
        if spp != "1" {
            return Err(f.invalid(
                tags::SAMPLES_PER_PIXEL,
                "SamplesPerPixel",
                spp,
                "only greyscale (1 sample per pixel) images are supported",
            ));
        }
    }
    let spacing = f.floats::<2>(tags::PIXEL_SPACING, "PixelSpacing")?;
    if spacing.iter().any(|&s| s <= 0.0) {
        return Err(f.invalid(
            tags::PIXEL_SPACING,
            "PixelSpacing",
            format!("{}\\{}", spacing[0], spacing[1]),
            "must be positive",
        ));
    }
    let orientation = f.floats::<6>(tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient")?;
    let n = crate::volume::normal_of(&orientation);
    if (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]) < 0.5 {
        return Err(f.invalid(
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            format!("{orientation:?}"),
            "row and column directions are parallel",
        ));
    }
    let rows = f.count(tags::ROWS, "Rows")?;
    let columns = f.count(tags::COLUMNS, "Columns")?;
    Ok(Scan::Image(Box::new(SliceHeader {
        file: file.clone(),
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
        pixel_spacing: spacing,
        orientation,
        position: f.floats::<3>(tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient")?,
        slice_thickness: f
            .opt_str(tags::SLICE_THICKNESS)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t > 0.0),
    })))
}

/// Typed access to a header's elements with errors naming the file and tag.
pub(crate) struct Fields<'a> {
    pub obj: &'a InMemDicomObject,
    pub file: &'a str,
}

impl Fields<'_> {
    /// The trimmed string value, or None if absent or empty.
    pub fn opt_str(&self, tag: Tag) -> Option<String> {
        let e = self.obj.get(tag)?;
        let s = e.to_str().ok()?;
        let s = s.trim_matches(|c: char| c == ' ' || c == '\0').to_string();
        (!s.is_empty()).then_some(s)
    }

    pub fn req_str(&self, tag: Tag, name: &'static str) -> Result<String, DicomError> {
        self.opt_str(tag).ok_or_else(|| self.missing(tag, name))
    }

    /// Exactly `N` finite numbers (a decimal string with `\` separators).
    pub fn floats<const N: usize>(
        &self,
        tag: Tag,
        name: &'static str,
    ) -> Result<[f64; N], DicomError> {
        let text = self.req_str(tag, name)?;
        let parts: Vec<&str> = text.split('\\').collect();
        if parts.len() != N {
            return Err(self.invalid(tag, name, text, &format!("expected {N} values")));
        }
        let mut out = [0.0; N];
        for (o, p) in out.iter_mut().zip(&parts) {
            *o = match p.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => return Err(self.invalid(tag, name, text, "not a number")),
            };
        }
        Ok(out)
    }

    /// A positive integer (Rows, Columns).
    pub fn count(&self, tag: Tag, name: &'static str) -> Result<usize, DicomError> {
        let e = self.obj.get(tag).ok_or_else(|| self.missing(tag, name))?;
        match e.to_int::<u32>() {
            Ok(n) if n > 0 => Ok(n as usize),
            _ => Err(self.invalid(
                tag,
                name,
                e.to_str().map(|s| s.into_owned()).unwrap_or_default(),
                "must be a positive integer",
            )),
        }
    }

    /// A number with a default when absent (RescaleSlope/Intercept).
    pub fn float_or(&self, tag: Tag, name: &'static str, default: f64) -> Result<f64, DicomError> {
        match self.opt_str(tag) {
            None => Ok(default),
            Some(s) => match s.split('\\').next().unwrap_or("").trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(self.invalid(tag, name, s, "not a number")),
            },
        }
    }

    pub fn missing(&self, tag: Tag, name: &'static str) -> DicomError {
        DicomError::Missing {
            file: self.file.to_string(),
            tag,
            name,
        }
    }

    pub fn invalid(
        &self,
        tag: Tag,
        name: &'static str,
        value: impl Into<String>,
        reason: &str,
    ) -> DicomError {
        DicomError::Invalid {
            file: self.file.to_string(),
            tag,
            name,
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}
