//! Per-frame statistics of a cine (ultrasound, fluoroscopy): intensity and how much each
//! frame changed from the one before, and the key frame to show when only one is shown.

use crate::volume::Volume;
use serde::Serialize;

/// One frame's figures (`frames[]` of `cine.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameStats {
    /// 1-based, as DICOM counts frames.
    pub frame: usize,
    pub mean: f64,
    pub std: f64,
    pub min: i16,
    pub max: i16,
    /// The 5th and 95th percentiles.
    pub p5: i16,
    pub p95: i16,
    /// Mean absolute difference from the previous frame (0 for the first): motion.
    pub change: f64,
}

/// The figures of every frame (z plane) of `volume`.
pub fn frame_stats(volume: &Volume<i16>) -> Vec<FrameStats> {
    let [nx, ny, nz] = volume.dims;
    let plane = nx * ny;
    (0..nz)
        .map(|k| {
            let frame = &volume.data[k * plane..(k + 1) * plane];
            let n = frame.len().max(1) as f64;
            let mean = frame.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = frame
                .iter()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
            let mut sorted = frame.to_vec();
            sorted.sort_unstable();
            let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
            let change = if k == 0 {
                0.0
            } else {
                let previous = &volume.data[(k - 1) * plane..k * plane];
                frame
                    .iter()
                    .zip(previous)
                    .map(|(&a, &b)| (a as f64 - b as f64).abs())
                    .sum::<f64>()
                    / n
            };
            FrameStats {
                frame: k + 1,
                mean,
                std: var.sqrt(),
                min: sorted[0],
                max: sorted[sorted.len() - 1],
                p5: at(0.05),
                p95: at(0.95),
                change,
            }
        })
        .collect()
}

/// The key frame (0-based): the one that changed most from the frame before — where the
/// most happens in the loop; the first frame of a still or of a single frame.
pub fn key_frame(stats: &[FrameStats]) -> usize {
    stats
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.change.total_cmp(&b.1.change).then(b.0.cmp(&a.0)))
        .map(|(k, _)| k)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_the_frame_where_most_changes() {
        let mut data = vec![10i16; 4 * 4 * 3];
        data[16..32].iter_mut().for_each(|v| *v = 12);
        data[32..48].iter_mut().for_each(|v| *v = 50);
        let v = Volume::new([4, 4, 3], [1.0; 3], [0.0; 3], data);
        let s = frame_stats(&v);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].mean, s[0].change), (10.0, 0.0));
        assert_eq!(s[1].change, 2.0);
        assert_eq!(s[2].change, 38.0);
        assert_eq!(key_frame(&s), 2);
        assert_eq!(s[2].frame, 3);
    }
}
