//! Per-label measurements of a label map over its CT volume.

use crate::volume::Volume;
use serde::{Deserialize, Serialize};

/// Measurements of one label. Serialises to the `components[]` entries of `stats.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelStats {
    pub label: u16,
    pub voxels: usize,
    /// voxels * sx * sy * sz / 1000.
    pub volume_ml: f64,
    /// Smallest voxel index (i, j, k) of the label.
    pub bbox_min: [usize; 3],
    /// Largest voxel index (i, j, k) of the label, inclusive.
    pub bbox_max: [usize; 3],
    /// Mean voxel position in patient coordinates (mm).
    pub centroid_mm: [f64; 3],
    pub mean_hu: f64,
    pub min_hu: i16,
    pub max_hu: i16,
}

/// Measures labels `1..=n_labels` of `labels` over `ct` (same geometry). Labels with no
/// voxels are left out.
pub fn measure(labels: &Volume<u16>, ct: &Volume<i16>, n_labels: usize) -> Vec<LabelStats> {
    assert_eq!(labels.dims, ct.dims, "labels and CT geometry differ");
    struct Acc {
        n: usize,
        sum_idx: [u64; 3],
        sum_hu: i64,
        min_hu: i16,
        max_hu: i16,
        lo: [usize; 3],
        hi: [usize; 3],
    }
    let mut acc: Vec<Acc> = (0..=n_labels)
        .map(|_| Acc {
            n: 0,
            sum_idx: [0; 3],
            sum_hu: 0,
            min_hu: i16::MAX,
            max_hu: i16::MIN,
            lo: [usize::MAX; 3],
            hi: [0; 3],
        })
        .collect();
    let [nx, ny, nz] = labels.dims;
    for k in 0..nz {
        for j in 0..ny {
            let row_start = (k * ny + j) * nx;
            let row = &labels.data[row_start..row_start + nx];
            let mut i = 0;
            while i < nx {
                // Background is crossed four voxels at a time.
                if i + 4 <= nx && row[i..i + 4] == [0; 4] {
                    i += 4;
                    continue;
                }
                let idx = row_start + i;
                let l = row[i] as usize;
                if l != 0 && l <= n_labels {
                    let a = &mut acc[l];
                    let hu = ct.data[idx];
                    a.n += 1;
                    a.sum_idx[0] += i as u64;
                    a.sum_idx[1] += j as u64;
                    a.sum_idx[2] += k as u64;
                    a.sum_hu += hu as i64;
                    a.min_hu = a.min_hu.min(hu);
                    a.max_hu = a.max_hu.max(hu);
                    let p = [i, j, k];
                    for (d, &v) in p.iter().enumerate() {
                        a.lo[d] = a.lo[d].min(v);
                        a.hi[d] = a.hi[d].max(v);
                    }
                }
                i += 1;
            }
        }
    }
    let voxel_ml = labels.voxel_mm3() / 1000.0;
    acc.iter()
        .enumerate()
        .skip(1)
        .filter(|(_, a)| a.n > 0)
        .map(|(l, a)| {
            let n = a.n as f64;
            let mean_idx = [
                a.sum_idx[0] as f64 / n,
                a.sum_idx[1] as f64 / n,
                a.sum_idx[2] as f64 / n,
            ];
            LabelStats {
                label: l as u16,
                voxels: a.n,
                volume_ml: n * voxel_ml,
                bbox_min: a.lo,
                bbox_max: a.hi,
                centroid_mm: labels.to_patient(mean_idx),
                mean_hu: a.sum_hu as f64 / n,
                min_hu: a.min_hu,
                max_hu: a.max_hu,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voxelised_sphere_volume_is_within_3_percent() {
        // r = 20 mm on 0.8 x 0.8 x 1.25 mm voxels, like a CT.
        let spacing = [0.8, 0.8, 1.25];
        let dims = [64, 64, 48];
        let centre = [25.3, 26.1, 29.7]; // mm, off-grid on purpose
        let r = 20.0;
        let mut labels = Volume::new(
            dims,
            spacing,
            [-100.0, 50.0, 10.0],
            vec![0u16; 64 * 64 * 48],
        );
        let ct = labels.with_data(vec![300i16; labels.len()]);
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let p = [
                        i as f64 * spacing[0],
                        j as f64 * spacing[1],
                        k as f64 * spacing[2],
                    ];
                    let d2: f64 = (0..3).map(|a| (p[a] - centre[a]).powi(2)).sum();
                    if d2 <= r * r {
                        labels.set(i, j, k, 1);
                    }
                }
            }
        }
        let s = measure(&labels, &ct, 1);
        assert_eq!(s.len(), 1);
        let expected_ml = 4.0 / 3.0 * std::f64::consts::PI * r * r * r / 1000.0;
        let err = (s[0].volume_ml - expected_ml).abs() / expected_ml;
        assert!(
            err < 0.03,
            "volume {} ml vs {} ml",
            s[0].volume_ml,
            expected_ml
        );
        for a in 0..3 {
            let want = labels.origin[a] + centre[a];
            assert!(
                (s[0].centroid_mm[a] - want).abs() < 0.5,
                "centroid {:?}",
                s[0].centroid_mm
            );
        }
        assert_eq!(s[0].mean_hu, 300.0);
    }

    #[test]
    fn bbox_hu_range_and_empty_labels() {
        let mut labels = Volume::new([4, 4, 2], [1.0, 1.0, 2.0], [0.0; 3], vec![0u16; 32]);
        let mut ct = labels.with_data(vec![0i16; 32]);
        labels.set(1, 2, 0, 1);
        ct.set(1, 2, 0, -50);
        labels.set(3, 0, 1, 1);
        ct.set(3, 0, 1, 150);
        labels.set(0, 0, 0, 3);
        let s = measure(&labels, &ct, 3);
        assert_eq!(s.iter().map(|s| s.label).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(s[0].voxels, 2);
        assert_eq!(s[0].bbox_min, [1, 0, 0]);
        assert_eq!(s[0].bbox_max, [3, 2, 1]);
        assert_eq!((s[0].min_hu, s[0].max_hu, s[0].mean_hu), (-50, 150, 50.0));
        assert_eq!(s[0].centroid_mm, [2.0, 1.0, 1.0]);
        assert!((s[0].volume_ml - 0.004).abs() < 1e-12);
    }
}
