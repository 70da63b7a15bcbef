//! The second pass: one slice's pixels as Hounsfield units.

use super::error::{chain, DicomError};
use super::header::{Fields, SliceHeader};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use dicom_pixeldata::{PixelDecoder, PixelRepresentation};

/// Transfer syntaxes of JPEG-LS, whose only codec (CharLS) is C++ and cannot be linked
/// into a wasm32-wasip2 component.
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

/// Reads `header`'s file in full and returns its pixels, row-major, as HU:
/// stored value * RescaleSlope + RescaleIntercept, rounded and clamped to int16.
pub fn decode_slice(header: &SliceHeader) -> Result<Vec<i16>, DicomError> {
    let name = &header.file.name;
    if JPEG_LS.contains(&header.transfer_syntax.as_str()) {
        return Err(DicomError::JpegLs {
            file: name.clone(),
            uid: header.transfer_syntax.clone(),
        });
    }
    let obj = OpenFileOptions::new()
        .open_file(&header.file.path)
        .map_err(|e| DicomError::Parse {
            file: name.clone(),
            reason: format!("truncated or corrupt: {}", chain(&e)),
        })?;
    let f = Fields {
        obj: &obj,
        file: name,
    };
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(f.missing(tags::PIXEL_DATA, "PixelData"));
    }
    let slope = f.float_or(tags::RESCALE_SLOPE, "RescaleSlope", 1.0)?;
    let intercept = f.float_or(tags::RESCALE_INTERCEPT, "RescaleIntercept", 0.0)?;
    let decode_err = |reason: String| DicomError::Decode {
        file: name.clone(),
        uid: header.transfer_syntax.clone(),
        reason,
    };
    let pixels = obj.decode_pixel_data().map_err(|e| decode_err(chain(&e)))?;
    let (rows, cols) = (pixels.rows() as usize, pixels.columns() as usize);
    if (rows, cols) != (header.rows, header.columns) {
        return Err(decode_err(format!(
            "decoded {cols}x{rows} pixels, header says {}x{}",
            header.columns, header.rows
        )));
    }
    let n = rows * cols;
    let bits_allocated = pixels.bits_allocated();
    let bits_stored = pixels.bits_stored().clamp(1, bits_allocated.max(1));
    let signed = pixels.pixel_representation() == PixelRepresentation::Signed;
    let data = pixels.data();
    let bytes = usize::from(bits_allocated / 8);
    if !(bits_allocated == 8 || bits_allocated == 16) || data.len() < n * bytes {
        return Err(decode_err(format!(
            "{} bytes of {bits_allocated}-bit samples for {cols}x{rows} pixels; \
             only 8- and 16-bit greyscale is supported",
            data.len()
        )));
    }
    // Stored values: keep the low `bits_stored` bits, sign-extended when signed.
    let shift = 32 - u32::from(bits_stored);
    let stored = |i: usize| -> i32 {
        let raw = if bytes == 2 {
            u16::from_le_bytes([data[2 * i], data[2 * i + 1]]) as u32
        } else {
            data[i] as u32
        };
        if signed {
            ((raw << shift) as i32) >> shift
        } else {
            ((raw << shift) >> shift) as i32
        }
    };
    let clamp = |v: f64| v.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16;
    let out = if slope == 1.0 && intercept.fract() == 0.0 {
        // The usual CT case: an integer offset, no float per voxel.
        let off = intercept.clamp(-1e6, 1e6) as i32;
        (0..n)
            .map(|i| (stored(i) + off).clamp(i16::MIN as i32, i16::MAX as i32) as i16)
            .collect()
    } else {
        (0..n)
            .map(|i| clamp(stored(i) as f64 * slope + intercept))
            .collect()
    };
    Ok(out)
}
