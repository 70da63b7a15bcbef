//! A 2D image in display order (row 0 at the top), the output of reformatting and projection.

/// Row-major pixels with their physical size.
#[derive(Debug, Clone, PartialEq)]
pub struct Image<T> {
    pub width: usize,
    pub height: usize,
    /// Pixel size in mm: [across, down].
    pub pixel_mm: [f64; 2],
    pub data: Vec<T>,
}

impl<T: Copy> Image<T> {
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> T {
        self.data[x + self.width * y]
    }
}
