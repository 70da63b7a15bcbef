//! What can be wrong with a `ward/ct-slice-v1` message or stream.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum CtSliceError {
    #[error("message of {found} bytes is shorter than the {needed} bytes of a {part} prefix")]
    Short {
        part: &'static str,
        found: usize,
        needed: usize,
    },
    #[error("message does not start with the ward/ct-slice magic 'WCTS' (found {found:02x?})")]
    Magic { found: [u8; 4] },
    #[error("message has format version {found}; version {expected} is supported")]
    Version { found: u8, expected: u8 },
    #[error("message kind {found} is neither a header (1) nor a slice (2)")]
    Kind { found: u8 },
    #[error("message reserved bytes are {found:#06x}, must be zero")]
    Reserved { found: u16 },
    #[error("{part} message has {found} bytes, its fields need exactly {expected}")]
    Length {
        part: &'static str,
        found: usize,
        expected: u64,
    },
    #[error("header is not a valid volume header: {0}")]
    HeaderJson(String),
    #[error("header dtype is '{0}'; ward/ct-slice-v1 carries int16 samples")]
    Dtype(String),
    #[error("header geometry: {0}")]
    Geometry(String),
    #[error("{what} {value} does not fit a 32-bit message field")]
    FieldRange { what: &'static str, value: usize },
    #[error("slice has {samples} samples, which is not {nx}x{ny}")]
    Samples {
        samples: usize,
        nx: usize,
        ny: usize,
    },
    #[error("expected the header first, got slice {index}")]
    SliceBeforeHeader { index: usize },
    #[error("got a header where a slice was expected")]
    UnexpectedHeader,
    #[error(
        "got slice {found}, expected slice {expected}: slices must arrive in order, once each"
    )]
    OutOfOrder { expected: usize, found: usize },
    #[error("slice {index} is past the last one: the header has {slices} slices")]
    Extra { index: usize, slices: usize },
    #[error("slice {index} is {found_nx}x{found_ny}, the header says {nx}x{ny}")]
    Shape {
        index: usize,
        found_nx: usize,
        found_ny: usize,
        nx: usize,
        ny: usize,
    },
    #[error("stream ended after {received} of {expected} slices: slice {received} is missing")]
    Missing { received: usize, expected: usize },
    #[error("stream ended before its header")]
    NoHeader,
    #[error("a volume of dims {dims:?} needs {bytes} bytes, more than can be allocated")]
    VolumeTooLarge { dims: [usize; 3], bytes: u64 },
}
