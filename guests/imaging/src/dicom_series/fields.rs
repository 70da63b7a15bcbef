//! Typed access to a header's elements, with errors naming the file and tag.
//!
//! Elements that arrive with VR UN in explicit VR (a PACS that did not know them when it
//! stored the file) are read again with the VR the standard dictionary gives their tag.

use super::error::DicomError;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;

/// Typed access to a header's elements with errors naming the file and tag.
pub(crate) struct Fields<'a> {
    pub obj: &'a InMemDicomObject,
    pub file: &'a str,
}

impl<'a> Fields<'a> {
    /// The trimmed string value, or None if absent or empty.
    pub fn opt_str(&self, tag: Tag) -> Option<String> {
        let e = self.obj.get(tag)?;
        let s = if e.vr() == VR::UN {
            reread_unknown(tag, &e.to_bytes().ok()?)?
        } else {
            e.to_str().ok()?.into_owned()
        };
        let s = s.trim_matches(|c: char| c == ' ' || c == '\0').to_string();
        (!s.is_empty()).then_some(s)
    }

    /// The items of sequence `tag`; empty when absent or not a sequence.
    pub fn items(&self, tag: Tag) -> &[InMemDicomObject] {
        self.obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
    }

    /// The same accessors over a sequence item, errors still naming the file.
    pub fn within<'b>(&self, item: &'b InMemDicomObject) -> Fields<'b>
    where
        'a: 'b,
    {
        Fields {
            obj: item,
            file: self.file,
        }
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
        let text = self.req_str(tag, name)?;
        match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n as usize),
            _ => Err(self.invalid(tag, name, text, "must be a positive integer")),
        }
    }

    /// An optional integer (InstanceNumber, NumberOfFrames); None when absent or not one.
    pub fn opt_int(&self, tag: Tag) -> Option<i64> {
        self.opt_str(tag)?.trim().parse().ok()
    }

    /// An optional finite number (the first value of a multi-valued one).
    pub fn opt_float(&self, tag: Tag) -> Option<f64> {
        let s = self.opt_str(tag)?;
        let v: f64 = s.split('\\').next()?.trim().parse().ok()?;
        v.is_finite().then_some(v)
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

/// The value of an element stored as UN, read with its dictionary VR: text VRs as text,
/// binary integers and floats (explicit VR little endian) as their decimal form. None when
/// the dictionary does not know the tag or the VR has no text form (sequences, OB/OW).
fn reread_unknown(tag: Tag, bytes: &[u8]) -> Option<String> {
    let vr = StandardDataDictionary.by_tag(tag)?.vr().relaxed();
    let numbers = |size: usize, f: &dyn Fn(&[u8]) -> String| -> Option<String> {
        (bytes.len() % size == 0).then(|| {
            bytes
                .chunks_exact(size)
                .map(f)
                .collect::<Vec<_>>()
                .join("\\")
        })
    };
    match vr {
        VR::AE
        | VR::AS
        | VR::CS
        | VR::DA
        | VR::DS
        | VR::DT
        | VR::IS
        | VR::LO
        | VR::LT
        | VR::PN
        | VR::SH
        | VR::ST
        | VR::TM
        | VR::UC
        | VR::UI
        | VR::UR
        | VR::UT => Some(String::from_utf8_lossy(bytes).into_owned()),
        VR::US => numbers(2, &|b| u16::from_le_bytes([b[0], b[1]]).to_string()),
        VR::SS => numbers(2, &|b| i16::from_le_bytes([b[0], b[1]]).to_string()),
        VR::UL => numbers(4, &|b| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string()
        }),
        VR::SL => numbers(4, &|b| {
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string()
        }),
        VR::FL => numbers(4, &|b| {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string()
        }),
        VR::FD => numbers(8, &|b| {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).to_string()
        }),
        _ => None,
    }
}
