//! 3D smoothing of int16 volumes with the 3x3x3 binomial kernel.
//!
//! The weight of neighbour (di, dj, dk), each in -1..=1, is `w(di) * w(dj) * w(dk)` with
//! `w(0) = 2` and `w(±1) = 1`: 64 in all. Out-of-volume neighbours take the value of the
//! nearest voxel inside (edges replicated). Each output voxel is
//! `floor((weighted sum + 32) / 64)`: the weighted mean rounded half up, always within i16.
//!
//! The sums are exact in i32 and the kernel is separable, so the three 1-2-1 passes may run
//! in any order and give the same bits. [`smooth_volume`] works on a whole volume (z, then
//! y, then x per output slice); [`SliceSmoother`] takes slices as they arrive (x and y per
//! incoming slice, then z over a window of three) and emits slice k once slice k + 1 is in.

mod stream;
#[cfg(test)]
mod tests;
mod volume;

pub use stream::{SliceSmoother, SmoothError};
pub use volume::smooth_volume;

/// The sum of the kernel's weights.
pub const KERNEL_SUM: i32 = 64;

/// `a + 2b + c` element by element: one 1-2-1 pass across three rows or planes.
fn weigh(dst: &mut [i32], a: &[i32], b: &[i32], c: &[i32]) {
    for (((d, &a), &b), &c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = a + 2 * b + c;
    }
}

/// The 1-2-1 pass along x within each row of `nx` samples.
fn pass_x(src: &[i32], dst: &mut [i32], nx: usize) {
    if nx == 0 {
        return;
    }
    for (s, d) in src.chunks_exact(nx).zip(dst.chunks_exact_mut(nx)) {
        if nx == 1 {
            d[0] = 4 * s[0];
            continue;
        }
        d[0] = 3 * s[0] + s[1];
        for (d, w) in d[1..nx - 1].iter_mut().zip(s.windows(3)) {
            *d = w[0] + 2 * w[1] + w[2];
        }
        d[nx - 1] = s[nx - 2] + 3 * s[nx - 1];
    }
}

/// The 1-2-1 pass along y across the rows of one `nx` x `ny` plane.
fn pass_y(src: &[i32], dst: &mut [i32], nx: usize, ny: usize) {
    if nx == 0 || ny == 0 {
        return;
    }
    let row = |j: usize| &src[j * nx..(j + 1) * nx];
    for (j, d) in dst.chunks_exact_mut(nx).enumerate().take(ny) {
        weigh(
            d,
            row(j.saturating_sub(1)),
            row(j),
            row((j + 1).min(ny - 1)),
        );
    }
}

/// A full weighted sum to the output sample: divided by 64, rounded half up.
#[inline]
fn normalise(sum: i32) -> i16 {
    ((sum + KERNEL_SUM / 2) >> 6) as i16
}
