//! Slices of a volume in radiological display orientation.
//!
//! Axial: x across (patient left on the right of the image for the usual orientation), y down.
//! Coronal and sagittal: the last slice (highest position along the normal, i.e. superior
//! for an axial series) at the top, so the patient stands upright.

use crate::image::Image;
use crate::volume::Volume;

/// The three standard planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Fixed k.
    Axial,
    /// Fixed j.
    Coronal,
    /// Fixed i.
    Sagittal,
}

impl Plane {
    /// The volume axis held fixed.
    pub fn axis(self) -> usize {
        match self {
            Plane::Axial => 2,
            Plane::Coronal => 1,
            Plane::Sagittal => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "axial",
            Plane::Coronal => "coronal",
            Plane::Sagittal => "sagittal",
        }
    }
}

/// The volume axes shown across and down for `plane`, and whether "down" is flipped.
pub fn layout(plane: Plane) -> (usize, usize, bool) {
    match plane {
        Plane::Axial => (0, 1, false),
        Plane::Coronal => (0, 2, true),
        Plane::Sagittal => (1, 2, true),
    }
}

/// The slice `index` (clamped into the volume) of `plane`.
pub fn slice<T: Copy>(volume: &Volume<T>, plane: Plane, index: usize) -> Image<T> {
    let (across, down, flip) = layout(plane);
    let fixed = plane.axis();
    let index = index.min(volume.dims[fixed].saturating_sub(1));
    let (w, h) = (volume.dims[across], volume.dims[down]);
    let mut data = Vec::with_capacity(w * h);
    for row in 0..h {
        let d = if flip { h - 1 - row } else { row };
        for col in 0..w {
            let mut p = [0usize; 3];
            p[across] = col;
            p[down] = d;
            p[fixed] = index;
            data.push(volume.data[volume.index(p[0], p[1], p[2])]);
        }
    }
    Image {
        width: w,
        height: h,
        pixel_mm: [volume.spacing[across], volume.spacing[down]],
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coronal_puts_the_last_slice_on_top() {
        let data: Vec<i16> = (0..2 * 3 * 4).collect();
        let v = Volume::new([2, 3, 4], [0.5, 0.6, 2.0], [0.0; 3], data);
        let c = slice(&v, Plane::Coronal, 1);
        assert_eq!((c.width, c.height), (2, 4));
        assert_eq!(c.pixel_mm, [0.5, 2.0]);
        assert_eq!(c.get(0, 0), v.get(0, 1, 3));
        assert_eq!(c.get(1, 3), v.get(1, 1, 0));
        let a = slice(&v, Plane::Axial, 99);
        assert_eq!(a.get(1, 2), v.get(1, 2, 3));
        let s = slice(&v, Plane::Sagittal, 1);
        assert_eq!((s.width, s.height), (3, 4));
        assert_eq!(s.get(2, 0), v.get(1, 2, 3));
    }
}
