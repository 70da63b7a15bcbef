//! The on-disk volume format shared by the stages and the host:
//! `<stem>.raw` holds the samples little-endian, x fastest, then y, then z;
//! `<stem>.json` holds the geometry, the sample type and whatever else the writer adds.

use crate::volume::{Volume, AXIAL_ORIENTATION};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RawIoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON for a volume header: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: dtype is '{found}', expected '{expected}'")]
    Dtype {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error("{path}: has {found} bytes, dims {dims:?} of {dtype} need {expected}")]
    Size {
        path: PathBuf,
        found: usize,
        expected: usize,
        dims: [usize; 3],
        dtype: &'static str,
    },
    #[error("{path}: invalid geometry: {reason}")]
    Geometry { path: PathBuf, reason: String },
}

/// A sample type that has an on-disk form.
pub trait RawSample: Copy + Default {
    /// The `dtype` written to the header.
    const DTYPE: &'static str;
    const SIZE: usize;
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(bytes: &[u8]) -> Self;
}

impl RawSample for i16 {
    const DTYPE: &'static str = "int16";
    const SIZE: usize = 2;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(b: &[u8]) -> Self {
        i16::from_le_bytes([b[0], b[1]])
    }
}

impl RawSample for u16 {
    const DTYPE: &'static str = "uint16";
    const SIZE: usize = 2;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(b: &[u8]) -> Self {
        u16::from_le_bytes([b[0], b[1]])
    }
}

impl RawSample for u8 {
    const DTYPE: &'static str = "uint8";
    const SIZE: usize = 1;
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self);
    }
    fn read_le(b: &[u8]) -> Self {
        b[0]
    }
}

/// The JSON header. Keys other than the geometry (UIDs, label counts, ...) are kept in
/// `extra`, which serialises after the geometry in sorted key order, so output is
/// deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeHeader {
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    #[serde(default = "axial")]
    pub orientation: [f64; 6],
    pub dtype: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn axial() -> [f64; 6] {
    AXIAL_ORIENTATION
}

impl VolumeHeader {
    /// The header describing `volume` with sample type `T`.
    pub fn of<T: RawSample>(volume: &Volume<T>) -> Self {
        VolumeHeader {
            dims: volume.dims,
            spacing: volume.spacing,
            origin: volume.origin,
            orientation: volume.orientation,
            dtype: T::DTYPE.to_string(),
            extra: serde_json::Map::new(),
        }
    }

    /// Why the geometry cannot describe a volume, if it cannot: a zero or overflowing
    /// dimension, or a spacing that is not a positive number. Headers from files and from
    /// stream messages are checked alike.
    pub fn check_geometry(&self) -> Result<(), String> {
        if self.dims.contains(&0) {
            return Err(format!("dims {:?} has a zero", self.dims));
        }
        if self
            .dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_none()
        {
            return Err(format!("dims {:?} overflow", self.dims));
        }
        if self.spacing.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
            return Err(format!("spacing {:?} must be positive", self.spacing));
        }
        Ok(())
    }
}

/// Paths of `<dir>/<stem>.json` and `<dir>/<stem>.raw`.
pub fn paths(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.raw")),
    )
}

/// Reads and checks a header.
pub fn read_header(path: &Path) -> Result<VolumeHeader, RawIoError> {
    let text = fs::read(path).map_err(|source| RawIoError::Io {
        path: path.to_owned(),
        source,
    })?;
    let header: VolumeHeader =
        serde_json::from_slice(&text).map_err(|source| RawIoError::Json {
            path: path.to_owned(),
            source,
        })?;
    header
        .check_geometry()
        .map_err(|reason| RawIoError::Geometry {
            path: path.to_owned(),
            reason,
        })?;
    Ok(header)
}

/// Reads `<dir>/<stem>.json` and `<dir>/<stem>.raw` as a volume of `T`.
pub fn read_volume<T: RawSample>(
    dir: &Path,
    stem: &str,
) -> Result<(Volume<T>, VolumeHeader), RawIoError> {
    let (json_path, raw_path) = paths(dir, stem);
    let header = read_header(&json_path)?;
    if header.dtype != T::DTYPE {
        return Err(RawIoError::Dtype {
            path: json_path,
            found: header.dtype,
            expected: T::DTYPE,
        });
    }
    let bytes = fs::read(&raw_path).map_err(|source| RawIoError::Io {
        path: raw_path.clone(),
        source,
    })?;
    let data = decode_samples::<T>(&bytes, header.dims, &raw_path)?;
    let volume = Volume {
        dims: header.dims,
        spacing: header.spacing,
        origin: header.origin,
        orientation: header.orientation,
        data,
    };
    Ok((volume, header))
}

/// Decodes raw little-endian samples, checking the size against `dims`.
pub fn decode_samples<T: RawSample>(
    bytes: &[u8],
    dims: [usize; 3],
    path: &Path,
) -> Result<Vec<T>, RawIoError> {
    let expected = dims[0] * dims[1] * dims[2] * T::SIZE;
    if bytes.len() != expected {
        return Err(RawIoError::Size {
            path: path.to_owned(),
            found: bytes.len(),
            expected,
            dims,
            dtype: T::DTYPE,
        });
    }
    Ok(bytes.chunks_exact(T::SIZE).map(T::read_le).collect())
}

/// Encodes samples little-endian.
pub fn encode_samples<T: RawSample>(data: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * T::SIZE);
    for &v in data {
        v.write_le(&mut out);
    }
    out
}

/// Writes `<dir>/<stem>.raw` and `<dir>/<stem>.json`; `extra` keys are added to the header
/// (they must not repeat the geometry keys).
pub fn write_volume<T: RawSample>(
    dir: &Path,
    stem: &str,
    volume: &Volume<T>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<(), RawIoError> {
    let (json_path, raw_path) = paths(dir, stem);
    let mut header = VolumeHeader::of(volume);
    header.extra = extra;
    write_bytes(&raw_path, &encode_samples(&volume.data))?;
    write_json(&json_path, &header)
}

/// Writes pretty JSON with a trailing newline.
pub fn write_json<S: Serialize>(path: &Path, value: &S) -> Result<(), RawIoError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|source| RawIoError::Json {
        path: path.to_owned(),
        source,
    })?;
    text.push(b'\n');
    write_bytes(path, &text)
}

/// Writes a whole file.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), RawIoError> {
    #[cfg(all(target_os = "wasi", target_env = "p2"))]
    if crate::wasi_write::write_whole_file(path, bytes) {
        return Ok(());
    }
    let io = |source| RawIoError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs::File::create(path).map_err(io)?;
    let mut w = BufWriter::new(file);
    w.write_all(bytes).map_err(io)?;
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int16_round_trip_keeps_samples_geometry_and_extra_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<i16> = (0..2 * 3 * 4).map(|i| (i as i16 - 12) * 1000).collect();
        let mut v = Volume::new([2, 3, 4], [0.5, 0.75, 2.5], [-1.0, 2.0, -3.0], data);
        v.orientation = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
        let mut extra = serde_json::Map::new();
        extra.insert("labels".into(), serde_json::json!(7));
        write_volume(dir.path(), "volume", &v, extra).unwrap();

        let raw = fs::read(dir.path().join("volume.raw")).unwrap();
        assert_eq!(raw.len(), 48);
        // -12000 little-endian first: x fastest.
        assert_eq!(&raw[0..2], &(-12000i16).to_le_bytes());

        let (back, header) = read_volume::<i16>(dir.path(), "volume").unwrap();
        assert_eq!(back, v);
        assert_eq!(header.dtype, "int16");
        assert_eq!(header.extra["labels"], 7);
    }

    #[test]
    fn wrong_dtype_and_size_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volume::new([2, 2, 1], [1.0; 3], [0.0; 3], vec![1u16, 2, 3, 4]);
        write_volume(dir.path(), "labels", &v, Default::default()).unwrap();
        let err = read_volume::<i16>(dir.path(), "labels").unwrap_err();
        assert!(matches!(err, RawIoError::Dtype { .. }), "{err}");

        fs::write(dir.path().join("labels.raw"), [0u8; 6]).unwrap();
        let err = read_volume::<u16>(dir.path(), "labels").unwrap_err();
        assert!(err.to_string().contains("has 6 bytes"), "{err}");
    }
}
