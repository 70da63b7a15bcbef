//! Intensity non-uniformity (bias field) correction and intensity normalisation for MR.
//!
//! The method, kept simple and documented: MR intensities are the tissue's signal times a
//! smooth multiplicative field from the coil, so in log intensity the field adds. Over the
//! head (voxels above Otsu's threshold) a quadratic polynomial in x, y, z is fitted to the
//! log intensities by least squares; with piecewise-constant tissues the fit follows the
//! slow field, not the anatomy. The field is the exponential of the fit, relative to its
//! mean over the head, and each voxel is divided by it. Normalisation then scales the
//! corrected head so its median is `target` (1000). A quadratic removes shading smoother
//! than the head; N4 would be the full-strength method for stronger, local fields.

use crate::otsu::otsu;
use crate::volume::Volume;

/// Terms of the polynomial: 1, x, y, z, x², y², z², xy, xz, yz.
const TERMS: usize = 10;

/// What the correction found and did, for the stage's log and `bias.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BiasReport {
    pub otsu_threshold: f64,
    pub head_voxels: usize,
    /// The field's smallest and largest value over the head (1 = no correction).
    pub field_min: f64,
    pub field_max: f64,
    /// The scale that brought the head's median to the target.
    pub scale: f64,
}

fn basis(volume: &Volume<i16>, index: usize) -> [f64; TERMS] {
    let c = volume.coords(index);
    // Coordinates in [-1, 1] along each axis (0 along an axis of one voxel).
    let u: [f64; 3] = std::array::from_fn(|a| {
        let n = volume.dims[a];
        if n > 1 {
            2.0 * c[a] as f64 / (n - 1) as f64 - 1.0
        } else {
            0.0
        }
    });
    let [x, y, z] = u;
    [1.0, x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]
}

/// Corrects `volume` and scales the head's median to `target`. None when the volume is
/// flat or the head has no positive intensities.
pub fn correct(volume: &Volume<i16>, target: f64) -> Option<(Volume<i16>, BiasReport)> {
    let threshold = otsu(&volume.data)?;
    let in_head = |v: i16| v as f64 > threshold && v > 0;
    // Normal equations of the least-squares fit of log intensity.
    let mut ata = [[0.0f64; TERMS]; TERMS];
    let mut atb = [0.0f64; TERMS];
    let mut head_voxels = 0;
    for (i, &v) in volume.data.iter().enumerate() {
        if !in_head(v) {
            continue;
        }
        head_voxels += 1;
        let b = basis(volume, i);
        let l = (v as f64).ln();
        for r in 0..TERMS {
            atb[r] += b[r] * l;
            for c in 0..TERMS {
                ata[r][c] += b[r] * b[c];
            }
        }
    }
    if head_voxels == 0 {
        return None;
    }
    // A little ridge keeps the terms of a flat axis (one slice) from making it singular.
    let ridge = 1e-6 * head_voxels as f64;
    for (r, row) in ata.iter_mut().enumerate() {
        row[r] += ridge;
    }
    let coefficients = solve(ata, atb)?;
    let log_field = |i: usize| -> f64 {
        let b = basis(volume, i);
        // The constant term is the head's mean log intensity, not part of the field.
        (1..TERMS).map(|t| coefficients[t] * b[t]).sum()
    };
    let mut mean_log = 0.0;
    for (i, &v) in volume.data.iter().enumerate() {
        if in_head(v) {
            mean_log += log_field(i);
        }
    }
    mean_log /= head_voxels as f64;

    let mut field_min = f64::INFINITY;
    let mut field_max = f64::NEG_INFINITY;
    let corrected: Vec<f64> = (0..volume.len())
        .map(|i| {
            let field = (log_field(i) - mean_log).exp();
            if in_head(volume.data[i]) {
                field_min = field_min.min(field);
                field_max = field_max.max(field);
            }
            volume.data[i] as f64 / field
        })
        .collect();

    let mut inside: Vec<f64> = corrected
        .iter()
        .zip(&volume.data)
        .filter(|(_, &v)| in_head(v))
        .map(|(&c, _)| c)
        .collect();
    inside.sort_by(f64::total_cmp);
    let median = inside[inside.len() / 2];
    let scale = if median > 0.0 { target / median } else { 1.0 };
    let data = corrected
        .iter()
        .map(|&v| (v * scale).round().clamp(i16::MIN as f64, i16::MAX as f64) as i16)
        .collect();
    Some((
        volume.with_data(data),
        BiasReport {
            otsu_threshold: threshold,
            head_voxels,
            field_min,
            field_max,
            scale,
        },
    ))
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: [[f64; TERMS]; TERMS], mut b: [f64; TERMS]) -> Option<[f64; TERMS]> {
    for col in 0..TERMS {
        let pivot = (col..TERMS).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..TERMS {
            let f = a[row][col] / a[col][col];
            for k in col..TERMS {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; TERMS];
    for row in (0..TERMS).rev() {
        let rest: f64 = (row + 1..TERMS).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head of two tissues under a left-to-right field from 0.6 to 1.4: after correction
    /// the same tissue reads the same on both sides, within 10%.
    #[test]
    fn a_linear_field_is_flattened() {
        let n = 48;
        let mut data = vec![0i16; n * n * 4];
        let mut truth = vec![0u8; n * n * 4];
        for k in 0..4 {
            for j in 0..n {
                for i in 0..n {
                    let (x, y) = (i as f64 - 23.5, j as f64 - 23.5);
                    let r = (x * x + y * y).sqrt();
                    let tissue = if r < 8.0 {
                        800.0
                    } else if r < 20.0 {
                        400.0
                    } else {
                        0.0
                    };
                    let field = 0.6 + 0.8 * i as f64 / (n - 1) as f64;
                    let idx = i + n * (j + n * k);
                    data[idx] = (tissue * field) as i16;
                    truth[idx] = if r >= 12.0 && r < 20.0 { 1 } else { 0 };
                }
            }
        }
        let v = Volume::new([n, n, 4], [1.0; 3], [0.0; 3], data);
        let side_ratio = |vol: &Volume<i16>| {
            let (mut left, mut nl, mut right, mut nr) = (0.0, 0, 0.0, 0);
            for (idx, &t) in truth.iter().enumerate() {
                if t == 0 {
                    continue;
                }
                let i = idx % n;
                if i < 12 {
                    left += vol.data[idx] as f64;
                    nl += 1;
                } else if i >= n - 12 {
                    right += vol.data[idx] as f64;
                    nr += 1;
                }
            }
            (right / nr as f64) / (left / nl as f64)
        };
        let before = side_ratio(&v);
        let (corrected, report) = correct(&v, 1000.0).unwrap();
        let after = side_ratio(&corrected);
        assert!(before > 1.6, "the field is there: {before}");
        assert!(
            (after - 1.0).abs() < 0.1,
            "flattened: {after} (before {before}), {report:?}"
        );
        // Normalised: the head's median is the target.
        let mut head: Vec<i16> = corrected
            .data
            .iter()
            .zip(&v.data)
            .filter(|(_, &o)| o as f64 > report.otsu_threshold && o > 0)
            .map(|(&c, _)| c)
            .collect();
        head.sort();
        let median = head[head.len() / 2];
        assert!((median - 1000).abs() <= 1, "{median}");
    }
}
