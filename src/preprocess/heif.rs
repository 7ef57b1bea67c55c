//! HEIC and AVIF through libheif (the `heif` feature: Debian's `libheif-dev`, 1.15 or later),
//! the library GIMP, ImageMagick and immich's thumbnailing read them with.
//!
//! libheif applies the container's own transformations (`irot` rotation, `imir` mirroring, `clap`
//! cropping), which is where HEIF keeps orientation; the EXIF Orientation tag that phones also
//! write repeats it and must not be applied a second time. Alpha is composited over white like
//! every other format. Reference: `heif-convert` (libheif) and `avifdec` output, within the
//! tolerance stated in tests/formats.rs.

use std::path::Path;

use image::{DynamicImage, RgbImage, RgbaImage};
use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};

use super::rgb::{check_size, to_rgb};
use crate::error::{Error, Result};

pub(super) fn decode(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let bad = |why: String| Error::image(path, why);
    let ctx = HeifContext::read_from_bytes(bytes)
        .map_err(|e| bad(format!("corrupt or truncated HEIF: {e}")))?;
    let handle = ctx
        .primary_image_handle()
        .map_err(|e| bad(format!("no primary image: {e}")))?;
    let (w, h) = (handle.width(), handle.height());
    check_size(path, w, h)?;
    let alpha = handle.has_alpha_channel();
    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    let image = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    let planes = image.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| bad("libheif returned no interleaved plane".into()))?;
    let channels = if alpha { 4 } else { 3 };
    let row = plane.width as usize * channels;
    let mut pixels = Vec::with_capacity(row * plane.height as usize);
    for y in 0..plane.height as usize {
        let start = y * plane.stride;
        let line = plane
            .data
            .get(start..start + row)
            .ok_or_else(|| bad("libheif returned a short plane".into()))?;
        pixels.extend_from_slice(line);
    }
    let img = if alpha {
        RgbaImage::from_raw(plane.width, plane.height, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(plane.width, plane.height, pixels).map(DynamicImage::ImageRgb8)
    }
    .ok_or_else(|| bad("libheif returned a buffer of the wrong size".into()))?;
    Ok(to_rgb(img))
}
