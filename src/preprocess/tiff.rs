//! The TIFF variants that scanners, archives and photo editors write and the `image` crate's
//! TIFF decoder refuses (or, for separate colour planes, asserts on), read as Pillow reads them
//! through libtiff:
//!
//! - **JPEG-compressed** strips and tiles (compression 7): each chunk is decoded by libjpeg, the
//!   decoder libtiff hands it to, with the file's shared `JPEGTables` in front of it. YCbCr is
//!   converted to RGB by libjpeg (Pillow asks libtiff for `JPEGCOLORMODE_RGB`), RGB and CMYK
//!   come out as stored, and CMYK goes through Pillow's `cmyk2rgb`.
//! - **Palette** images of 1 to 8 bits: the `tiff` crate reads their samples once the file is
//!   presented as grey (a copy whose photometric tag says so), and each index is looked up in
//!   the 16-bit colour map, whose high bytes are Pillow's palette.
//! - **Separate colour planes** (`PlanarConfiguration` 2), in strips or tiles: each plane's
//!   chunks are read and interleaved.
//! - **Group 3 fax** (one-dimensional), through the `fax` crate; and any file whose bits are
//!   stored least significant first (FillOrder 2), through a bit-reversed copy.
//! - **CIELab**, 8 bits: L* and the signed a*, b* converted to sRGB as Pillow's `convert("RGB")`
//!   does for its LAB mode (through LittleCMS: the D50 Lab profile to sRGB), in floating point.
//!
//! Anything else goes on to the `image` crate ([`decode`] returns `None`).

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, Rgb, RgbImage};
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;

type Outcome = std::result::Result<DynamicImage, String>;
/// A decoded JPEG chunk: width, height and its samples.
type Chunk = (usize, usize, Vec<u8>);

/// The variants above, decoded to the image their samples describe (alpha kept, for
/// [`super::rgb::to_rgb`] to composite as Pillow does); `None` for every other TIFF.
pub(super) fn decode(bytes: &[u8]) -> Option<Outcome> {
    let mut d = Decoder::new(Cursor::new(bytes)).ok()?;
    let tag = |d: &mut Decoder<Cursor<&[u8]>>, t: Tag| d.find_tag_unsigned::<u32>(t).ok().flatten();
    let photometric = tag(&mut d, Tag::PhotometricInterpretation)?;
    let compression = tag(&mut d, Tag::Compression).unwrap_or(1);
    let planar = tag(&mut d, Tag::PlanarConfiguration).unwrap_or(1);
    let variant = match (compression, photometric, planar) {
        (7 | 3, _, 2) | (_, 3 | 8, 2) => Err(format!(
            "separate colour planes with compression {compression} and photometric \
             {photometric} are not supported (convert it, e.g. `tiffcp -p contig`)"
        )),
        (7, _, _) => jpeg(bytes, &mut d, photometric),
        (3, 0 | 1, _) => fax3(bytes, &mut d, photometric),
        (_, 3, _) => palette(bytes, &mut d),
        (_, 8, _) => cielab(bytes, &mut d),
        (_, _, 2) => planes(&mut d),
        _ => return None,
    };
    Some(variant.map_err(|e| format!("TIFF: {e}")))
}

/// A tag's first value (BitsPerSample holds one a sample).
fn first(d: &mut Decoder<Cursor<&[u8]>>, tag: Tag) -> std::result::Result<Option<u32>, String> {
    Ok(d.find_tag_unsigned_vec::<u32>(tag)
        .map_err(err)?
        .and_then(|v| v.first().copied()))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The image's size, refused above the pixel limit before anything is allocated for it.
fn size(d: &mut Decoder<Cursor<&[u8]>>) -> std::result::Result<(usize, usize), String> {
    let (w, h) = d.dimensions().map_err(err)?;
    if w == 0 || h == 0 || w as u64 * h as u64 > super::rgb::MAX_PIXELS {
        return Err(format!("{w}x{h} is not a size to decode"));
    }
    Ok((w as usize, h as usize))
}

/// Where chunk `i` of one plane starts in the image: strips run down, tiles across then down.
fn chunk_origin(i: usize, w: usize, chunk: (usize, usize), tiled: bool) -> (usize, usize) {
    if tiled {
        let across = w.div_ceil(chunk.0);
        ((i % across) * chunk.0, (i / across) * chunk.1)
    } else {
        (0, i * chunk.1)
    }
}

fn jpeg(bytes: &[u8], d: &mut Decoder<Cursor<&[u8]>>, photometric: u32) -> Outcome {
    let (w, h) = size(d)?;
    let tiled = d.find_tag(Tag::TileWidth).map_err(err)?.is_some();
    let ranges = chunk_ranges(bytes, d)?;
    let tables = d.get_tag_u8_vec(Tag::JPEGTables).ok();
    let chunk = if tiled {
        let tw = d.get_tag_u32(Tag::TileWidth).map_err(err)? as usize;
        let th = d.get_tag_u32(Tag::TileLength).map_err(err)? as usize;
        (tw, th)
    } else {
        let rows = d.find_tag_unsigned::<u32>(Tag::RowsPerStrip).map_err(err)?;
        (w, rows.map_or(h, |r| (r as usize).min(h)))
    };
    if chunk.0 == 0 || chunk.1 == 0 {
        return Err("malformed strip or tile layout".into());
    }
    let channels = match photometric {
        0 | 1 => 1,
        2 | 6 => 3,
        5 => 4,
        p => {
            return Err(format!(
                "JPEG compression with photometric {p} is not supported"
            ))
        }
    };
    let mut out = vec![0u8; w * h * channels];
    for (i, range) in ranges.into_iter().enumerate() {
        let (x0, y0) = chunk_origin(i, w, chunk, tiled);
        if y0 >= h || x0 >= w {
            break;
        }
        let data = &bytes[range];
        let stream = with_tables(tables.as_deref(), data);
        // What of the image the chunk covers; tiles are padded at the edges, strips are not.
        let (rw, rh) = ((w - x0).min(chunk.0), (h - y0).min(chunk.1));
        let segment = if tiled { chunk } else { (w, rh) };
        let (cw, ch, pixels) = libjpeg_chunk(&stream, channels, segment)?;
        if cw < rw || ch < rh {
            return Err(format!(
                "a {cw}x{ch} JPEG chunk where {rw}x{rh} was expected"
            ));
        }
        for y in 0..rh {
            let src = &pixels[y * cw * channels..][..rw * channels];
            out[((y0 + y) * w + x0) * channels..][..rw * channels].copy_from_slice(src);
        }
    }
    let (w, h) = (w as u32, h as u32);
    let image = match channels {
        1 => {
            let mut grey = image::GrayImage::from_raw(w, h, out).ok_or("grey buffer")?;
            if photometric == 0 {
                image::imageops::invert(&mut grey);
            }
            DynamicImage::ImageLuma8(grey)
        }
        3 => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, out).ok_or("RGB buffer")?),
        _ => DynamicImage::ImageRgb8(cmyk_to_rgb(w, h, &out)),
    };
    Ok(image)
}

/// A strip's JPEG stream with the file's shared tables (an abbreviated stream of quantisation
/// and Huffman tables: SOI, tables, EOI) in front, as libtiff feeds libjpeg.
fn with_tables<'a>(tables: Option<&[u8]>, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match tables {
        Some(t) if t.len() > 4 && data.len() > 2 && data.starts_with(&[0xFF, 0xD8]) => {
            let head = t.strip_suffix(&[0xFF, 0xD9]).unwrap_or(t);
            let mut s = Vec::with_capacity(head.len() + data.len());
            s.extend_from_slice(head);
            s.extend_from_slice(&data[2..]);
            s.into()
        }
        _ => data.into(),
    }
}

/// One chunk through libjpeg: `(width, height, samples)` with `channels` samples a pixel. Its
/// size must be the strip's or tile's (`segment`), as libtiff requires: a damaged header that
/// claims more is refused before libjpeg decodes a picture of that size.
fn libjpeg_chunk(
    stream: &[u8],
    channels: usize,
    segment: (usize, usize),
) -> std::result::Result<Chunk, String> {
    let decode = || -> std::io::Result<std::result::Result<Chunk, String>> {
        let dec = mozjpeg::Decompress::new_mem(stream)?;
        if dec.width() != segment.0 || dec.height() > segment.1 {
            return Ok(Err(format!(
                "a {}x{} JPEG in a {}x{} strip or tile",
                dec.width(),
                dec.height(),
                segment.0,
                segment.1
            )));
        }
        let mut started = match channels {
            1 => dec.grayscale()?,
            3 => dec.rgb()?,
            _ => dec.to_colorspace(mozjpeg::ColorSpace::JCS_CMYK)?,
        };
        let (w, h) = (started.width(), started.height());
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        Ok(Ok((w, h, pixels)))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(Ok((w, h, p)))) if p.len() == w * h * channels => Ok((w, h, p)),
        Ok(Ok(Ok(_))) => Err("libjpeg returned a short chunk".into()),
        Ok(Ok(Err(why))) => Err(why),
        Ok(Err(e)) => Err(format!("corrupt JPEG data: {e}")),
        Err(payload) => Err(format!(
            "corrupt JPEG data: {}",
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "libjpeg error".into())
        )),
    }
}

/// Pillow's `cmyk2rgb` (libImaging/Convert.c): no colour management, ink subtracted from white.
fn cmyk_to_rgb(w: u32, h: u32, cmyk: &[u8]) -> RgbImage {
    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
    for p in cmyk.chunks_exact(4) {
        let nk = 255 - p[3] as i32;
        for &c in &p[..3] {
            rgb.push((nk - muldiv255(c as i32, nk)).clamp(0, 255) as u8);
        }
    }
    RgbImage::from_raw(w, h, rgb).expect("3 samples a pixel")
}

/// Pillow's `MULDIV255`: `a * b / 255`, rounded, in integers.
fn muldiv255(a: i32, b: i32) -> i32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// A copy of the file whose first image's photometric tag says `to` instead, so that the
/// `tiff` crate reads samples it refuses to interpret (palette indices, Lab triples) as the
/// plain grey or RGB samples they are stored as: the decompression, predictors, strips and
/// tiles are all its own.
fn relabelled(bytes: &[u8], to: u16) -> Option<Vec<u8>> {
    let mut copy = bytes.to_vec();
    set_short(&mut copy, 262, to)?;
    Some(copy)
}

/// Sets the first image's SHORT tag `tag` (one value, stored in its entry) to `to`, in place.
fn set_short(bytes: &mut [u8], tag: u16, to: u16) -> Option<()> {
    let le = match bytes.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    // An unsigned integer of `n` bytes at `o`, in the file's byte order.
    let uint = |o: usize, n: usize| -> Option<u64> {
        let b = bytes.get(o..o.checked_add(n)?)?;
        let fold = |v: u64, &x: &u8| v << 8 | x as u64;
        Some(if le {
            b.iter().rev().fold(0, fold)
        } else {
            b.iter().fold(0, fold)
        })
    };
    let u16_at = |o: usize| uint(o, 2).map(|v| v as u16);
    let big = u16_at(2)? == 43;
    let (ifd, count, entry, first) = if big {
        let ifd = usize::try_from(uint(8, 8)?).ok()?;
        (ifd, usize::try_from(uint(ifd, 8)?).ok()?, 20, 8)
    } else {
        let ifd = usize::try_from(uint(4, 4)?).ok()?;
        (ifd, u16_at(ifd)? as usize, 12, 2)
    };
    let at = (0..count.min(4096)).find_map(|i| {
        let e = ifd + first + i * entry;
        // Type SHORT (3), one value: stored in the entry itself.
        (u16_at(e)? == tag && u16_at(e + 2)? == 3).then_some(e + if big { 12 } else { 8 })
    })?;
    let v = if le {
        to.to_le_bytes()
    } else {
        to.to_be_bytes()
    };
    bytes.get_mut(at..at + 2)?.copy_from_slice(&v);
    Some(())
}

fn read_u8(d: &mut Decoder<Cursor<&[u8]>>) -> std::result::Result<Vec<u8>, String> {
    match d.read_image().map_err(err)? {
        DecodingResult::U8(v) => Ok(v),
        _ => Err("more than 8 bits a sample are not supported here".into()),
    }
}

fn palette(bytes: &[u8], d: &mut Decoder<Cursor<&[u8]>>) -> Outcome {
    let (w, h) = size(d)?;
    let bits = first(d, Tag::BitsPerSample)?.unwrap_or(1);
    if !matches!(bits, 1 | 2 | 4 | 8) {
        return Err(format!("{bits}-bit palette images are not supported"));
    }
    let map = d.get_tag_u16_vec(Tag::ColorMap).map_err(err)?;
    let entries = 1usize << bits;
    if map.len() < 3 * entries {
        return Err(format!(
            "a colour map of {} values for {entries} colours",
            map.len()
        ));
    }
    let copy = relabelled(bytes, 1).ok_or("no photometric tag to read the samples by")?;
    let mut grey = Decoder::new(Cursor::new(&copy[..]))
        .map_err(err)?
        .with_limits(limits());
    let samples = read_u8(&mut grey)?;
    // The crate hands back sub-byte samples packed as stored (rows padded to a byte).
    let row = (w * bits as usize).div_ceil(8);
    if samples.len() < row * h {
        return Err("truncated image data".into());
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let r = &samples[y * row..][..row];
        for x in 0..w {
            let bit = x * bits as usize;
            let i = ((r[bit / 8] as usize) >> (8 - bits as usize - bit % 8)) & (entries - 1);
            for c in 0..3 {
                rgb.push((map[c * entries + i] >> 8) as u8);
            }
        }
    }
    let rgb = ImageBuffer::<Rgb<u8>, _>::from_raw(w as u32, h as u32, rgb).ok_or("RGB buffer")?;
    Ok(DynamicImage::ImageRgb8(rgb))
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.decoding_buffer_size = 1 << 30;
    l
}

fn cielab(bytes: &[u8], d: &mut Decoder<Cursor<&[u8]>>) -> Outcome {
    let (w, h) = size(d)?;
    let samples = d
        .find_tag_unsigned::<u32>(Tag::SamplesPerPixel)
        .map_err(err)?
        .unwrap_or(1);
    let bits = first(d, Tag::BitsPerSample)?.unwrap_or(1);
    if samples != 3 || bits != 8 {
        return Err(format!(
            "CIELab with {samples} samples of {bits} bits is not supported (8-bit L*a*b* is)"
        ));
    }
    let copy = relabelled(bytes, 2).ok_or("no photometric tag to read the samples by")?;
    let mut rgb = Decoder::new(Cursor::new(&copy[..]))
        .map_err(err)?
        .with_limits(limits());
    let lab = read_u8(&mut rgb)?;
    if lab.len() < w * h * 3 {
        return Err("truncated image data".into());
    }
    let out: Vec<u8> = lab[..w * h * 3]
        .chunks_exact(3)
        .flat_map(|p| lab_to_srgb(p[0], p[1] as i8, p[2] as i8))
        .collect();
    Ok(DynamicImage::ImageRgb8(
        RgbImage::from_raw(w as u32, h as u32, out).ok_or("RGB buffer")?,
    ))
}

/// Separate planes (RRR... GGG... BBB...), in strips or tiles, interleaved into pixels.
fn planes(d: &mut Decoder<Cursor<&[u8]>>) -> Outcome {
    let (w, h) = size(d)?;
    let samples = d
        .find_tag_unsigned::<u32>(Tag::SamplesPerPixel)
        .map_err(err)?
        .unwrap_or(1) as usize;
    if !(1..=4).contains(&samples) {
        return Err(format!("{samples} separate planes are not supported"));
    }
    let tiled = d.find_tag(Tag::TileWidth).map_err(err)?.is_some();
    let total = if tiled {
        d.tile_count()
    } else {
        d.strip_count()
    }
    .map_err(err)? as usize;
    if !total.is_multiple_of(samples) {
        return Err("chunks do not divide into the planes".into());
    }
    let per_plane = total / samples;
    let (cw, ch) = d.chunk_dimensions();
    let chunk = (cw as usize, ch as usize);
    let mut out = vec![0u8; w * h * samples];
    for plane in 0..samples {
        for i in 0..per_plane {
            let index = (plane * per_plane + i) as u32;
            let data = match d.read_chunk(index).map_err(err)? {
                DecodingResult::U8(v) => v,
                _ => return Err("more than 8 bits a sample are not supported here".into()),
            };
            // The crate reports a tile's stored size, padding included: what lies beyond the
            // image's edge is dropped.
            let (dw, dh) = d.chunk_data_dimensions(index);
            let (dw, dh) = (dw as usize, dh as usize);
            let (x0, y0) = chunk_origin(i, w, chunk, tiled);
            if data.len() < dw * dh || x0 >= w || y0 >= h {
                return Err("a strip or tile does not fit the image".into());
            }
            let (rw, rh) = (dw.min(w - x0), dh.min(h - y0));
            for y in 0..rh {
                for x in 0..rw {
                    out[((y0 + y) * w + x0 + x) * samples + plane] = data[y * dw + x];
                }
            }
        }
    }
    let (w, h) = (w as u32, h as u32);
    let photometric = d
        .find_tag_unsigned::<u32>(Tag::PhotometricInterpretation)
        .map_err(err)?;
    Ok(match (samples, photometric) {
        (3, Some(2)) => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, out).ok_or("buffer")?),
        (4, Some(2)) => {
            DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, out).ok_or("buffer")?)
        }
        (4, Some(5)) => DynamicImage::ImageRgb8(cmyk_to_rgb(w, h, &out)),
        (1, Some(1)) => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, out).ok_or("buffer")?)
        }
        (n, p) => return Err(format!("{n} separate planes with photometric {p:?}")),
    })
}

/// 8-bit CIELab (L* scaled to 0-255, a* and b* signed) to 8-bit sRGB, as Pillow converts its LAB
/// mode: LittleCMS from its D50 Lab profile to its sRGB profile, whose colorants are sRGB's
/// primaries adapted to D50 (Bradford). Computed in floating point here; LittleCMS interpolates
/// a table, so the two differ by up to 3 levels (mean 0.05: `tests/tiff.rs`).
fn lab_to_srgb(l: u8, a: i8, b: i8) -> [u8; 3] {
    const D50: [f64; 3] = [0.9642, 1.0, 0.8249];
    const XYZ_TO_RGB: [[f64; 3]; 3] = [
        [3.1338561, -1.6168667, -0.4906146],
        [-0.9787684, 1.9161415, 0.0334540],
        [0.0719453, -0.2289914, 1.4052427],
    ];
    let fy = (l as f64 * 100.0 / 255.0 + 16.0) / 116.0;
    let f = [fy + a as f64 / 500.0, fy, fy - b as f64 / 200.0];
    let inv = |t: f64| {
        const D: f64 = 6.0 / 29.0;
        if t > D {
            t * t * t
        } else {
            3.0 * D * D * (t - 4.0 / 29.0)
        }
    };
    let xyz = [inv(f[0]) * D50[0], inv(f[1]) * D50[1], inv(f[2]) * D50[2]];
    let mut out = [0u8; 3];
    for (o, row) in out.iter_mut().zip(XYZ_TO_RGB) {
        let v = (row[0] * xyz[0] + row[1] * xyz[1] + row[2] * xyz[2]).clamp(0.0, 1.0);
        let v = if v <= 0.0031308 {
            12.92 * v
        } else {
            1.055 * v.powf(1.0 / 2.4) - 0.055
        };
        *o = (v * 255.0).round() as u8;
    }
    out
}

/// The strips' or tiles' byte ranges of the first image.
fn chunk_ranges(
    bytes: &[u8],
    d: &mut Decoder<Cursor<&[u8]>>,
) -> std::result::Result<Vec<std::ops::Range<usize>>, String> {
    let tiled = d.find_tag(Tag::TileWidth).map_err(err)?.is_some();
    let (offsets, counts) = if tiled {
        (Tag::TileOffsets, Tag::TileByteCounts)
    } else {
        (Tag::StripOffsets, Tag::StripByteCounts)
    };
    let offsets = d.get_tag_u64_vec(offsets).map_err(err)?;
    let counts = d.get_tag_u64_vec(counts).map_err(err)?;
    if offsets.len() != counts.len() {
        return Err("malformed strip or tile layout".into());
    }
    offsets
        .iter()
        .zip(&counts)
        .map(|(&o, &n)| {
            let o = usize::try_from(o).ok()?;
            let end = o.checked_add(usize::try_from(n).ok()?)?;
            (end <= bytes.len()).then_some(o..end)
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "a strip or tile lies outside the file (truncated?)".into())
}

/// A file whose bits are stored least significant first (FillOrder 2, which the `tiff` crate
/// ignores): a copy with every strip's or tile's bytes bit-reversed and the tag set to 1, as
/// libtiff reverses them before decoding, to be decoded as any other file. `None` for the
/// usual order.
pub(super) fn msb_first_copy(bytes: &[u8]) -> Option<std::result::Result<Vec<u8>, String>> {
    let mut d = Decoder::new(Cursor::new(bytes)).ok()?;
    let order = d.find_tag_unsigned::<u32>(Tag::FillOrder).ok().flatten();
    (order == Some(2)).then(|| msb_first(bytes, &mut d).map_err(|e| format!("TIFF: {e}")))
}

fn msb_first(bytes: &[u8], d: &mut Decoder<Cursor<&[u8]>>) -> std::result::Result<Vec<u8>, String> {
    let ranges = chunk_ranges(bytes, d)?;
    let mut copy = bytes.to_vec();
    for r in ranges {
        for b in &mut copy[r] {
            *b = b.reverse_bits();
        }
    }
    set_short(&mut copy, 266, 1).ok_or("no FillOrder tag to set")?;
    Ok(copy)
}

/// CCITT Group 3 fax, one-dimensional (T4Options bit 0 clear), which the `tiff` crate lacks:
/// each strip through the `fax` crate (the one it decodes Group 4 with). As in libtiff, a white
/// run is 0 bits, a black run 1 bits, and the photometric tag says which of those is white.
fn fax3(bytes: &[u8], d: &mut Decoder<Cursor<&[u8]>>, photometric: u32) -> Outcome {
    let (w, h) = size(d)?;
    let options = d
        .find_tag_unsigned::<u32>(Tag::Unknown(292))
        .map_err(err)?
        .unwrap_or(0);
    if options & 1 != 0 {
        return Err(
            "two-dimensional Group 3 fax is not supported (convert it, e.g. `tiffcp -c g4`)".into(),
        );
    }
    let width = u16::try_from(w).map_err(|_| format!("a fax {w} pixels wide"))?;
    let rows = d
        .find_tag_unsigned::<u32>(Tag::RowsPerStrip)
        .map_err(err)?
        .map_or(h, |r| (r as usize).min(h));
    let (one, zero) = if photometric == 0 {
        (0u8, 255u8)
    } else {
        (255, 0)
    };
    let mut grey = Vec::with_capacity(w * h);
    for range in chunk_ranges(bytes, d)? {
        let want = rows.min(h - grey.len() / w);
        let mut lines = 0;
        // An EOL after the strip: the decoder emits a row when the next EOL is found, and
        // libtiff writes none after the last one.
        let strip = bytes[range].iter().copied().chain([0x00, 0x01]);
        fax::decoder::decode_g3(strip, |transitions| {
            if lines < want {
                grey.extend(fax::decoder::pels(transitions, width).map(|c| match c {
                    fax::Color::Black => one,
                    fax::Color::White => zero,
                }));
                lines += 1;
            }
        });
        if lines < want {
            return Err(format!(
                "a fax strip with {lines} of its {want} rows (damaged?)"
            ));
        }
        if grey.len() >= w * h {
            break;
        }
    }
    if grey.len() < w * h {
        return Err("truncated fax data".into());
    }
    grey.truncate(w * h);
    let grey = image::GrayImage::from_raw(w as u32, h as u32, grey).ok_or("grey buffer")?;
    Ok(DynamicImage::ImageLuma8(grey))
}
