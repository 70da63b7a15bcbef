//! Turning slices into pictures a person looks at: CT windowing, a translucent label
//! overlay, resampling to square pixels, and PNG encoding.

use crate::image::Image;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
    #[error("image {0}x{1} is empty or too large to encode")]
    Size(usize, usize),
}

/// An RGB image, 3 bytes per pixel, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Maps HU to 8-bit grey with a window: `center - width/2` is black, `center + width/2`
/// white, linear between.
pub fn window(image: &Image<i16>, center: f64, width: f64) -> Image<u8> {
    let width = width.max(1.0);
    let lo = center - width / 2.0;
    let data = image
        .data
        .iter()
        .map(|&v| ((v as f64 - lo) * 255.0 / width).round().clamp(0.0, 255.0) as u8)
        .collect();
    Image {
        width: image.width,
        height: image.height,
        pixel_mm: image.pixel_mm,
        data,
    }
}

/// A distinct colour per label, cycling after 8.
pub fn label_colour(label: u16) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 8] = [
        [255, 64, 64],   // red
        [64, 200, 255],  // sky blue
        [80, 230, 80],   // green
        [255, 200, 40],  // amber
        [200, 90, 255],  // violet
        [255, 130, 200], // pink
        [40, 220, 190],  // teal
        [255, 140, 40],  // orange
    ];
    PALETTE[(label.max(1) as usize - 1) % PALETTE.len()]
}

/// Grey image with `labels` (same size) blended on top: the inside with `alpha`, the
/// outline (label pixels with a different 4-neighbour) nearly opaque so the edge is clear.
pub fn overlay(grey: &Image<u8>, labels: Option<&Image<u16>>, alpha: f64) -> Rgb {
    let (w, h) = (grey.width, grey.height);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let g = grey.get(x, y);
            let l = labels.map_or(0, |l| l.get(x, y));
            if l == 0 {
                data.extend_from_slice(&[g, g, g]);
                continue;
            }
            let labels = labels.expect("l != 0 implies labels");
            let edge = x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || labels.get(x - 1, y) != l
                || labels.get(x + 1, y) != l
                || labels.get(x, y - 1) != l
                || labels.get(x, y + 1) != l;
            let a = if edge { 0.9 } else { alpha };
            let c = label_colour(l);
            for ch in c {
                data.push((g as f64 * (1.0 - a) + ch as f64 * a).round() as u8);
            }
        }
    }
    Rgb {
        width: w,
        height: h,
        data,
    }
}

/// Resamples (bilinear) so pixels are square at the finer of the two pixel sizes, then
/// scales so the longest side is at least `min_side` (small volumes stay viewable) and at
/// most `max_side` pixels.
pub fn to_physical_aspect(rgb: &Rgb, pixel_mm: [f64; 2], min_side: usize, max_side: usize) -> Rgb {
    let (w, h) = (rgb.width, rgb.height);
    if w == 0 || h == 0 {
        return rgb.clone();
    }
    let target = pixel_mm[0].min(pixel_mm[1]).max(1e-6);
    let mut out_w = (w as f64 * pixel_mm[0] / target).round().max(1.0);
    let mut out_h = (h as f64 * pixel_mm[1] / target).round().max(1.0);
    let longest = out_w.max(out_h);
    let wanted = longest.clamp(min_side.min(max_side) as f64, max_side as f64);
    if wanted != longest {
        out_w = (out_w * wanted / longest).round().max(1.0);
        out_h = (out_h * wanted / longest).round().max(1.0);
    }
    let (out_w, out_h) = (out_w as usize, out_h as usize);
    if (out_w, out_h) == (w, h) {
        return rgb.clone();
    }
    let mut data = Vec::with_capacity(out_w * out_h * 3);
    for oy in 0..out_h {
        // Pixel centres map to pixel centres.
        let sy = ((oy as f64 + 0.5) * h as f64 / out_h as f64 - 0.5).clamp(0.0, (h - 1) as f64);
        let y0 = sy.floor() as usize;
        let y1 = (y0 + 1).min(h - 1);
        let fy = sy - y0 as f64;
        for ox in 0..out_w {
            let sx = ((ox as f64 + 0.5) * w as f64 / out_w as f64 - 0.5).clamp(0.0, (w - 1) as f64);
            let x0 = sx.floor() as usize;
            let x1 = (x0 + 1).min(w - 1);
            let fx = sx - x0 as f64;
            for ch in 0..3 {
                let p = |x: usize, y: usize| rgb.data[(x + w * y) * 3 + ch] as f64;
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                data.push((top * (1.0 - fy) + bottom * fy).round() as u8);
            }
        }
    }
    Rgb {
        width: out_w,
        height: out_h,
        data,
    }
}

/// Encodes 8-bit RGB as PNG. No time or text chunks, so equal pixels give equal bytes.
pub fn encode_png(rgb: &Rgb) -> Result<Vec<u8>, RenderError> {
    let (w, h) = (rgb.width, rgb.height);
    if w == 0 || h == 0 || w > u32::MAX as usize || h > u32::MAX as usize {
        return Err(RenderError::Size(w, h));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&rgb.data)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img<T>(width: usize, height: usize, pixel_mm: [f64; 2], data: Vec<T>) -> Image<T> {
        Image {
            width,
            height,
            pixel_mm,
            data,
        }
    }

    #[test]
    fn window_maps_the_range_to_black_and_white() {
        let i = img(4, 1, [1.0; 2], vec![-1000i16, -160, 40, 240]);
        assert_eq!(window(&i, 40.0, 400.0).data, vec![0, 0, 128, 255]);
    }

    #[test]
    fn overlay_tints_labels_and_leaves_background_grey() {
        let grey = img(3, 3, [1.0; 2], vec![100u8; 9]);
        let labels = img(3, 3, [1.0; 2], vec![0u16, 0, 0, 0, 1, 0, 0, 0, 0]);
        let rgb = overlay(&grey, Some(&labels), 0.4);
        assert_eq!(&rgb.data[0..3], &[100, 100, 100]);
        let centre = &rgb.data[12..15];
        assert_ne!(centre, &[100, 100, 100]);
        assert!(centre[0] > centre[1], "label 1 is reddish: {centre:?}");
    }

    #[test]
    fn resampling_restores_physical_aspect_and_png_decodes() {
        let grey = img(4, 3, [0.5, 2.0], vec![7u8; 12]);
        let rgb = overlay(&grey, None, 0.4);
        let square = to_physical_aspect(&rgb, grey.pixel_mm, 1, 2048);
        assert_eq!((square.width, square.height), (4, 12));
        let big = to_physical_aspect(&rgb, grey.pixel_mm, 48, 2048);
        assert_eq!((big.width, big.height), (16, 48));
        assert_eq!((square.width, square.height), (4, 12));
        let bytes = encode_png(&square).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (4, 12));
    }
}
