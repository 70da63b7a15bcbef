//! The in-memory volume: a regular 3D grid of samples with its place in patient space.

/// Direction cosines of an axial slice (ImageOrientationPatient): rows along +x, columns
/// along +y.
pub const AXIAL_ORIENTATION: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

/// A 3D grid of samples.
///
/// `data` is stored x fastest, then y, then z; z increases along the slice normal
/// (row direction x column direction of `orientation`).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T> {
    /// Number of voxels along x, y, z.
    pub dims: [usize; 3],
    /// Voxel size in mm along x, y, z.
    pub spacing: [f64; 3],
    /// Patient position (mm) of the centre of voxel 0.
    pub origin: [f64; 3],
    /// ImageOrientationPatient: the x axis direction then the y axis direction.
    pub orientation: [f64; 6],
    pub data: Vec<T>,
}

impl<T> Volume<T> {
    /// A volume over `data` with axial orientation. Panics if `data` does not match `dims`,
    /// which is a programming error, not an input error.
    pub fn new(dims: [usize; 3], spacing: [f64; 3], origin: [f64; 3], data: Vec<T>) -> Self {
        assert_eq!(
            data.len(),
            dims[0] * dims[1] * dims[2],
            "data length != dims"
        );
        Volume {
            dims,
            spacing,
            origin,
            orientation: AXIAL_ORIENTATION,
            data,
        }
    }

    /// A volume of the same geometry as `self` holding `data`.
    pub fn with_data<U>(&self, data: Vec<U>) -> Volume<U> {
        assert_eq!(data.len(), self.len(), "data length != dims");
        Volume {
            dims: self.dims,
            spacing: self.spacing,
            origin: self.origin,
            orientation: self.orientation,
            data,
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Linear index of voxel (i, j, k).
    #[inline]
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Voxel (i, j, k) of a linear index.
    #[inline]
    pub fn coords(&self, index: usize) -> [usize; 3] {
        let nx = self.dims[0];
        let ny = self.dims[1];
        [index % nx, (index / nx) % ny, index / (nx * ny)]
    }

    /// Volume of one voxel in mm^3.
    pub fn voxel_mm3(&self) -> f64 {
        self.spacing[0] * self.spacing[1] * self.spacing[2]
    }

    /// The unit slice normal (row direction x column direction).
    pub fn normal(&self) -> [f64; 3] {
        normal_of(&self.orientation)
    }

    /// Patient position (mm) of a possibly fractional voxel index, following the
    /// orientation. For the axial orientation this is `origin + index * spacing`.
    pub fn to_patient(&self, index: [f64; 3]) -> [f64; 3] {
        let o = &self.orientation;
        let n = self.normal();
        let axes = [[o[0], o[1], o[2]], [o[3], o[4], o[5]], n];
        let mut p = self.origin;
        for (axis, dir) in axes.iter().enumerate() {
            let d = index[axis] * self.spacing[axis];
            for c in 0..3 {
                p[c] += d * dir[c];
            }
        }
        p
    }
}

impl<T: Copy> Volume<T> {
    /// A volume of `dims` filled with `value`, axial, 1 mm voxels at the origin.
    pub fn filled(dims: [usize; 3], value: T) -> Self {
        Volume::new(
            dims,
            [1.0; 3],
            [0.0; 3],
            vec![value; dims[0] * dims[1] * dims[2]],
        )
    }

    #[inline]
    pub fn get(&self, i: usize, j: usize, k: usize) -> T {
        self.data[self.index(i, j, k)]
    }

    #[inline]
    pub fn set(&mut self, i: usize, j: usize, k: usize, value: T) {
        let idx = self.index(i, j, k);
        self.data[idx] = value;
    }
}

/// Cross product of the two direction cosines of an ImageOrientationPatient, normalised.
pub fn normal_of(o: &[f64; 6]) -> [f64; 3] {
    let n = [
        o[1] * o[5] - o[2] * o[4],
        o[2] * o[3] - o[0] * o[5],
        o[0] * o[4] - o[1] * o[3],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if len > 0.0 {
        [n[0] / len, n[1] / len, n[2] / len]
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_coords_are_inverse() {
        let v = Volume::filled([3, 4, 5], 0u8);
        for idx in 0..v.len() {
            let [i, j, k] = v.coords(idx);
            assert_eq!(v.index(i, j, k), idx);
        }
        assert_eq!(v.index(1, 2, 3), 1 + 3 * (2 + 4 * 3));
    }

    #[test]
    fn axial_patient_position_is_origin_plus_index_times_spacing() {
        let v = Volume::new(
            [2, 2, 2],
            [0.5, 0.7, 2.0],
            [-10.0, 5.0, 100.0],
            vec![0u8; 8],
        );
        assert_eq!(v.to_patient([1.0, 1.0, 1.0]), [-9.5, 5.7, 102.0]);
    }
}
