//! Binary 3D morphology on masks (non-zero = foreground).
//!
//! Voxels outside the volume are ignored rather than treated as background, so erosion does
//! not eat structures that touch the edge of the field of view and a closing leaves them
//! as they were.

use crate::volume::Volume;

/// The structuring element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// The voxel and its 6 face neighbours, applied `radius` times (an octahedron of
    /// L1 radius `radius`).
    Cross,
    /// A cube of side `2 * radius + 1`.
    Box,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Erode,
    Dilate,
    /// Erode then dilate: removes specks and thin bridges.
    Open,
    /// Dilate then erode: fills small holes and gaps.
    Close,
}

/// Applies `op` with `element` of `radius` voxels; radius 0 returns the mask unchanged
/// (normalised to 0/1).
pub fn apply(mask: &Volume<u8>, op: Operation, element: Element, radius: usize) -> Volume<u8> {
    match op {
        Operation::Erode => erode(mask, element, radius),
        Operation::Dilate => dilate(mask, element, radius),
        Operation::Open => dilate(&erode(mask, element, radius), element, radius),
        Operation::Close => erode(&dilate(mask, element, radius), element, radius),
    }
}

pub fn erode(mask: &Volume<u8>, element: Element, radius: usize) -> Volume<u8> {
    run(mask, element, radius, true)
}

pub fn dilate(mask: &Volume<u8>, element: Element, radius: usize) -> Volume<u8> {
    run(mask, element, radius, false)
}

fn run(mask: &Volume<u8>, element: Element, radius: usize, erode: bool) -> Volume<u8> {
    let mut data: Vec<u8> = mask.data.iter().map(|&v| (v != 0) as u8).collect();
    match element {
        Element::Cross => {
            for _ in 0..radius {
                data = cross_step(&data, mask.dims, erode);
            }
        }
        Element::Box => {
            if radius > 0 {
                // A box is separable: one window pass along each axis.
                for axis in 0..3 {
                    data = box_pass(&data, mask.dims, axis, radius, erode);
                }
            }
        }
    }
    mask.with_data(data)
}

/// One step with the 6-neighbour cross: min (erode) or max (dilate) over the voxel and its
/// in-volume face neighbours.
fn cross_step(src: &[u8], dims: [usize; 3], erode: bool) -> Vec<u8> {
    let [nx, ny, nz] = dims;
    let strides = [1, nx, nx * ny];
    let mut out = vec![0u8; src.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let idx = i + nx * (j + ny * k);
                let pos = [i, j, k];
                let mut acc = src[idx];
                for axis in 0..3 {
                    if pos[axis] > 0 {
                        acc = combine(acc, src[idx - strides[axis]], erode);
                    }
                    if pos[axis] + 1 < dims[axis] {
                        acc = combine(acc, src[idx + strides[axis]], erode);
                    }
                }
                out[idx] = acc;
            }
        }
    }
    out
}

#[inline]
fn combine(a: u8, b: u8, erode: bool) -> u8 {
    if erode {
        a & b
    } else {
        a | b
    }
}

/// A sliding window of `2 * radius + 1` along `axis`, clipped at the edges, using a running
/// count of foreground so the cost does not grow with the radius.
fn box_pass(src: &[u8], dims: [usize; 3], axis: usize, radius: usize, erode: bool) -> Vec<u8> {
    let [nx, ny, _] = dims;
    let strides = [1, nx, nx * ny];
    let n = dims[axis];
    let stride = strides[axis];
    let mut out = vec![0u8; src.len()];
    // Every line along `axis` starts at a voxel whose `axis` coordinate is 0.
    let other: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    for b in 0..dims[other[1]] {
        for a in 0..dims[other[0]] {
            let start = a * strides[other[0]] + b * strides[other[1]];
            let at = |t: usize| start + t * stride;
            // Foreground count in the window [t - radius, t + radius] ∩ [0, n).
            let mut count: usize = (0..n.min(radius + 1)).map(|t| src[at(t)] as usize).sum();
            for t in 0..n {
                let lo = t.saturating_sub(radius);
                let hi = (t + radius).min(n - 1);
                let len = hi - lo + 1;
                out[at(t)] = if erode { count == len } else { count > 0 } as u8;
                // Slide: drop lo if it leaves, add hi + 1 if it enters.
                if t >= radius {
                    count -= src[at(t - radius)] as usize;
                }
                if t + radius + 1 < n {
                    count += src[at(t + radius + 1)] as usize;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(dims: [usize; 3], lo: usize, hi: usize) -> Volume<u8> {
        let mut v = Volume::filled(dims, 0u8);
        for k in lo..=hi {
            for j in lo..=hi {
                for i in lo..=hi {
                    v.set(i, j, k, 1);
                }
            }
        }
        v
    }

    fn count(v: &Volume<u8>) -> usize {
        v.data.iter().filter(|&&x| x != 0).count()
    }

    #[test]
    fn box_erode_and_dilate_shrink_and_grow_a_cube() {
        let c = cube([12, 12, 12], 3, 7); // 5^3
        assert_eq!(count(&erode(&c, Element::Box, 1)), 27);
        assert_eq!(count(&dilate(&c, Element::Box, 1)), 343);
        assert_eq!(count(&dilate(&c, Element::Box, 2)), 729);
    }

    #[test]
    fn cross_dilation_of_a_point_is_an_octahedron() {
        let mut p = Volume::filled([9, 9, 9], 0u8);
        p.set(4, 4, 4, 1);
        assert_eq!(count(&dilate(&p, Element::Cross, 1)), 7);
        assert_eq!(count(&dilate(&p, Element::Cross, 2)), 25);
        assert_eq!(count(&dilate(&p, Element::Box, 1)), 27);
    }

    #[test]
    fn opening_removes_a_speck_and_keeps_a_cube() {
        let mut v = cube([16, 16, 16], 2, 8);
        v.set(13, 13, 13, 1);
        let opened = apply(&v, Operation::Open, Element::Box, 1);
        assert_eq!(opened.get(13, 13, 13), 0);
        assert_eq!(opened, cube([16, 16, 16], 2, 8));
    }

    #[test]
    fn closing_fills_a_hole() {
        let mut v = cube([12, 12, 12], 2, 9);
        v.set(5, 5, 5, 0);
        let closed = apply(&v, Operation::Close, Element::Cross, 1);
        assert_eq!(closed, cube([12, 12, 12], 2, 9));
    }

    #[test]
    fn erosion_keeps_structures_touching_the_edge() {
        let full = Volume::filled([4, 4, 4], 1u8);
        assert_eq!(count(&erode(&full, Element::Box, 1)), 64);
        assert_eq!(count(&erode(&full, Element::Cross, 1)), 64);
    }
}
