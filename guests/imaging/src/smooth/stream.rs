//! Smoothing slices as they arrive, with three slices in memory.

use super::{normalise, pass_x, pass_y, weigh};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum SmoothError {
    #[error("slice {index} has {found} samples, expected {expected}")]
    Shape {
        index: usize,
        found: usize,
        expected: usize,
    },
    #[error("slices of {nx}x{ny} samples need more memory than can be allocated")]
    TooLarge { nx: usize, ny: usize },
}

/// Smooths a volume fed one axial slice at a time, z = 0, 1, ...: slice k comes out once
/// slice k + 1 is in, the last one from [`SliceSmoother::finish`]. The output equals
/// [`super::smooth_volume`] of the whole volume, bit for bit.
#[derive(Debug, Clone)]
pub struct SliceSmoother {
    nx: usize,
    ny: usize,
    received: usize,
    /// The x-and-y-smoothed planes of slices `received - 2` and `received - 1`.
    prev: Vec<i32>,
    cur: Vec<i32>,
    /// Buffers reused for every slice.
    next: Vec<i32>,
    widened: Vec<i32>,
    along_x: Vec<i32>,
    sums: Vec<i32>,
}

impl SliceSmoother {
    /// A smoother for slices of `nx` x `ny` samples. The shape usually comes from a stream's
    /// header, so a shape too large to hold is an error rather than an abort.
    pub fn new(nx: usize, ny: usize) -> Result<Self, SmoothError> {
        let too_large = || SmoothError::TooLarge { nx, ny };
        let plane = nx.checked_mul(ny).ok_or_else(too_large)?;
        let buffer = || -> Result<Vec<i32>, SmoothError> {
            let mut b = Vec::new();
            b.try_reserve_exact(plane).map_err(|_| too_large())?;
            b.resize(plane, 0);
            Ok(b)
        };
        Ok(SliceSmoother {
            nx,
            ny,
            received: 0,
            prev: buffer()?,
            cur: buffer()?,
            next: buffer()?,
            widened: buffer()?,
            along_x: buffer()?,
            sums: buffer()?,
        })
    }

    /// Slices fed so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Feeds the next slice; returns the smoothed slice it completes, with its index.
    pub fn push(&mut self, slice: &[i16]) -> Result<Option<(usize, Vec<i16>)>, SmoothError> {
        let plane = self.nx * self.ny;
        if slice.len() != plane {
            return Err(SmoothError::Shape {
                index: self.received,
                found: slice.len(),
                expected: plane,
            });
        }
        for (w, &s) in self.widened.iter_mut().zip(slice) {
            *w = i32::from(s);
        }
        pass_x(&self.widened, &mut self.along_x, self.nx);
        pass_y(&self.along_x, &mut self.next, self.nx, self.ny);
        self.received += 1;
        if self.received == 1 {
            std::mem::swap(&mut self.cur, &mut self.next);
            return Ok(None);
        }
        // Below slice 0 the edge repeats slice 0 itself.
        let below = if self.received == 2 {
            &self.cur
        } else {
            &self.prev
        };
        weigh(&mut self.sums, below, &self.cur, &self.next);
        let out = self.sums.iter().map(|&s| normalise(s)).collect();
        // prev <- cur <- next; the old prev becomes the next scratch plane.
        std::mem::swap(&mut self.prev, &mut self.cur);
        std::mem::swap(&mut self.cur, &mut self.next);
        Ok(Some((self.received - 2, out)))
    }

    /// The last smoothed slice (its index and samples), or none if no slice was fed.
    pub fn finish(mut self) -> Option<(usize, Vec<i16>)> {
        if self.received == 0 {
            return None;
        }
        // Above the last slice the edge repeats the last slice itself.
        let below = if self.received == 1 {
            &self.cur
        } else {
            &self.prev
        };
        weigh(&mut self.sums, below, &self.cur, &self.cur);
        let out = self.sums.iter().map(|&s| normalise(s)).collect();
        Some((self.received - 1, out))
    }
}
