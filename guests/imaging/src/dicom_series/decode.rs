//! The second pass: frames' pixels, greyscale as rescaled values (HU for CT), colour as RGB
//! with its luma as the grey image. A file is opened once for all the frames read from it.

use super::colour::{native_colour_u16, native_colour_u8, Palette, Rgb};
use super::error::{chain, DicomError};
use super::fields::Fields;
use super::header::{Photometric, SliceHeader};
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use std::borrow::Cow;
use std::path::PathBuf;

/// Transfer syntaxes of JPEG-LS, whose only codec (CharLS) is C++ and cannot be linked
/// into a wasm32-wasip2 component.
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

const EXPLICIT_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// JPEG baseline and extended: their decoder turns three components into RGB as YCbCr.
const JPEG_LOSSY: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];

/// One frame's pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Rescaled grey values, or the luma of a colour frame; row-major.
    pub grey: Vec<i16>,
    /// The RGB of a colour or palette frame.
    pub rgb: Option<Rgb>,
}

/// Decodes frames, keeping the last file it opened.
#[derive(Default)]
pub struct FrameReader {
    open: Option<OpenFile>,
}

struct OpenFile {
    path: PathBuf,
    obj: DefaultDicomObject,
    /// Native (uncompressed) pixel data as little-endian bytes, taken out once so that
    /// reading each frame does not copy all of them again.
    native: Option<Vec<u8>>,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The pixels of `header`'s frame.
    pub fn read(&mut self, header: &SliceHeader) -> Result<Frame, DicomError> {
        let name = &header.file.name;
        if JPEG_LS.contains(&header.transfer_syntax.as_str()) {
            return Err(DicomError::JpegLs {
                file: name.clone(),
                uid: header.transfer_syntax.clone(),
            });
        }
        if self.open.as_ref().map(|o| &o.path) != Some(&header.file.path) {
            self.open = None;
            let obj = OpenFileOptions::new()
                .open_file(&header.file.path)
                .map_err(|e| DicomError::Parse {
                    file: name.clone(),
                    reason: format!("truncated or corrupt: {}", chain(&e)),
                })?;
            let native = match obj.get(tags::PIXEL_DATA) {
                Some(e) => match e.value() {
                    Value::Primitive(p) => Some(p.to_bytes().into_owned()),
                    _ => None,
                },
                None => None,
            };
            self.open = Some(OpenFile {
                path: header.file.path.clone(),
                obj,
                native,
            });
        }
        let open = self.open.as_ref().expect("opened above");
        decode_frame(&open.obj, open.native.as_deref(), header)
    }
}

/// Decodes `header`'s frame of the whole file `obj`. The single-frame entry point, kept for
/// callers that read one file.
pub fn decode_slice(header: &SliceHeader) -> Result<Vec<i16>, DicomError> {
    Ok(FrameReader::new().read(header)?.grey)
}

fn decode_frame(
    obj: &DefaultDicomObject,
    native_data: Option<&[u8]>,
    header: &SliceHeader,
) -> Result<Frame, DicomError> {
    let name = &header.file.name;
    let f = Fields { obj, file: name };
    let decode_err = |reason: String| DicomError::Decode {
        file: if header.frames_in_file > 1 {
            format!("{name} frame {}", header.frame + 1)
        } else {
            name.clone()
        },
        uid: header.transfer_syntax.clone(),
        reason,
    };
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(f.missing(tags::PIXEL_DATA, "PixelData"));
    }
    let bits_allocated = f.count(tags::BITS_ALLOCATED, "BitsAllocated")? as u16;
    let bits_stored = f
        .opt_int(tags::BITS_STORED)
        .map(|b| b.clamp(1, bits_allocated as i64) as u16)
        .unwrap_or(bits_allocated);
    let signed = f.opt_int(tags::PIXEL_REPRESENTATION) == Some(1);
    let planar = f.opt_int(tags::PLANAR_CONFIGURATION) == Some(1);
    if !(bits_allocated == 8 || bits_allocated == 16) {
        return Err(decode_err(format!(
            "{bits_allocated}-bit samples: only 8- and 16-bit samples are read"
        )));
    }
    let (rows, cols) = (header.rows, header.columns);
    let pixels = rows * cols;
    let bytes = usize::from(bits_allocated / 8);
    let samples = match header.photometric {
        Photometric::Colour(_) => 3,
        _ => 1,
    };

    // The frame's bytes: sliced out of native pixel data, or decoded by the codec (which
    // gives interleaved RGB for colour).
    let (frame, native): (Cow<[u8]>, bool) = match native_data {
        Some(all) => {
            let size = match &header.photometric {
                Photometric::Colour(name) if name == "YBR_FULL_422" => pixels.div_ceil(2) * 4,
                _ => pixels * samples * bytes,
            };
            let start = size * header.frame as usize;
            let Some(part) = all.get(start..start + size) else {
                return Err(decode_err(format!(
                    "pixel data holds {} bytes; frame {} needs bytes {start}..{}",
                    all.len(),
                    header.frame + 1,
                    start + size
                )));
            };
            (Cow::Borrowed(part), true)
        }
        None => {
            if matches!(&header.photometric, Photometric::Colour(n) if n == "RGB")
                && JPEG_LOSSY.contains(&header.transfer_syntax.as_str())
            {
                if let Some(Value::PixelSequence(seq)) =
                    obj.get(tags::PIXEL_DATA).map(|e| e.value())
                {
                    if seq
                        .fragments()
                        .first()
                        .is_some_and(|j| rgb_without_marker(j))
                    {
                        return Err(decode_err(
                            "RGB stored in JPEG without an Adobe APP14 or JFIF marker: \
                             Ward's JPEG decoder would convert it as YCbCr"
                                .into(),
                        ));
                    }
                }
            }
            let decoded = obj
                .decode_pixel_data_frame(header.frame)
                .map_err(|e| decode_err(chain(&e)))?;
            if (decoded.rows() as usize, decoded.columns() as usize) != (rows, cols) {
                return Err(decode_err(format!(
                    "decoded {}x{} pixels, header says {cols}x{rows}",
                    decoded.columns(),
                    decoded.rows()
                )));
            }
            (Cow::Owned(decoded.into_data()), false)
        }
    };
    if frame.len() < pixels * bytes {
        return Err(decode_err(format!(
            "{} bytes of {bits_allocated}-bit samples for {cols}x{rows} pixels",
            frame.len()
        )));
    }
    let data = &frame[..];

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

    match &header.photometric {
        Photometric::Grey(_) => {
            let (slope, intercept) = match header.rescale {
                Some(r) => r,
                None => (
                    f.float_or(tags::RESCALE_SLOPE, "RescaleSlope", 1.0)?,
                    f.float_or(tags::RESCALE_INTERCEPT, "RescaleIntercept", 0.0)?,
                ),
            };
            let clamp = |v: f64| v.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16;
            let grey = if slope == 1.0 && intercept.fract() == 0.0 {
                // The usual CT case: an integer offset, no float per voxel.
                let off = intercept.clamp(-1e6, 1e6) as i32;
                (0..pixels)
                    .map(|i| (stored(i) + off).clamp(i16::MIN as i32, i16::MAX as i32) as i16)
                    .collect()
            } else {
                (0..pixels)
                    .map(|i| clamp(stored(i) as f64 * slope + intercept))
                    .collect()
            };
            Ok(Frame { grey, rgb: None })
        }
        Photometric::Palette => {
            let palette = Palette::read(&f, header.transfer_syntax == EXPLICIT_BIG_ENDIAN)?;
            let rgb = palette.apply((0..pixels).map(|i| stored(i) as i64));
            Ok(Frame {
                grey: rgb.luma(),
                rgb: Some(rgb),
            })
        }
        Photometric::Colour(name) => {
            // A codec has already made RGB of YBR and interleaved the planes.
            let (photometric, planar) = if native {
                (name.as_str(), planar)
            } else {
                ("RGB", false)
            };
            let rgb = if bytes == 1 {
                Rgb::U8(native_colour_u8(data, pixels, photometric, planar).map_err(decode_err)?)
            } else {
                let words: Vec<u16> = data
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect();
                Rgb::U16(
                    native_colour_u16(&words, pixels, photometric, planar).map_err(decode_err)?,
                )
            };
            Ok(Frame {
                grey: rgb.luma(),
                rgb: Some(rgb),
            })
        }
    }
}

/// True when a three-component JPEG stream has neither an Adobe APP14 nor a JFIF APP0
/// marker: under PhotometricInterpretation RGB its components are stored untransformed,
/// and the JPEG decoder, told nothing, would convert them as YCbCr.
fn rgb_without_marker(jpeg: &[u8]) -> bool {
    let mut i = 2;
    let mut marked = false;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xff {
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        let body = &jpeg[(i + 4).min(jpeg.len())..(i + 2 + len).min(jpeg.len())];
        match marker {
            0xee if body.starts_with(b"Adobe") => marked = true,
            0xe0 if body.starts_with(b"JFIF") => marked = true,
            // P, Y, X, then Nf: the number of components.
            0xc0..=0xc3 => return body.get(5) == Some(&3) && !marked,
            0xda => return false,
            _ => {}
        }
        i += 2 + len;
    }
    false
}
