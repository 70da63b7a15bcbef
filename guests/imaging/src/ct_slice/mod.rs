//! The `ward/ct-slice-v1` stream: a CT series sent over a port one axial slice at a time,
//! so a downstream stage can start before the whole volume exists.
//!
//! A stream is one header message, then one slice message per axial slice, z = 0, 1, ...,
//! in order, then the end of the stream. Every message starts with the same 8 bytes:
//!
//! | bytes | what |
//! | --- | --- |
//! | 0..4 | magic `WCTS` |
//! | 4 | format version, 1 |
//! | 5 | kind: 1 header, 2 slice |
//! | 6..8 | reserved, zero |
//!
//! Header (kind 1): bytes 8..12 the length `n` of the JSON text (u32 little-endian), then
//! exactly `n` bytes of UTF-8 JSON: the same object as a `volume.json` written by
//! [`crate::raw_io`] (`dims`, `spacing`, `origin`, `orientation`, `dtype` = `"int16"`, and
//! every other key the writer adds, such as the series identity `dicom-reader` records).
//!
//! Slice (kind 2): bytes 8..12 the slice index z, 12..16 `nx`, 16..20 `ny` (u32
//! little-endian each), then exactly `nx * ny` samples, i16 little-endian, x fastest.
//!
//! Decoding checks every length, so a short, long or corrupted message is an error, never a
//! panic. The header is JSON rather than fixed fields so that a stage assembling the stream
//! writes exactly the `volume.json` a stage reading the volume file would.

mod assembler;
mod error;
mod message;
mod order;
#[cfg(test)]
mod tests;

pub use assembler::VolumeAssembler;
pub use error::CtSliceError;
pub use message::{decode_header, decode_slice, encode_header, encode_slice, Slice};
pub use order::SliceOrder;

/// The port `type` naming this format.
pub const MESSAGE_TYPE: &str = "ward/ct-slice-v1";
/// The first four bytes of every message.
pub const MAGIC: [u8; 4] = *b"WCTS";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Kind byte of the header message.
pub const KIND_HEADER: u8 = 1;
/// Kind byte of a slice message.
pub const KIND_SLICE: u8 = 2;
/// Bytes before the JSON text of a header.
pub const HEADER_PREFIX: usize = 12;
/// Bytes before the samples of a slice.
pub const SLICE_PREFIX: usize = 20;
