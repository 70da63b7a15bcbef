//! Encoding and decoding single `ward/ct-slice-v1` messages (layout in the module docs).

use super::error::CtSliceError;
use super::{HEADER_PREFIX, KIND_HEADER, KIND_SLICE, MAGIC, SLICE_PREFIX, VERSION};
use crate::raw_io::{RawSample, VolumeHeader};

/// One axial slice as carried by a slice message.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// Its z index in the volume.
    pub index: usize,
    pub nx: usize,
    pub ny: usize,
    /// `nx * ny` samples, x fastest.
    pub samples: Vec<i16>,
}

/// The header message of a stream carrying the volume `header` describes.
pub fn encode_header(header: &VolumeHeader) -> Result<Vec<u8>, CtSliceError> {
    check_header(header)?;
    let json = serde_json::to_vec(header).map_err(|e| CtSliceError::HeaderJson(e.to_string()))?;
    let len = field("header length", json.len())?;
    let mut out = Vec::with_capacity(HEADER_PREFIX + json.len());
    push_preamble(&mut out, KIND_HEADER);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// The message carrying slice `index` of `nx` x `ny` samples.
pub fn encode_slice(
    index: usize,
    nx: usize,
    ny: usize,
    samples: &[i16],
) -> Result<Vec<u8>, CtSliceError> {
    if nx.checked_mul(ny) != Some(samples.len()) {
        return Err(CtSliceError::Samples {
            samples: samples.len(),
            nx,
            ny,
        });
    }
    let fields = [
        field("slice index", index)?,
        field("nx", nx)?,
        field("ny", ny)?,
    ];
    let mut out = Vec::with_capacity(SLICE_PREFIX + samples.len() * 2);
    push_preamble(&mut out, KIND_SLICE);
    for f in fields {
        out.extend_from_slice(&f.to_le_bytes());
    }
    for &s in samples {
        s.write_le(&mut out);
    }
    Ok(out)
}

/// Decodes a message that must be the header.
pub fn decode_header(bytes: &[u8]) -> Result<VolumeHeader, CtSliceError> {
    if preamble(bytes)? == KIND_SLICE {
        let index = decode_slice_fields(bytes)?.0;
        return Err(CtSliceError::SliceBeforeHeader { index });
    }
    let short = || CtSliceError::Short {
        part: "header",
        found: bytes.len(),
        needed: HEADER_PREFIX,
    };
    let len = u32_at(bytes, 8).ok_or_else(short)?;
    let expected = HEADER_PREFIX as u64 + u64::from(len);
    if bytes.len() as u64 != expected {
        return Err(CtSliceError::Length {
            part: "header",
            found: bytes.len(),
            expected,
        });
    }
    let header: VolumeHeader = serde_json::from_slice(&bytes[HEADER_PREFIX..])
        .map_err(|e| CtSliceError::HeaderJson(e.to_string()))?;
    check_header(&header)?;
    Ok(header)
}

/// Decodes a message that must be a slice.
pub fn decode_slice(bytes: &[u8]) -> Result<Slice, CtSliceError> {
    if preamble(bytes)? == KIND_HEADER {
        return Err(CtSliceError::UnexpectedHeader);
    }
    let (index, nx, ny) = decode_slice_fields(bytes)?;
    // In u64 so that no u32 shape can overflow the arithmetic, even on wasm32.
    let expected = (nx as u64 * ny as u64)
        .saturating_mul(2)
        .saturating_add(SLICE_PREFIX as u64);
    if bytes.len() as u64 != expected {
        return Err(CtSliceError::Length {
            part: "slice",
            found: bytes.len(),
            expected,
        });
    }
    let samples = bytes[SLICE_PREFIX..]
        .chunks_exact(2)
        .map(i16::read_le)
        .collect();
    Ok(Slice {
        index,
        nx,
        ny,
        samples,
    })
}

/// The kind byte, once magic, version and reserved bytes are checked.
fn preamble(bytes: &[u8]) -> Result<u8, CtSliceError> {
    let Some(head) = bytes.get(..8) else {
        return Err(CtSliceError::Short {
            part: "message",
            found: bytes.len(),
            needed: 8,
        });
    };
    let magic = [head[0], head[1], head[2], head[3]];
    if magic != MAGIC {
        return Err(CtSliceError::Magic { found: magic });
    }
    if head[4] != VERSION {
        return Err(CtSliceError::Version {
            found: head[4],
            expected: VERSION,
        });
    }
    let reserved = u16::from_le_bytes([head[6], head[7]]);
    if reserved != 0 {
        return Err(CtSliceError::Reserved { found: reserved });
    }
    match head[5] {
        KIND_HEADER | KIND_SLICE => Ok(head[5]),
        found => Err(CtSliceError::Kind { found }),
    }
}

/// Index, nx and ny of a slice message.
fn decode_slice_fields(bytes: &[u8]) -> Result<(usize, usize, usize), CtSliceError> {
    let at = |offset| {
        u32_at(bytes, offset)
            .map(|v| v as usize)
            .ok_or(CtSliceError::Short {
                part: "slice",
                found: bytes.len(),
                needed: SLICE_PREFIX,
            })
    };
    Ok((at(8)?, at(12)?, at(16)?))
}

/// What a stream header must say beyond a volume file's header: int16 samples and a slice
/// shape that fits the slice message's fields.
fn check_header(header: &VolumeHeader) -> Result<(), CtSliceError> {
    if header.dtype != i16::DTYPE {
        return Err(CtSliceError::Dtype(header.dtype.clone()));
    }
    header.check_geometry().map_err(CtSliceError::Geometry)?;
    field("nx", header.dims[0])?;
    field("ny", header.dims[1])?;
    field("slice count", header.dims[2])?;
    Ok(())
}

fn push_preamble(out: &mut Vec<u8>, kind: u8) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&[0, 0]);
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn field(what: &'static str, value: usize) -> Result<u32, CtSliceError> {
    u32::try_from(value).map_err(|_| CtSliceError::FieldRange { what, value })
}
