//! Maximum-intensity projection.

use crate::image::Image;
use crate::reformat::{layout, Plane};
use crate::volume::Volume;

/// The maximum along the axis fixed by `plane`, laid out like a slice of that plane
/// (`Plane::Coronal` projects along y, anterior-posterior).
pub fn mip(volume: &Volume<i16>, plane: Plane) -> Image<i16> {
    let (across, down, flip) = layout(plane);
    let along = plane.axis();
    let (w, h) = (volume.dims[across], volume.dims[down]);
    let mut data = vec![i16::MIN; w * h];
    // Walk the volume in memory order (fast) and scatter into the image.
    let [nx, ny, nz] = volume.dims;
    let mut idx = 0;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p = [i, j, k];
                let row = if flip { h - 1 - p[down] } else { p[down] };
                let px = &mut data[p[across] + w * row];
                *px = (*px).max(volume.data[idx]);
                idx += 1;
            }
        }
    }
    if volume.dims[along] == 0 {
        data.fill(0);
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
    fn projection_along_y_takes_the_brightest_voxel() {
        let mut v = Volume::new([3, 4, 2], [1.0, 1.0, 3.0], [0.0; 3], vec![-1000i16; 24]);
        v.set(2, 1, 0, 500);
        v.set(2, 3, 0, 700);
        v.set(0, 2, 1, 100);
        let m = mip(&v, Plane::Coronal);
        assert_eq!((m.width, m.height), (3, 2));
        assert_eq!(m.get(2, 1), 700); // k = 0 is the bottom row
        assert_eq!(m.get(0, 0), 100);
        assert_eq!(m.get(1, 0), -1000);
        assert_eq!(m.pixel_mm, [1.0, 3.0]);
    }
}
