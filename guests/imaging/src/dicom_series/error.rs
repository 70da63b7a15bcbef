//! Errors of DICOM series reading. Every per-file error names the file (relative to the
//! directory being read) and, where one is involved, the DICOM tag.

use dicom_core::Tag;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DicomError {
    #[error("{file}: cannot read: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}: not a readable DICOM file: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: missing {tag} {name}")]
    Missing {
        file: String,
        tag: Tag,
        name: &'static str,
    },
    #[error("{file}: {tag} {name} = '{value}': {reason}")]
    Invalid {
        file: String,
        tag: Tag,
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "{file}: transfer syntax {uid} (JPEG-LS) cannot be decoded: this build has no JPEG-LS codec"
    )]
    JpegLs { file: String, uid: String },
    #[error("{file}: cannot decode (7FE0,0010) PixelData in transfer syntax {uid}: {reason}")]
    Decode {
        file: String,
        uid: String,
        reason: String,
    },
    #[error("{file}: {tag} {name} is {found}, but {expected} in {reference} of the same series")]
    Inconsistent {
        file: String,
        tag: Tag,
        name: &'static str,
        found: String,
        expected: String,
        reference: String,
    },
    #[error("{file} and {other}: both at {position:.3} mm along the slice normal")]
    DuplicatePosition {
        file: String,
        other: String,
        position: f64,
    },
    #[error(
        "slice spacing is not uniform: {found:.3} mm between {file} and {previous}, \
         {expected:.3} mm on average (is a slice missing?)"
    )]
    NonUniformSpacing {
        file: String,
        previous: String,
        found: f64,
        expected: f64,
    },
    #[error("payload has no DICOM files")]
    NoDicomFiles,
    #[error("payload has no image series (DICOM files without (0028,0010) Rows only)")]
    NoImageSeries,
    #[error("series {uid} not found; series present: {available}")]
    SeriesNotFound { uid: String, available: String },
    #[error("series {uid}: no slice could be decoded")]
    NoSlicesLeft { uid: String },
}

impl DicomError {
    /// True for problems of one file, which `BadFilePolicy::Skip` may skip; false for
    /// problems of the series as a whole.
    pub fn is_per_file(&self) -> bool {
        matches!(
            self,
            DicomError::Io { .. }
                | DicomError::Parse { .. }
                | DicomError::Missing { .. }
                | DicomError::Invalid { .. }
                | DicomError::JpegLs { .. }
                | DicomError::Decode { .. }
        )
    }

    /// The file a per-file error is about.
    pub fn file(&self) -> Option<&str> {
        match self {
            DicomError::Io { file, .. }
            | DicomError::Parse { file, .. }
            | DicomError::Missing { file, .. }
            | DicomError::Invalid { file, .. }
            | DicomError::JpegLs { file, .. }
            | DicomError::Decode { file, .. } => Some(file),
            _ => None,
        }
    }

    /// The error message without the leading file name, for `skipped_files[].reason`.
    pub fn reason(&self) -> String {
        let text = self.to_string();
        match self.file() {
            Some(file) => text
                .strip_prefix(file)
                .and_then(|t| t.strip_prefix(": "))
                .map(str::to_owned)
                .unwrap_or(text),
            None => text,
        }
    }
}

/// An error and its causes on one line: the DICOM crates put the useful detail in sources.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
