//! Binary thresholding of a CT volume into a mask.

use crate::volume::Volume;

/// 1 where `lower <= value <= upper`, else 0. Written as a branch-free map so it vectorises.
pub fn threshold(volume: &Volume<i16>, lower: f64, upper: f64) -> Volume<u8> {
    // Clamp the float bounds into i16 so the inner loop compares integers.
    let lo = lower
        .ceil()
        .clamp(i16::MIN as f64 - 1.0, i16::MAX as f64 + 1.0) as i32;
    let hi = upper
        .floor()
        .clamp(i16::MIN as f64 - 1.0, i16::MAX as f64 + 1.0) as i32;
    let data = volume
        .data
        .iter()
        .map(|&v| {
            let v = v as i32;
            ((v >= lo) & (v <= hi)) as u8
        })
        .collect();
    volume.with_data(data)
}

/// Number of foreground voxels of a mask.
pub fn count(mask: &Volume<u8>) -> usize {
    mask.data.iter().filter(|&&v| v != 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_fractional_bounds_round_inwards() {
        let v = Volume::new(
            [5, 1, 1],
            [1.0; 3],
            [0.0; 3],
            vec![-1000, 199, 200, 3071, 3072],
        );
        assert_eq!(threshold(&v, 200.0, 3071.0).data, vec![0, 0, 1, 1, 0]);
        assert_eq!(threshold(&v, 199.5, 3071.5).data, vec![0, 0, 1, 1, 0]);
        assert_eq!(threshold(&v, -1e9, 1e9).data, vec![1; 5]);
        assert_eq!(count(&threshold(&v, 0.0, 5000.0)), 4);
    }
}
