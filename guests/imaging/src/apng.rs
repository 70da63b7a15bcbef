//! Animated PNG (APNG) of a sequence of RGB frames: a cine a browser plays as it is.

use crate::render::{RenderError, Rgb};

/// Encodes `frames` (all the same size) as an APNG looping forever, each frame shown for
/// `delay_ms`. No time or text chunks: equal frames give equal bytes.
pub fn encode_apng(frames: &[Rgb], delay_ms: u16) -> Result<Vec<u8>, RenderError> {
    let first = frames.first().ok_or(RenderError::Size(0, 0))?;
    let (w, h) = (first.width, first.height);
    if w == 0 || h == 0 || w > u32::MAX as usize || h > u32::MAX as usize {
        return Err(RenderError::Size(w, h));
    }
    if let Some(f) = frames.iter().find(|f| (f.width, f.height) != (w, h)) {
        return Err(RenderError::Size(f.width, f.height));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(frames.len() as u32, 0)?;
        enc.set_frame_delay(delay_ms.max(1), 1000)?;
        let mut writer = enc.write_header()?;
        for f in frames {
            writer.write_image_data(&f.data)?;
        }
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_from_a_decoder() {
        let frame = |v: u8| Rgb {
            width: 3,
            height: 2,
            data: vec![v; 18],
        };
        let bytes = encode_apng(&[frame(10), frame(200), frame(90)], 40).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let control = reader.info().animation_control.unwrap();
        assert_eq!((control.num_frames, control.num_plays), (3, 0));
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let mut seen = Vec::new();
        while let Ok(info) = reader.next_frame(&mut buf) {
            seen.push(buf[..info.buffer_size()][0]);
        }
        assert_eq!(seen, vec![10, 200, 90]);
        assert!(encode_apng(
            &[
                frame(1),
                Rgb {
                    width: 2,
                    height: 2,
                    data: vec![0; 12]
                }
            ],
            40
        )
        .is_err());
    }
}
