//! Smoothing a whole volume at once.

use super::{normalise, pass_x, pass_y};
use crate::volume::Volume;

/// The volume smoothed with the 3x3x3 binomial kernel (see the module docs); same geometry.
pub fn smooth_volume(volume: &Volume<i16>) -> Volume<i16> {
    let [nx, ny, nz] = volume.dims;
    let plane = nx * ny;
    let mut out = Vec::with_capacity(volume.len());
    if plane == 0 || nz == 0 {
        return volume.with_data(out);
    }
    let slice = |k: usize| &volume.data[k * plane..(k + 1) * plane];
    let mut along_z = vec![0i32; plane];
    let mut along_y = vec![0i32; plane];
    let mut along_x = vec![0i32; plane];
    for k in 0..nz {
        let below = slice(k.saturating_sub(1));
        let here = slice(k);
        let above = slice((k + 1).min(nz - 1));
        for (((d, &a), &b), &c) in along_z.iter_mut().zip(below).zip(here).zip(above) {
            *d = i32::from(a) + 2 * i32::from(b) + i32::from(c);
        }
        pass_y(&along_z, &mut along_y, nx, ny);
        pass_x(&along_y, &mut along_x, nx);
        out.extend(along_x.iter().map(|&s| normalise(s)));
    }
    volume.with_data(out)
}
