//! Tests on sixteen bytes at once, for the loops that cross uniform stretches of a volume:
//! one wasm SIMD vector in the sandbox, two 64-bit words natively. Fewer, wider turns matter
//! more in the sandbox, where every loop turn also checks the epoch behind the stage's
//! deadline.

fn words(b: &[u8]) -> (u64, u64) {
    let w = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"));
    (w(0), w(8))
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub fn all_zero(b: &[u8]) -> bool {
    let (lo, hi) = words(b);
    !core::arch::wasm32::v128_any_true(core::arch::wasm32::u64x2(lo, hi))
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub fn none_zero(b: &[u8]) -> bool {
    let (lo, hi) = words(b);
    core::arch::wasm32::u8x16_all_true(core::arch::wasm32::u64x2(lo, hi))
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub fn all_zero(b: &[u8]) -> bool {
    let (lo, hi) = words(b);
    lo | hi == 0
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub fn none_zero(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // True if any byte of `v` is zero.
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let (lo, hi) = words(b);
    !has_zero(lo) && !has_zero(hi)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sixteen_bytes_at_once_agree_with_one_at_a_time() {
        let mut b = [0u8; 16];
        assert!(super::all_zero(&b) && !super::none_zero(&b));
        for i in 0..16 {
            b = [0; 16];
            b[i] = 1;
            assert!(!super::all_zero(&b) && !super::none_zero(&b), "{i}");
            b = [3; 16];
            b[i] = 0;
            assert!(!super::all_zero(&b) && !super::none_zero(&b), "{i}");
        }
        assert!(super::none_zero(&[0x80; 16]) && super::none_zero(&[1; 16]));
    }
}
