//! Otsu's threshold: the grey level that best separates a histogram into two classes
//! (maximum between-class variance), the usual first cut between head and air in MR.

/// Otsu's threshold of `values` over 256 bins between their minimum and maximum: values
/// above it are the brighter class. None when all values are equal.
pub fn otsu(values: &[i16]) -> Option<f64> {
    let (min, max) = values
        .iter()
        .fold((i16::MAX, i16::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if values.is_empty() || min == max {
        return None;
    }
    const BINS: usize = 256;
    let width = (max as f64 - min as f64) / BINS as f64;
    let bin = |v: i16| (((v as f64 - min as f64) / width) as usize).min(BINS - 1);
    let mut histogram = [0u64; BINS];
    for &v in values {
        histogram[bin(v)] += 1;
    }
    let total = values.len() as f64;
    let sum_all: f64 = histogram
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut weight_low, mut sum_low) = (0.0, 0.0);
    let (mut best, mut best_bin) = (-1.0, 0);
    for (i, &n) in histogram.iter().enumerate() {
        weight_low += n as f64;
        sum_low += i as f64 * n as f64;
        let weight_high = total - weight_low;
        if weight_low == 0.0 || weight_high == 0.0 {
            continue;
        }
        let mean_low = sum_low / weight_low;
        let mean_high = (sum_all - sum_low) / weight_high;
        let between = weight_low * weight_high * (mean_low - mean_high).powi(2);
        if between > best {
            best = between;
            best_bin = i;
        }
    }
    // The threshold is the upper edge of the last bin of the darker class.
    Some(min as f64 + (best_bin + 1) as f64 * width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_levels_are_split_between_them() {
        let mut v = vec![100i16; 500];
        v.extend(std::iter::repeat_n(900i16, 300));
        let t = otsu(&v).unwrap();
        assert!(t > 100.0 && t < 900.0, "{t}");
        assert_eq!(otsu(&[5, 5, 5]), None);
        assert_eq!(otsu(&[]), None);
    }
}
