//! Speckle reduction for ultrasound: Lee's adaptive filter, frame by frame.
//!
//! Each pixel moves toward its local mean by how much of the local variance is noise:
//! `out = mean + k (v - mean)`, `k = max(0, (var - noise) / var)`, over a (2r+1)² window.
//! The noise variance is the frame's median local variance over the imaged area (windows
//! that are not flat black: speckle is everywhere, edges are few), so flat regions are
//! smoothed and edges, where the variance is far above it, are kept.

use crate::volume::Volume;

/// Lee-filters every frame (z plane) of `volume` with a window of radius `radius`.
pub fn lee(volume: &Volume<i16>, radius: usize) -> Volume<i16> {
    let [nx, ny, nz] = volume.dims;
    let plane = nx * ny;
    let mut out = Vec::with_capacity(volume.len());
    for k in 0..nz {
        let frame = &volume.data[k * plane..(k + 1) * plane];
        out.extend(lee_frame(frame, nx, ny, radius));
    }
    volume.with_data(out)
}

fn lee_frame(frame: &[i16], nx: usize, ny: usize, radius: usize) -> Vec<i16> {
    // Integral images of v and v², one row and column of zeros in front.
    let w = nx + 1;
    let mut sum = vec![0f64; w * (ny + 1)];
    let mut sq = vec![0f64; w * (ny + 1)];
    for y in 0..ny {
        let (mut row_sum, mut row_sq) = (0.0, 0.0);
        for x in 0..nx {
            let v = frame[x + nx * y] as f64;
            row_sum += v;
            row_sq += v * v;
            sum[(x + 1) + w * (y + 1)] = sum[(x + 1) + w * y] + row_sum;
            sq[(x + 1) + w * (y + 1)] = sq[(x + 1) + w * y] + row_sq;
        }
    }
    let window = |table: &[f64], x0: usize, y0: usize, x1: usize, y1: usize| {
        table[x1 + w * y1] - table[x0 + w * y1] - table[x1 + w * y0] + table[x0 + w * y0]
    };
    let mut means = Vec::with_capacity(nx * ny);
    let mut variances = Vec::with_capacity(nx * ny);
    for y in 0..ny {
        let (y0, y1) = (y.saturating_sub(radius), (y + radius + 1).min(ny));
        for x in 0..nx {
            let (x0, x1) = (x.saturating_sub(radius), (x + radius + 1).min(nx));
            let n = ((x1 - x0) * (y1 - y0)) as f64;
            let mean = window(&sum, x0, y0, x1, y1) / n;
            let var = (window(&sq, x0, y0, x1, y1) / n - mean * mean).max(0.0);
            means.push(mean);
            variances.push(var);
        }
    }
    // Over the imaged area only: an ultrasound sector sits in a black frame whose zero
    // variance would otherwise be the median.
    let mut sorted: Vec<f64> = variances.iter().copied().filter(|&v| v > 0.0).collect();
    sorted.sort_by(f64::total_cmp);
    let noise = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    frame
        .iter()
        .zip(means.iter().zip(&variances))
        .map(|(&v, (&mean, &var))| {
            let k = if var > 0.0 {
                ((var - noise) / var).max(0.0)
            } else {
                0.0
            };
            (mean + k * (v as f64 - mean))
                .round()
                .clamp(i16::MIN as f64, i16::MAX as f64) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two flat halves with multiplicative noise: the noise drops inside the halves and the
    /// step between them stays a step.
    #[test]
    fn speckle_is_smoothed_and_the_edge_kept() {
        let (nx, ny) = (64, 32);
        let mut state = 12345u32;
        let mut noise = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            0.5 + (state >> 8) as f64 / (1u32 << 24) as f64
        };
        let data: Vec<i16> = (0..nx * ny)
            .map(|i| {
                let base = if i % nx < nx / 2 { 60.0 } else { 180.0 };
                (base * noise()) as i16
            })
            .collect();
        let v = Volume::new([nx, ny, 1], [1.0; 3], [0.0; 3], data);
        let f = lee(&v, 2);
        let spread = |vol: &Volume<i16>, lo: usize, hi: usize| {
            let vals: Vec<f64> = (0..nx * ny)
                .filter(|i| (lo..hi).contains(&(i % nx)))
                .map(|i| vol.data[i] as f64)
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let sd = (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
            (m, sd)
        };
        let (m0, sd0) = spread(&v, 40, 60);
        let (m1, sd1) = spread(&f, 40, 60);
        assert!(sd1 < sd0 * 0.7, "speckle reduced: {sd0} -> {sd1}");
        assert!((m1 - m0).abs() < 5.0, "mean kept: {m0} -> {m1}");
        let left = spread(&f, 4, 24).0;
        assert!(m1 - left > 90.0, "the step stays: {left} | {m1}");
    }
}
