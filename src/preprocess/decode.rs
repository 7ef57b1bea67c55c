//! Decoding an image file into the RGB pixels CLIP's preprocessing starts from.
//!
//! The format is recognised by content, never by extension. EXIF orientation is applied (the
//! reference ignores it, so a phone photo would be embedded sideways: we do better). Colour
//! conversion follows Pillow's `convert_rgb` as transformers uses it: alpha is composited over
//! white with Pillow's integer arithmetic, grey is replicated, 16-bit is scaled to 8-bit
//! ([`super::rgb`], which every format's decoder shares), CMYK JPEGs are converted by the
//! decoder.
//!
//! No file can stop a run: decoders are third-party parsers of hostile input, and some of them
//! panic on malformed files (the `image` crate's TIFF decoder asserts on a tiled TIFF with
//! separate planes, which [`super::tiff`] reads instead). Every decoding
//! entry point runs inside [`contain_panics`], which turns a panic into that file's error
//! ("decoder crashed: ...") and keeps the panic's message off the terminal.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::formats::{self, Format};
use super::rgb::{check_size, to_rgb, MAX_PIXELS};
use crate::error::{Error, Result};

/// Reads and decodes a file. Errors name the path and say why.
pub fn decode_file(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(path, &bytes)
}

/// Decodes an in-memory file; `path` only names it in errors.
pub fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    contain_panics(path, || decode_exact(path, bytes))
}

thread_local! {
    /// Set while this thread runs a decoder under [`contain_panics`].
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a decoder) so that a panic inside it becomes an image error for `path`. The panic
/// hook stays quiet for such panics (the error is reported with the file, like any other), and
/// speaks for every other panic as before.
pub fn contain_panics<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        tracing::debug!(path = %path.display(), "decoder panicked: {what}");
        Err(Error::image(path, format!("decoder crashed: {what}")))
    })
}

fn decode_exact(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let bad = |reason: String| Error::image(path, reason);
    if bytes.is_empty() {
        return Err(bad("empty file".into()));
    }
    let format = match formats::sniff(&bytes[..bytes.len().min(64)], path) {
        None => return Err(bad("not an image (unrecognised content)".into())),
        Some(f) => f,
    };
    if let Some(reason) = formats::missing_support(format) {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            reason,
        });
    }
    let format = match format {
        Format::Image(f) => f,
        Format::JpegXl => return super::jxl::decode(path, bytes),
        Format::Raw(kind) => return decode_raw(path, bytes, kind),
        #[cfg(feature = "heif")]
        Format::Heic | Format::Avif => return super::heif::decode(path, bytes),
        #[cfg(not(feature = "heif"))]
        Format::Heic | Format::Avif => unreachable!("refused above by missing_support"),
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // zune-jpeg fills missing scan data with grey instead of failing: a half-downloaded
        // photo would be embedded as garbage. Pillow refuses such files too.
        return Err(bad(
            "truncated JPEG (no end-of-image marker after the scan data)".into(),
        ));
    }
    if format == ImageFormat::Jpeg {
        // libjpeg(-turbo) is what Pillow decodes with: the reference's pixels, exactly. Anything
        // it does not take (CMYK, too large, an error) goes on to the general path below
        // (zune-jpeg), which converts CMYK as Pillow does and reports errors.
        if let Some(header) = jpeg_header(bytes) {
            match libjpeg_decode(bytes, 1, header) {
                Ok(Some(rgb)) => return Ok(rgb),
                Ok(None) => {}
                // Refused by Pillow's own decoder: refused here too, with its reason.
                Err(why) => return Err(bad(format!("corrupt JPEG: {why}"))),
            }
        }
    }
    if format == ImageFormat::Tiff {
        if let Some(copy) = super::tiff::msb_first_copy(bytes) {
            // The copy's FillOrder is 1: this recursion is one level deep.
            return decode_exact(path, &copy.map_err(bad)?);
        }
        if let Some(variant) = super::tiff::decode(bytes) {
            let img = variant.map_err(bad)?;
            check_size(path, img.width(), img.height())?;
            // The Orientation tag, as the `image` crate's TIFF decoder reports it for the rest.
            let mut img = DynamicImage::ImageRgb8(to_rgb(img));
            if let Some(o) = super::raw::tiff_ifd0(bytes)
                .and_then(|t| t.get(&274).copied())
                .and_then(|v| image::metadata::Orientation::from_exif(v as u8))
            {
                img.apply_orientation(o);
            }
            return Ok(img.into_rgb8());
        }
        if let Some(why) = unsupported_tiff(bytes) {
            return Err(bad(why));
        }
        if let Some(grey) = super::quirks::low_bit_grey_tiff(bytes) {
            return grey.map_err(bad);
        }
    }
    let rewritten;
    let quirk = match format {
        ImageFormat::Bmp => match super::quirks::os2_bmp_as_windows(bytes) {
            Some(windows) => super::quirks::bmp_planes_as_one(&windows).or(Some(windows)),
            None => super::quirks::bmp_planes_as_one(bytes),
        },
        ImageFormat::Gif => super::quirks::gif_with_grey_palette(bytes),
        _ => None,
    };
    let bytes = match quirk {
        Some(b) => {
            rewritten = b;
            &rewritten[..]
        }
        None => bytes,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad(describe(&e)))?;
    let (w, h) = decoder.dimensions();
    check_size(path, w, h)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad(describe(&e)))?;
    img.apply_orientation(orientation);
    Ok(to_rgb(img))
}

/// A camera RAW, through its embedded preview (decoded here, as any JPEG) or its developed
/// sensor data ([`super::raw`]).
fn decode_raw(path: &Path, bytes: &[u8], kind: &str) -> Result<RgbImage> {
    match super::raw::source(path, bytes, kind)? {
        super::raw::Source::Developed(rgb) => Ok(rgb),
        super::raw::Source::Preview { jpeg, orientation } => {
            let mut rgb = decode_bytes(path, jpeg)?;
            if let Some(o) = orientation {
                let mut img = DynamicImage::ImageRgb8(rgb);
                img.apply_orientation(o);
                rgb = img.into_rgb8();
            }
            Ok(rgb)
        }
    }
}

/// How JPEGs are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DecodeMode {
    /// Every pixel, as the reference decodes: embeddings match the reference.
    #[default]
    Exact,
    /// JPEGs at least twice the target size are decoded at 1/2, 1/4 or 1/8 scale inside the
    /// IDCT (the smallest whose short side still reaches `min_short`): several times less work
    /// for photos, at the price of slightly different pixels (bounded by a test).
    ///
    /// Fast mode's resize goes with it: large images of any format are first reduced by
    /// averaging blocks ([`super::resample::resize_rgb_reducing`]).
    Scaled { min_short: usize },
}

/// Decodes in the given mode; `Exact` is [`decode_bytes`].
pub fn decode_bytes_with(path: &Path, bytes: &[u8], mode: DecodeMode) -> Result<RgbImage> {
    contain_panics(path, || {
        if let DecodeMode::Scaled { min_short } = mode {
            if let Some(rgb) = decode_jpeg_scaled(bytes, min_short) {
                return Ok(rgb);
            }
        }
        decode_exact(path, bytes)
    })
}

/// The scaled path: `None` whenever it does not apply (not a complete JPEG, too small, an
/// unusual colour format, a decoder error), and the exact path then decides.
fn decode_jpeg_scaled(bytes: &[u8], min_short: usize) -> Option<RgbImage> {
    if image::guess_format(bytes).ok()? != ImageFormat::Jpeg || !jpeg_is_complete(bytes) {
        return None;
    }
    let header = jpeg_header(bytes)?;
    let (w, h) = (header.width, header.height);
    if w.min(h) < 2 * min_short {
        return None;
    }
    if w.min(h) >= 8 * min_short {
        // At 1/8 a pixel is its block's DC coefficient alone: of a progressive JPEG only the
        // first scans (DC of every component) are needed, often a tenth of the file. Decoded
        // by jpeg-decoder: libjpeg would smooth the DCs of a file whose AC scans are missing
        // ("block smoothing"), a blur of several levels.
        if let Some(rgb) =
            progressive_dc_prefix(bytes).and_then(|b| jd_scaled(&b, min_short, header))
        {
            return Some(rgb);
        }
    }
    // 1/8, 1/4 or 1/2 (libjpeg's scaled IDCTs): the smallest whose short side still reaches
    // `min_short`.
    let denom = [8, 4, 2]
        .into_iter()
        .find(|d| w.min(h).div_ceil(*d) >= min_short)?;
    match libjpeg_decode(bytes, denom, header) {
        Ok(Some(rgb)) => Some(rgb),
        // Not for this path, or refused: the exact path decides, and reports.
        _ => None,
    }
}

/// jpeg-decoder's DCT-scaled decoding, at the smallest scale whose short side still reaches
/// `min_short`, EXIF orientation applied.
fn jd_scaled(bytes: &[u8], min_short: usize, header: JpegHeader) -> Option<RgbImage> {
    let (w, h) = (header.width, header.height);
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.read_info().ok()?;
    // Request the size whose short side is `min_short`; the decoder picks the smallest IDCT
    // scale that still covers it in both dimensions.
    let (rw, rh) = if w <= h {
        (min_short, (h * min_short).div_ceil(w))
    } else {
        ((w * min_short).div_ceil(h), min_short)
    };
    dec.scale(
        rw.min(u16::MAX as usize) as u16,
        rh.min(u16::MAX as usize) as u16,
    )
    .ok()?;
    let pixels = dec.decode().ok()?;
    let info = dec.info()?;
    let (sw, sh) = (info.width as u32, info.height as u32);
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(sw, sh, pixels)?,
        jpeg_decoder::PixelFormat::L8 => {
            let grey = image::GrayImage::from_raw(sw, sh, pixels)?;
            DynamicImage::ImageLuma8(grey).to_rgb8()
        }
        _ => return None,
    };
    let mut img = DynamicImage::ImageRgb8(rgb);
    img.apply_orientation(header.orientation);
    Some(img.into_rgb8())
}

/// For a progressive JPEG whose scans start with the first DC pass of every component: the file
/// up to the end of those scans, then an end-of-image marker. A decoder makes the same picture of
/// it at 1/8 scale, but for the DC bits refined by later scans (when the encoder split them,
/// at most a few levels). `None` for anything else.
fn progressive_dc_prefix(bytes: &[u8]) -> Option<Vec<u8>> {
    let be16 =
        |at: usize| Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize);
    let mut components: Option<&[u8]> = None;
    let mut with_dc: Vec<u8> = Vec::new();
    let mut i = 2; // after SOI
    loop {
        if *bytes.get(i)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = be16(i + 2)?;
        match marker {
            0xC2 => {
                // SOF2: progressive, Huffman. Nf at offset 7 of the segment, then 3 bytes each.
                let nf = *bytes.get(i + 9)? as usize;
                let ids = bytes.get(i + 10..i + 10 + 3 * nf)?;
                components = Some(ids);
            }
            // Any other frame type (baseline, lossless, arithmetic) or the end: not for us.
            0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xD9 => return None,
            0xDA => {
                let frame = components?;
                let ns = *bytes.get(i + 4)? as usize;
                let ids = bytes.get(i + 5..i + 5 + 2 * ns)?;
                let ss = *bytes.get(i + 5 + 2 * ns)?;
                let ah = *bytes.get(i + 7 + 2 * ns)? >> 4;
                if ss != 0 {
                    return None; // an AC scan before every DC: an unusual script, decode it all
                }
                if ah == 0 {
                    with_dc.extend(ids.iter().step_by(2));
                }
                // Entropy-coded data ends at the first marker (0xFF not followed by a stuffed
                // zero or a restart marker).
                let mut j = i + 2 + len;
                while j + 1 < bytes.len()
                    && !(bytes[j] == 0xFF
                        && bytes[j + 1] != 0
                        && !(0xD0..=0xD7).contains(&bytes[j + 1]))
                {
                    j += 1;
                }
                if j + 1 >= bytes.len() {
                    return None;
                }
                if frame.iter().step_by(3).all(|id| with_dc.contains(id)) {
                    let mut out = Vec::with_capacity(j + 2);
                    out.extend_from_slice(&bytes[..j]);
                    out.extend_from_slice(&[0xFF, 0xD9]);
                    return Some(out);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 2 + len;
    }
}

/// What the fast paths need to know of a JPEG before decoding it.
#[derive(Clone, Copy)]
struct JpegHeader {
    width: usize,
    height: usize,
    orientation: image::metadata::Orientation,
}

/// The header of an 8-bit colour or grey JPEG within the size limit; `None` otherwise (CMYK
/// and 16-bit ones are left to the general path, which converts them as Pillow does).
fn jpeg_header(bytes: &[u8]) -> Option<JpegHeader> {
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.read_info().ok()?;
    let info = dec.info()?;
    let (width, height) = (info.width as usize, info.height as usize);
    let plain = matches!(
        info.pixel_format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    );
    if !plain || width == 0 || height == 0 || (width as u64 * height as u64) > MAX_PIXELS {
        return None;
    }
    let orientation = dec
        .exif_data()
        .and_then(image::metadata::Orientation::from_exif_chunk)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    Some(JpegHeader {
        width,
        height,
        orientation,
    })
}

/// Decodes with libjpeg at scale `1 / denom` (inside the IDCT), EXIF orientation applied: the
/// libjpeg-turbo decoder as mozjpeg builds it (C, or SIMD with the `jpeg-simd` feature, which
/// computes the same pixels). Its defaults are Pillow's (accurate integer IDCT, smooth chroma
/// upsampling), so at scale 1 the pixels are the reference's, to the level (tests/parity.rs).
///
/// `Err` carries libjpeg's own message for a file it refuses (mozjpeg reports libjpeg's errors
/// by unwinding), `Ok(None)` means the file is not for this path (the caller decides).
fn libjpeg_decode(
    bytes: &[u8],
    denom: usize,
    header: JpegHeader,
) -> std::result::Result<Option<RgbImage>, String> {
    let decode = || -> std::io::Result<Option<RgbImage>> {
        let mut dec = mozjpeg::Decompress::new_mem(bytes)?;
        if denom > 1 {
            dec.scale((8 / denom) as u8);
        }
        let mut started = dec.rgb()?;
        let (w, h) = (started.width(), started.height());
        let expected = (header.width.div_ceil(denom), header.height.div_ceil(denom));
        if (w, h) != expected {
            return Ok(None); // the two parsers disagree: let the general path decide
        }
        let pixels: Vec<u8> = started.read_scanlines::<u8>()?;
        started.finish()?;
        let Some(rgb) = RgbImage::from_raw(w as u32, h as u32, pixels) else {
            return Ok(None);
        };
        let mut img = DynamicImage::ImageRgb8(rgb);
        img.apply_orientation(header.orientation);
        Ok(Some(img.into_rgb8()))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(rgb)) => Ok(rgb),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "libjpeg error".into())),
    }
}

/// Whether a JPEG's entropy-coded data is followed by an end-of-image marker. Marker segments
/// before the first scan are skipped by their lengths (an EXIF thumbnail inside APP1 has an EOI
/// of its own); inside scan data 0xFF is always stuffed, so a later FF D9 is the real EOI.
/// Bytes after the EOI (e.g. a phone's appended video) are allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            // Extraneous bytes before a marker: libjpeg (so Pillow) skips them with a warning.
            match bytes[i..].iter().position(|&b| b == 0xFF) {
                Some(n) => {
                    i += n;
                    continue;
                }
                None => return false,
            }
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xDA {
            let scan = &bytes[(i + 2 + len).min(bytes.len())..];
            return scan.windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        i += 2 + len;
    }
    false
}

pub use super::formats::has_image_extension;

/// A TIFF variant the `tiff` crate cannot decode, named (it would fail with a less telling
/// error).
fn unsupported_tiff(bytes: &[u8]) -> Option<String> {
    let tags = super::raw::tiff_ifd0(bytes)?;
    let compression = match tags.get(&259) {
        Some(6) => Some("old-style JPEG"),
        Some(34712) => Some("JPEG 2000"),
        Some(34925) => Some("LZMA"),
        Some(50000) => Some("Zstandard"),
        Some(50001) => Some("WebP"),
        Some(34892) => Some("lossy JPEG (DNG)"),
        _ => None,
    };
    if let Some(c) = compression {
        return Some(format!(
            "TIFF with {c} compression is not supported (convert it, e.g. `tiffcp -c lzw`)"
        ));
    }
    if tags.get(&262) == Some(&9) || tags.get(&262) == Some(&10) {
        return Some("TIFF in ICC or ITU L*a*b* colour is not supported (CIELab is)".into());
    }
    None
}

fn describe(e: &image::ImageError) -> String {
    match e {
        image::ImageError::Limits(l) => format!("too large to decode safely: {l}"),
        image::ImageError::Unsupported(u) => format!("unsupported: {u}"),
        other => format!("corrupt or truncated: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn a_panicking_decoder_becomes_the_files_error() {
        let path = Path::new("x.tif");
        let r: Result<()> = contain_panics(path, || panic!("assertion failed: buf.len()"));
        let msg = r.unwrap_err().to_string();
        assert_eq!(msg, "x.tif: decoder crashed: assertion failed: buf.len()");
        let r: Result<()> = contain_panics(path, || panic!("{} of {}", 3, 4));
        assert!(r
            .unwrap_err()
            .to_string()
            .ends_with("decoder crashed: 3 of 4"));
        // Nested use restores the outer state; errors and values pass through untouched.
        let v = contain_panics(path, || contain_panics(path, || Ok(7)));
        assert_eq!(v.unwrap(), 7);
        assert!(!CONTAINED.with(|c| c.get()), "flag cleared after use");
        // A real decoder panic is contained too: the `image` crate's TIFF decoder asserts on a
        // tiled TIFF with separate planes (which `decode_bytes` reads by its own path).
        let bytes = fixture("odd/tiled_planar.tif");
        let r: Result<()> = contain_panics(path, || {
            let _ = image::load_from_memory_with_format(&bytes, ImageFormat::Tiff);
            Ok(())
        });
        let err = r.unwrap_err().to_string();
        assert!(err.contains("decoder crashed: assertion failed"), "{err}");
        assert!(decode_bytes(path, &bytes).is_ok());
    }

    #[test]
    fn dc_scans_of_a_progressive_jpeg_are_found() {
        let bytes = fixture("progressive.jpg");
        let prefix = progressive_dc_prefix(&bytes).expect("a progressive file");
        assert!(
            prefix.len() * 4 < bytes.len(),
            "{} of {} bytes",
            prefix.len(),
            bytes.len()
        );
        assert!(prefix.ends_with(&[0xFF, 0xD9]) && jpeg_is_complete(&prefix));
        // A baseline JPEG has no such prefix.
        assert!(progressive_dc_prefix(&fixture("reference/images/astronaut.jpg")).is_none());
    }

    #[test]
    fn dc_scans_decode_like_the_whole_file_at_one_eighth() {
        let bytes = fixture("progressive.jpg");
        let header = jpeg_header(&bytes).unwrap();
        let prefix = progressive_dc_prefix(&bytes).unwrap();
        // 512 x 512 at 1/8 is 64 x 64.
        let a = jd_scaled(&prefix, 64, header).expect("the prefix decodes");
        let b = jd_scaled(&bytes, 64, header).unwrap();
        assert_eq!(a.dimensions(), (64, 64));
        assert_eq!(a.dimensions(), b.dimensions());
        let diffs: Vec<i32> = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (*x as i32 - *y as i32).abs())
            .collect();
        let worst = *diffs.iter().max().unwrap();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        eprintln!("DC scans only vs whole file at 1/8: max {worst}, mean {mean:.3} levels");
        // Only the DC bit that a later scan refines is missing.
        assert!(worst <= 4 && mean <= 1.0, "max {worst}, mean {mean}");
    }

    /// Fast mode takes the DC-scan path for a progressive JPEG at 1/8: its pixels are those of
    /// the DC scans alone, not libjpeg's decode of the whole file (which differ by the refined
    /// DC bits and by libjpeg's own 1/8 arithmetic), so a bypassed path fails here.
    #[test]
    fn fast_mode_decodes_a_large_progressive_jpeg_from_its_dc_scans() {
        let bytes = fixture("progressive.jpg");
        let header = jpeg_header(&bytes).unwrap();
        let path = Path::new("progressive.jpg");
        let fast = decode_bytes_with(path, &bytes, DecodeMode::Scaled { min_short: 64 }).unwrap();
        let dc_only = jd_scaled(&progressive_dc_prefix(&bytes).unwrap(), 64, header).unwrap();
        let libjpeg = libjpeg_decode(&bytes, 8, header).unwrap().unwrap();
        assert_eq!(fast.dimensions(), (64, 64));
        assert_ne!(
            dc_only, libjpeg,
            "the two paths must be told apart for this test to hold"
        );
        assert_eq!(fast, dc_only, "the DC-scan path was not taken");
        // Below 8x the target the scans are not enough: libjpeg's scaled IDCT runs instead.
        let half = decode_bytes_with(path, &bytes, DecodeMode::Scaled { min_short: 128 }).unwrap();
        assert_eq!(half, libjpeg_decode(&bytes, 4, header).unwrap().unwrap());
    }

    #[test]
    fn truncated_jpeg_is_detected() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reference/images/chelsea.jpg");
        let full = std::fs::read(path).unwrap();
        assert!(jpeg_is_complete(&full));
        for cut in [full.len() - 2, full.len() * 2 / 3, 700] {
            assert!(!jpeg_is_complete(&full[..cut]), "cut at {cut}");
            let e = decode_bytes(Path::new("c.jpg"), &full[..cut]).unwrap_err();
            assert!(e.to_string().contains("truncated"), "{e}");
        }
        let mut extra = full.clone();
        extra.extend_from_slice(&[0u8; 1000]);
        assert!(
            decode_bytes(Path::new("c.jpg"), &extra).is_ok(),
            "trailing data is fine"
        );
    }

    #[test]
    fn garbage_and_empty_are_errors_naming_the_file() {
        let e = decode_bytes(Path::new("x.jpg"), b"").unwrap_err();
        assert!(e.to_string().contains("x.jpg") && e.to_string().contains("empty"));
        let e = decode_bytes(Path::new("y.png"), b"hello, not an image").unwrap_err();
        assert!(e.to_string().contains("not an image"), "{e}");
    }
}
