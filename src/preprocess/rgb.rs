//! What every decoder hands back: 8-bit RGB within the size limit. The pixel-count limit
//! (Pillow's decompression-bomb check) and Pillow's `convert_rgb` as transformers uses it (alpha
//! composited over white with Pillow's integer arithmetic, grey replicated, 16-bit scaled to
//! 8-bit).
//!
//! A leaf shared by the general decoder ([`super::decode`]) and the format-specific ones (JPEG
//! XL, HEIF, the quirks readers), so that the formats [`super::decode`] dispatches to need not
//! reach back into it.

use std::path::Path;

use image::{DynamicImage, RgbImage};

use crate::error::{Error, Result};

/// Pillow refuses images above twice its `MAX_IMAGE_PIXELS` as decompression bombs; so do we.
pub const MAX_PIXELS: u64 = 2 * 89_478_485;

/// Refuses an image with no pixels, or with more than [`MAX_PIXELS`] (a decompression bomb),
/// before anything is allocated for it.
pub(super) fn check_size(path: &Path, w: u32, h: u32) -> Result<()> {
    let bad = |reason: String| Err(Error::image(path, reason));
    if w == 0 || h == 0 {
        return bad(format!("image has no pixels ({w}x{h})"));
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return bad(format!(
            "{w}x{h} is too large ({} megapixels; limit {}): possible decompression bomb",
            w as u64 * h as u64 / 1_000_000,
            MAX_PIXELS / 1_000_000
        ));
    }
    Ok(())
}

/// Converts any decoded image to 8-bit RGB the way Pillow's `convert_rgb` does.
pub fn to_rgb(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        img if img.color().has_alpha() => composite_over_white(&img.into_rgba8()),
        img => img.to_rgb8(),
    }
}

/// Pillow's `Image.alpha_composite(white, img)` (libImaging/AlphaComposite.c) with an opaque
/// background: integer arithmetic with 7 extra bits and rounded divisions by 255, so that pixels
/// equal the reference's to the level. The per-alpha coefficients (a division each) are
/// computed once for all 256 alphas; opaque pixels, most of a typical RGBA photo, come out
/// unchanged (what the arithmetic gives them, asserted in a test).
fn composite_over_white(rgba: &image::RgbaImage) -> RgbImage {
    let (w, h) = rgba.dimensions();
    let coefs = alpha_coefficients();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for p in rgba.as_raw().chunks_exact(4) {
        let a = p[3];
        if a == 255 {
            out.extend_from_slice(&p[..3]);
        } else {
            let (coef1, white) = coefs[a as usize];
            for &c in &p[..3] {
                out.push(blend_level(c, coef1, white));
            }
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer sized from dimensions")
}

const BLEND_BITS: u32 = 7;

/// For each alpha: AlphaComposite.c's `coef1` and the white background's share `255 * coef2`
/// (alpha 0: `coef1 = 0` and all of the background, so its pixels come out white).
fn alpha_coefficients() -> &'static [(u32, u32); 256] {
    static TABLE: std::sync::OnceLock<[(u32, u32); 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [(0, 255 * 255 * (1 << BLEND_BITS)); 256];
        for (a, slot) in t.iter_mut().enumerate().skip(1) {
            let a = a as u32;
            let blend = 255 * (255 - a);
            let outa255 = a * 255 + blend;
            let coef1 = a * 255 * 255 * (1 << BLEND_BITS) / outa255;
            let coef2 = 255 * (1 << BLEND_BITS) - coef1;
            *slot = (coef1, 255 * coef2);
        }
        t
    })
}

#[inline]
fn blend_level(c: u8, coef1: u32, white: u32) -> u8 {
    let tmp = c as u32 * coef1 + white + (0x80 << BLEND_BITS);
    // A rounded division by 255, as AlphaComposite.c's SHIFTFORDIV255.
    ((((tmp >> 8) + tmp) >> 8) >> BLEND_BITS) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AlphaComposite.c's arithmetic as written there, one pixel level at a time.
    fn pillow_level(c: u8, a: u8) -> u8 {
        if a == 0 {
            return 255;
        }
        let (a, bits) = (a as u32, 7);
        let blend = 255 * (255 - a);
        let outa255 = a * 255 + blend;
        let coef1 = a * 255 * 255 * (1 << bits) / outa255;
        let coef2 = 255 * (1 << bits) - coef1;
        let tmp = c as u32 * coef1 + 255 * coef2 + (0x80 << bits);
        ((((tmp >> 8) + tmp) >> 8) >> bits) as u8
    }

    #[test]
    fn compositing_over_white_equals_pillows_arithmetic_for_every_level_and_alpha() {
        let mut raw = Vec::with_capacity(256 * 256 * 4);
        for a in 0..=255u8 {
            for c in 0..=255u8 {
                raw.extend_from_slice(&[c, 255 - c, c / 2, a]);
            }
        }
        let rgb = composite_over_white(&image::RgbaImage::from_raw(256, 256, raw).unwrap());
        for (i, p) in rgb.pixels().enumerate() {
            let (a, c) = ((i / 256) as u8, (i % 256) as u8);
            let want = [c, 255 - c, c / 2].map(|v| pillow_level(v, a));
            assert_eq!(p.0, want, "level {c}, alpha {a}");
        }
    }

    #[test]
    fn opaque_and_transparent_alpha() {
        let img =
            image::RgbaImage::from_raw(3, 1, vec![10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128])
                .unwrap();
        let rgb = composite_over_white(&img);
        assert_eq!(&rgb.as_raw()[0..3], &[10, 20, 30]);
        assert_eq!(&rgb.as_raw()[3..6], &[255, 255, 255]);
        // Half-transparent black over white is mid-grey.
        assert!((rgb.as_raw()[6] as i32 - 127).abs() <= 1);
    }
}
