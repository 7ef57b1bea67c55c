//! JPEG XL, decoded by jxl-oxide (pure Rust, so part of the default build).
//!
//! Pixels are rendered in sRGB, 8 bits per sample (the encoder's XYB or other colour encoding
//! converted, as `djxl` does for an sRGB image), with the image's orientation applied, then
//! converted to RGB like every other format (alpha over white). Reference: `djxl` output, within
//! one level (tests/formats.rs).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, RgbImage};

use super::rgb::{check_size, to_rgb};
use crate::error::{Error, Result};

pub(super) fn decode(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let bad = |why: String| Error::image(path, why);
    let mut image = jxl_oxide::JxlImage::builder()
        .read(Cursor::new(bytes))
        .map_err(|e| bad(format!("corrupt or truncated JPEG XL: {e}")))?;
    let (w, h) = (image.width(), image.height());
    check_size(path, w, h)?;
    image.request_color_encoding(jxl_oxide::EnumColourEncoding::srgb(
        jxl_oxide::RenderingIntent::Relative,
    ));
    let render = image
        .render_frame(0)
        .map_err(|e| bad(format!("corrupt or truncated JPEG XL: {e}")))?;
    let mut stream = render.stream();
    let (sw, sh, channels) = (stream.width(), stream.height(), stream.channels());
    let mut buf = vec![0u8; sw as usize * sh as usize * channels as usize];
    stream.write_to_buffer(&mut buf);
    let img = match channels {
        1 => image::GrayImage::from_raw(sw, sh, buf).map(DynamicImage::ImageLuma8),
        2 => image::GrayAlphaImage::from_raw(sw, sh, buf).map(DynamicImage::ImageLumaA8),
        3 => RgbImage::from_raw(sw, sh, buf).map(DynamicImage::ImageRgb8),
        4 => image::RgbaImage::from_raw(sw, sh, buf).map(DynamicImage::ImageRgba8),
        n => return Err(bad(format!("JPEG XL with {n} channels is not supported"))),
    }
    .ok_or_else(|| bad("JPEG XL rendered a buffer of the wrong size".into()))?;
    Ok(to_rgb(img))
}
