//! The order a stream's slices must follow: every slice of the header's shape, z = 0, 1, ...
//! once each.

use super::error::CtSliceError;
use super::message::Slice;
use crate::raw_io::VolumeHeader;

/// Checks the slices of one stream against its header as they arrive.
#[derive(Debug, Clone)]
pub struct SliceOrder {
    nx: usize,
    ny: usize,
    slices: usize,
    next: usize,
}

impl SliceOrder {
    pub fn new(header: &VolumeHeader) -> Self {
        SliceOrder {
            nx: header.dims[0],
            ny: header.dims[1],
            slices: header.dims[2],
            next: 0,
        }
    }

    /// Accepts `slice` if it is the next one and has the header's shape.
    pub fn check(&mut self, slice: &Slice) -> Result<(), CtSliceError> {
        if slice.index >= self.slices {
            return Err(CtSliceError::Extra {
                index: slice.index,
                slices: self.slices,
            });
        }
        if slice.index != self.next {
            return Err(CtSliceError::OutOfOrder {
                expected: self.next,
                found: slice.index,
            });
        }
        if (slice.nx, slice.ny) != (self.nx, self.ny) {
            return Err(CtSliceError::Shape {
                index: slice.index,
                found_nx: slice.nx,
                found_ny: slice.ny,
                nx: self.nx,
                ny: self.ny,
            });
        }
        self.next += 1;
        Ok(())
    }

    /// Slices accepted so far.
    pub fn received(&self) -> usize {
        self.next
    }

    /// At the end of the stream: every slice must have come.
    pub fn finish(&self) -> Result<(), CtSliceError> {
        if self.next == self.slices {
            Ok(())
        } else {
            Err(CtSliceError::Missing {
                received: self.next,
                expected: self.slices,
            })
        }
    }
}
