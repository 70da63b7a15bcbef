//! Colour frames as interleaved RGB: native YBR_FULL and YBR_FULL_422 converted (PS3.3
//! C.7.6.3.1.2), planar configuration 1 interleaved, palette indices looked up in the
//! palette's tables; and the grey (luma) image Ward's greyscale stages work on.

use super::error::DicomError;
use super::fields::Fields;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::Tag;
use dicom_dictionary_std::tags;

/// RGB samples of a frame, interleaved (R, G, B per pixel, x fastest), at the depth the
/// source gives them.
#[derive(Debug, Clone, PartialEq)]
pub enum Rgb {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

impl Rgb {
    pub fn len(&self) -> usize {
        match self {
            Rgb::U8(v) => v.len(),
            Rgb::U16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `dtype` of the samples, as `raw_io` names it.
    pub fn dtype(&self) -> &'static str {
        match self {
            Rgb::U8(_) => "uint8",
            Rgb::U16(_) => "uint16",
        }
    }

    /// Luma (Rec. 601: 0.299 R + 0.587 G + 0.114 B) on a 0–255 scale, one per pixel.
    pub fn luma(&self) -> Vec<i16> {
        let y = |r: f64, g: f64, b: f64| (0.299 * r + 0.587 * g + 0.114 * b).round() as i16;
        match self {
            Rgb::U8(v) => v
                .chunks_exact(3)
                .map(|p| y(p[0] as f64, p[1] as f64, p[2] as f64))
                .collect(),
            Rgb::U16(v) => v
                .chunks_exact(3)
                .map(|p| {
                    y(
                        p[0] as f64 / 257.0,
                        p[1] as f64 / 257.0,
                        p[2] as f64 / 257.0,
                    )
                })
                .collect(),
        }
    }
}

/// An 8-bit YCbCr triple (full range) as RGB.
fn ybr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (y as f64, cb as f64 - 128.0, cr as f64 - 128.0);
    let c = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [
        c(y + 1.402 * cr),
        c(y - 0.344136 * cb - 0.714136 * cr),
        c(y + 1.772 * cb),
    ]
}

/// A native (uncompressed) 8-bit colour frame as interleaved RGB. `data` is the frame's
/// stored bytes.
pub fn native_colour_u8(
    data: &[u8],
    pixels: usize,
    photometric: &str,
    planar: bool,
) -> Result<Vec<u8>, String> {
    if photometric == "YBR_FULL_422" {
        // Two pixels share one Cb and one Cr: Y1 Y2 Cb Cr (PS3.3 C.7.6.3.1.2).
        if data.len() < pixels.div_ceil(2) * 4 {
            return Err(format!(
                "{} bytes of YBR_FULL_422 for {pixels} pixels",
                data.len()
            ));
        }
        let mut out = Vec::with_capacity(pixels * 3);
        for (i, q) in data.chunks_exact(4).take(pixels.div_ceil(2)).enumerate() {
            out.extend_from_slice(&ybr_to_rgb(q[0], q[2], q[3]));
            if 2 * i + 1 < pixels {
                out.extend_from_slice(&ybr_to_rgb(q[1], q[2], q[3]));
            }
        }
        return Ok(out);
    }
    if data.len() < pixels * 3 {
        return Err(format!(
            "{} bytes of colour for {pixels} pixels",
            data.len()
        ));
    }
    let sample = |p: usize, s: usize| {
        if planar {
            data[s * pixels + p]
        } else {
            data[3 * p + s]
        }
    };
    let mut out = Vec::with_capacity(pixels * 3);
    for p in 0..pixels {
        let (a, b, c) = (sample(p, 0), sample(p, 1), sample(p, 2));
        match photometric {
            "YBR_FULL" => out.extend_from_slice(&ybr_to_rgb(a, b, c)),
            _ => out.extend_from_slice(&[a, b, c]),
        }
    }
    Ok(out)
}

/// A native 16-bit RGB frame as interleaved RGB (YBR at 16 bits is not read).
pub fn native_colour_u16(
    samples: &[u16],
    pixels: usize,
    photometric: &str,
    planar: bool,
) -> Result<Vec<u16>, String> {
    if photometric != "RGB" {
        return Err(format!("16-bit {photometric} is not read; only 16-bit RGB"));
    }
    if samples.len() < pixels * 3 {
        return Err(format!(
            "{} samples of colour for {pixels} pixels",
            samples.len()
        ));
    }
    Ok(if planar {
        (0..pixels)
            .flat_map(|p| (0..3).map(move |s| samples[s * pixels + p]))
            .collect()
    } else {
        samples[..pixels * 3].to_vec()
    })
}

/// The red, green and blue tables of a PALETTE COLOR image.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    /// First stored value mapped (values below map to entry 0, above to the last entry).
    first: i64,
    /// Entries of red, green, blue.
    tables: [Vec<u16>; 3],
    /// True when the entries are 16-bit.
    wide: bool,
}

impl Palette {
    /// Reads the tables from the header, plain or segmented.
    pub fn read(f: &Fields, big_endian: bool) -> Result<Palette, DicomError> {
        let channels = [
            (
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                "RedPaletteColorLookupTableData",
            ),
            (
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                "GreenPaletteColorLookupTableData",
            ),
            (
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                "BluePaletteColorLookupTableData",
            ),
        ];
        let mut tables: [Vec<u16>; 3] = Default::default();
        let mut first = 0;
        let mut wide = false;
        for (n, (descriptor, data, segmented, name)) in channels.into_iter().enumerate() {
            let d = descriptor_of(f, descriptor)?;
            let bits = d[2];
            let entries = if d[0] == 0 { 65536 } else { d[0] as usize };
            let table: Vec<u16> = match f.obj.get(data) {
                Some(_) => {
                    let words = words_of(f, data, name, big_endian)?;
                    if bits <= 8 && words.len() * 2 == entries {
                        // 8-bit entries packed two to a word.
                        words.iter().flat_map(|w| [w & 0xff, w >> 8]).collect()
                    } else if bits <= 8 {
                        // 8-bit entries one to a word: the low byte holds the value.
                        words.iter().map(|w| w & 0xff).collect()
                    } else {
                        words
                    }
                }
                None => {
                    let words = words_of(f, segmented, name, big_endian)?;
                    expand_segmented(&words, entries).map_err(|reason| {
                        f.invalid(
                            segmented,
                            "SegmentedPaletteColorLookupTableData",
                            "",
                            &reason,
                        )
                    })?
                }
            };
            if table.len() < entries {
                return Err(f.invalid(
                    data,
                    name,
                    format!("{} entries", table.len()),
                    &format!("the descriptor says {entries}"),
                ));
            }
            first = d[1];
            wide |= bits > 8;
            tables[n] = table[..entries].to_vec();
        }
        Ok(Palette {
            first,
            tables,
            wide,
        })
    }

    /// The colour of stored value `v`.
    fn colour(&self, v: i64) -> [u16; 3] {
        let at = |t: &Vec<u16>| {
            let i = (v - self.first).clamp(0, t.len() as i64 - 1) as usize;
            t[i]
        };
        [
            at(&self.tables[0]),
            at(&self.tables[1]),
            at(&self.tables[2]),
        ]
    }

    /// The RGB of a frame of indices.
    pub fn apply(&self, indices: impl Iterator<Item = i64>) -> Rgb {
        if self.wide {
            Rgb::U16(indices.flat_map(|v| self.colour(v)).collect())
        } else {
            Rgb::U8(
                indices
                    .flat_map(|v| self.colour(v).map(|c| c as u8))
                    .collect(),
            )
        }
    }
}

/// A palette descriptor: entries, first mapped value, bits per entry (PS3.3 C.7.6.3.1.5).
fn descriptor_of(f: &Fields, tag: Tag) -> Result<[i64; 3], DicomError> {
    let name = "PaletteColorLookupTableDescriptor";
    let text = f.req_str(tag, name)?;
    let parts: Vec<i64> = text
        .split('\\')
        .filter_map(|p| p.trim().parse::<i64>().ok())
        .collect();
    match parts[..] {
        [entries, first, bits] if (0..=65535).contains(&entries) && (bits == 8 || bits == 16) => {
            // The first mapped value is US or SS by PixelRepresentation; US here.
            Ok([entries, first & 0xffff, bits])
        }
        _ => Err(f.invalid(tag, name, text, "expected entries\\first\\bits (8 or 16)")),
    }
}

/// The 16-bit words of an OW or US element, whichever way the parser kept them.
fn words_of(
    f: &Fields,
    tag: Tag,
    name: &'static str,
    big_endian: bool,
) -> Result<Vec<u16>, DicomError> {
    let e = f.obj.get(tag).ok_or_else(|| f.missing(tag, name))?;
    match e.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => Ok(v.to_vec()),
        // An OW element of a big-endian file may come out as its raw bytes.
        Value::Primitive(PrimitiveValue::U8(b)) if b.len() % 2 == 0 => Ok(b
            .chunks_exact(2)
            .map(|w| match big_endian {
                true => u16::from_be_bytes([w[0], w[1]]),
                false => u16::from_le_bytes([w[0], w[1]]),
            })
            .collect()),
        _ => Err(f.invalid(tag, name, "", "not a table of 16-bit words")),
    }
}

/// Expands a segmented palette table (PS3.3 C.7.9.2): discrete segments (opcode 0) and
/// linear ones (opcode 1); indirect segments (opcode 2) are refused.
fn expand_segmented(words: &[u16], entries: usize) -> Result<Vec<u16>, String> {
    let mut out: Vec<u16> = Vec::with_capacity(entries);
    let mut i = 0;
    while i + 1 < words.len() && out.len() < entries {
        let (opcode, n) = (words[i], words[i + 1] as usize);
        match opcode {
            0 => {
                let values = words
                    .get(i + 2..i + 2 + n)
                    .ok_or("a discrete segment runs past the table's end")?;
                out.extend_from_slice(values);
                i += 2 + n;
            }
            1 => {
                let end = *words
                    .get(i + 2)
                    .ok_or("a linear segment without its end value")?
                    as f64;
                let start = *out.last().ok_or("a linear segment first in the table")? as f64;
                for k in 1..=n {
                    out.push((start + (end - start) * k as f64 / n as f64).round() as u16);
                }
                i += 3;
            }
            2 => return Err("indirect segments (opcode 2) are not read".into()),
            other => return Err(format!("unknown segment opcode {other}")),
        }
    }
    out.truncate(entries);
    Ok(out)
}
