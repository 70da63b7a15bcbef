//! The whole-volume and streaming filters against a direct 27-tap reference.

use super::*;
use crate::volume::Volume;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Full-range samples half the time, CT-like values otherwise, so both overflow
    /// margins and ordinary rounding are exercised.
    fn sample(&mut self) -> i16 {
        let r = self.next();
        if r & 1 == 0 {
            (r >> 16) as i16
        } else {
            ((r >> 16) % 4096) as i16 - 1024
        }
    }
}

fn random_volume(dims: [usize; 3], seed: u64) -> Volume<i16> {
    let mut rng = Rng(seed | 1);
    let data = (0..dims[0] * dims[1] * dims[2])
        .map(|_| rng.sample())
        .collect();
    Volume::new(dims, [0.7, 0.8, 2.5], [-10.0, 20.0, 30.0], data)
}

/// The definition itself: 27 weighted neighbours with replicated edges.
fn reference(v: &Volume<i16>) -> Volume<i16> {
    let [nx, ny, nz] = v.dims;
    let w = |d: isize| if d == 0 { 2i64 } else { 1 };
    let clamp = |x: usize, d: isize, n: usize| (x as isize + d).clamp(0, n as isize - 1) as usize;
    let mut out = v.clone();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let mut sum = 0i64;
                for dk in -1..=1 {
                    for dj in -1..=1 {
                        for di in -1..=1 {
                            let s = v.get(clamp(i, di, nx), clamp(j, dj, ny), clamp(k, dk, nz));
                            sum += w(di) * w(dj) * w(dk) * i64::from(s);
                        }
                    }
                }
                out.set(i, j, k, (sum + 32).div_euclid(64) as i16);
            }
        }
    }
    out
}

/// Feeds `v` slice by slice, checking each output comes as soon as it can.
fn streamed(v: &Volume<i16>) -> Volume<i16> {
    let [nx, ny, nz] = v.dims;
    let plane = nx * ny;
    let mut smoother = SliceSmoother::new(nx, ny).unwrap();
    let mut data = Vec::with_capacity(v.len());
    for k in 0..nz {
        let out = smoother.push(&v.data[k * plane..(k + 1) * plane]).unwrap();
        if k == 0 {
            assert!(out.is_none(), "slice 0 came out before slice 1 arrived");
        } else {
            let (index, samples) = out.expect("slice k-1 is due once slice k is in");
            assert_eq!(index, k - 1);
            data.extend(samples);
        }
    }
    let (index, last) = smoother.finish().expect("the last slice comes from finish");
    assert_eq!(index, nz - 1);
    data.extend(last);
    v.with_data(data)
}

const ODD_SIZES: [[usize; 3]; 10] = [
    [1, 1, 1],
    [3, 5, 1],
    [1, 1, 2],
    [5, 3, 2],
    [7, 1, 3],
    [1, 9, 5],
    [5, 7, 9],
    [11, 3, 7],
    [13, 9, 17],
    [2, 2, 3],
];

#[test]
fn whole_volume_and_stream_equal_the_reference_on_random_volumes() {
    for (n, dims) in ODD_SIZES.iter().enumerate() {
        for seed in 0..4u64 {
            let v = random_volume(*dims, 0x9E37_79B9 * (n as u64 + 1) + seed);
            let expected = reference(&v);
            let whole = smooth_volume(&v);
            assert_eq!(whole, expected, "whole volume, dims {dims:?}, seed {seed}");
            assert_eq!(streamed(&v), whole, "stream, dims {dims:?}, seed {seed}");
        }
    }
}

#[test]
fn one_and_two_slice_volumes() {
    for dims in [[9, 7, 1], [9, 7, 2], [1, 1, 1], [1, 1, 2]] {
        let v = random_volume(dims, 42);
        assert_eq!(smooth_volume(&v), reference(&v), "dims {dims:?}");
        assert_eq!(streamed(&v), reference(&v), "dims {dims:?}");
    }
}

#[test]
fn constant_volumes_stay_constant_even_at_the_extremes() {
    for value in [i16::MIN, -1, 0, 1, i16::MAX] {
        let v = Volume::filled([5, 3, 4], value);
        assert_eq!(smooth_volume(&v), v, "value {value}");
        assert_eq!(streamed(&v), v, "value {value}");
    }
}

#[test]
fn rounding_is_half_up() {
    // One voxel of 32 among zeros: the centre's weighted sum is 8 * 32 = 256 -> 4; a
    // corner neighbour's is 32 -> (32 + 32) / 64 = 1; a negative -32 rounds to -0 = 0.
    let mut v = Volume::filled([3, 3, 3], 0i16);
    v.set(1, 1, 1, 32);
    let out = smooth_volume(&v);
    assert_eq!(out.get(1, 1, 1), 4);
    assert_eq!(out.get(0, 0, 0), 1);
    v.set(1, 1, 1, -32);
    assert_eq!(smooth_volume(&v).get(0, 0, 0), 0);
}

#[test]
fn a_slice_of_the_wrong_size_is_an_error() {
    let mut smoother = SliceSmoother::new(4, 3).unwrap();
    let err = smoother.push(&[0; 11]).unwrap_err();
    assert_eq!(
        err,
        SmoothError::Shape {
            index: 0,
            found: 11,
            expected: 12
        }
    );
    assert!(SliceSmoother::new(4, 3).unwrap().finish().is_none());
}
