//! The head (or brain) mask of an MR volume: Otsu's threshold, the largest 26-connected
//! component, and the holes of each slice filled (ventricles, dark bone, sinuses inside the
//! outline are part of the head).

use crate::components::{label, Connectivity};
use crate::otsu::otsu;
use crate::volume::Volume;

/// The mask (1 = head) and the threshold used; None when the volume is flat or has nothing
/// above the threshold.
pub fn head_mask(volume: &Volume<i16>) -> Option<(Volume<u16>, f64)> {
    let threshold = otsu(&volume.data)?;
    let above = volume.with_data(
        volume
            .data
            .iter()
            .map(|&v| u8::from(v as f64 > threshold))
            .collect(),
    );
    let labelled = label(&above, Connectivity::TwentySix, 1).ok()?;
    if labelled.components.is_empty() {
        return None;
    }
    // Label 1 is the largest component.
    let mut mask: Vec<u16> = labelled
        .labels
        .data
        .iter()
        .map(|&l| u16::from(l == 1))
        .collect();
    fill_holes_per_slice(&mut mask, volume.dims);
    Some((volume.with_data(mask), threshold))
}

/// Sets to 1 every 0 of each axial slice that cannot reach the slice's border through 0s
/// (4-connected), by flooding the background from the border.
fn fill_holes_per_slice(mask: &mut [u16], dims: [usize; 3]) {
    let [nx, ny, nz] = dims;
    let mut outside = vec![false; nx * ny];
    let mut stack = Vec::new();
    for k in 0..nz {
        let slice = &mut mask[k * nx * ny..(k + 1) * nx * ny];
        outside.iter_mut().for_each(|o| *o = false);
        for j in 0..ny {
            for i in 0..nx {
                if (i == 0 || j == 0 || i == nx - 1 || j == ny - 1) && slice[i + nx * j] == 0 {
                    outside[i + nx * j] = true;
                    stack.push((i, j));
                }
            }
        }
        while let Some((i, j)) = stack.pop() {
            let mut visit = |a: usize, b: usize| {
                let idx = a + nx * b;
                if !outside[idx] && slice[idx] == 0 {
                    outside[idx] = true;
                    stack.push((a, b));
                }
            };
            if i > 0 {
                visit(i - 1, j);
            }
            if i + 1 < nx {
                visit(i + 1, j);
            }
            if j > 0 {
                visit(i, j - 1);
            }
            if j + 1 < ny {
                visit(i, j + 1);
            }
        }
        for (m, &o) in slice.iter_mut().zip(&outside) {
            if !o {
                *m = 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bright ring (skull/scalp) around a dark core (CSF) and a bright speck of noise
    /// apart: the mask is the disc, core filled, speck left out.
    #[test]
    fn the_largest_component_with_its_holes_filled() {
        let n = 40;
        let mut data = vec![10i16; n * n * 3];
        for k in 0..3 {
            for j in 0..n {
                for i in 0..n {
                    let (x, y) = (i as f64 - 19.5, j as f64 - 19.5);
                    let r = (x * x + y * y).sqrt();
                    if (8.0..15.0).contains(&r) {
                        data[i + n * (j + n * k)] = 700;
                    }
                }
            }
            data[1 + n * (1 + n * k)] = 900;
        }
        let v = Volume::new([n, n, 3], [1.0; 3], [0.0; 3], data);
        let (mask, t) = head_mask(&v).unwrap();
        assert!(t > 10.0 && t < 700.0);
        let at = |i: usize, j: usize, k: usize| mask.data[i + n * (j + n * k)];
        assert_eq!(at(20, 20, 1), 1, "the dark core is filled");
        assert_eq!(at(20, 8, 1), 1, "the ring");
        assert_eq!(at(1, 1, 1), 0, "the speck is not the head");
        assert_eq!(at(0, 20, 1), 0, "air");
    }
}
