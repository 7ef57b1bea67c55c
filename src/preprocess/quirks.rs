//! Variants of common formats that the `image` crate refuses but a few lines read, as Pillow
//! does: grey TIFF strips of 2 or 4 bits a sample, BMPs with an OS/2 2.x header or a plane
//! count other than 1, GIFs without a colour table. (JPEGs with extraneous bytes between
//! segments are let through by `decode::jpeg_is_complete`, as libjpeg skips them.)

use image::{GrayImage, RgbImage};

use super::raw::tiff_ifd0_entries;

/// Uncompressed 2- or 4-bit grey TIFF (strips, BlackIsZero or WhiteIsZero): None when the file
/// is anything else.
pub(super) fn low_bit_grey_tiff(bytes: &[u8]) -> Option<std::result::Result<RgbImage, String>> {
    let ifd = tiff_ifd0_entries(bytes)?;
    let one = |tag: u16| ifd.get(&tag).and_then(|v| v.first().copied());
    let bits = one(258)?;
    if !matches!(bits, 2 | 4) || one(277).unwrap_or(1) != 1 {
        return None;
    }
    if one(259).unwrap_or(1) != 1 {
        return Some(Err(format!(
            "{bits}-bit grey TIFF with compression {} is not supported (convert it, e.g. \
             `tiffcp -c none`)",
            one(259).unwrap_or(0)
        )));
    }
    let (w, h) = (one(256)? as usize, one(257)? as usize);
    if w == 0 || h == 0 || (w as u64 * h as u64) > super::rgb::MAX_PIXELS {
        return Some(Err(format!("{w}x{h} is not a size to decode")));
    }
    let invert = one(262) == Some(0);
    let row_bytes = (w * bits as usize).div_ceil(8);
    let mut packed = Vec::new();
    let (offsets, counts) = (ifd.get(&273)?, ifd.get(&279)?);
    for (&o, &n) in offsets.iter().zip(counts) {
        packed.extend_from_slice(bytes.get(o as usize..(o as usize).checked_add(n as usize)?)?);
    }
    if packed.len() < row_bytes * h {
        return Some(Err("truncated TIFF strips".into()));
    }
    let max = (1u32 << bits) - 1;
    let mut grey = GrayImage::new(w as u32, h as u32);
    for y in 0..h {
        let row = &packed[y * row_bytes..(y + 1) * row_bytes];
        for x in 0..w {
            let bit = x * bits as usize;
            let v = (row[bit / 8] >> (8 - bits as usize - bit % 8)) as u32 & max;
            let v = if invert { max - v } else { v };
            grey.put_pixel(x as u32, y as u32, image::Luma([(v * 255 / max) as u8]));
        }
    }
    Some(Ok(image::DynamicImage::ImageLuma8(grey).to_rgb8()))
}

/// A BMP with an OS/2 2.x header (16 to 64 bytes) rewritten with a Windows BITMAPINFOHEADER,
/// which shares its first 40 bytes' layout; None for any other BMP.
pub(super) fn os2_bmp_as_windows(bytes: &[u8]) -> Option<Vec<u8>> {
    let header = u32::from_le_bytes(bytes.get(14..18)?.try_into().ok()?) as usize;
    // 12 (OS/2 1.x) and 40+ Windows sizes are read as they are; 16..64 other than 40 is OS/2 2.x.
    if !(16..=64).contains(&header) || matches!(header, 40 | 52 | 56) {
        return None;
    }
    let offset = u32::from_le_bytes(bytes.get(10..14)?.try_into().ok()?) as usize;
    let mut info = [0u8; 40];
    let have = header.min(40);
    info[..have].copy_from_slice(bytes.get(14..14 + have)?);
    info[..4].copy_from_slice(&40u32.to_le_bytes());
    // OS/2 2.x compression 3 is Huffman 1D, 4 RLE24: not Windows' bitfields or JPEG.
    let compression = u32::from_le_bytes(info[16..20].try_into().ok()?);
    if compression > 2 {
        return None;
    }
    let mut out = bytes[..14].to_vec();
    let shift = header as i64 - 40;
    let new_offset = (offset as i64 - shift) as u32;
    out[10..14].copy_from_slice(&new_offset.to_le_bytes());
    out.extend_from_slice(&info);
    out.extend_from_slice(bytes.get(14 + header..)?);
    let size = out.len() as u32;
    out[2..6].copy_from_slice(&size.to_le_bytes());
    Some(out)
}

/// A BMP whose header gives a plane count other than 1, which Pillow ignores and the `image`
/// crate refuses ("More than one plane"): a copy that says 1. None for any other BMP.
pub(super) fn bmp_planes_as_one(bytes: &[u8]) -> Option<Vec<u8>> {
    let header = u32::from_le_bytes(bytes.get(14..18)?.try_into().ok()?);
    // OS/2 1.x headers have 16-bit sizes, so the field comes 4 bytes earlier.
    let at = if header == 12 { 22 } else { 26 };
    let planes = u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?);
    (planes != 1).then(|| {
        let mut copy = bytes.to_vec();
        copy[at..at + 2].copy_from_slice(&1u16.to_le_bytes());
        copy
    })
}

/// A GIF without a global colour table, given one of 256 greys (index i is grey level i), as
/// Pillow reads such files; frames with their own table keep it. None for any other GIF.
pub(super) fn gif_with_grey_palette(bytes: &[u8]) -> Option<Vec<u8>> {
    if !(bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) || bytes.len() < 13 {
        return None;
    }
    let packed = bytes[10];
    if packed & 0x80 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + 768);
    out.extend_from_slice(&bytes[..13]);
    out[10] = packed | 0x80 | 0x07;
    for i in 0..=255u8 {
        out.extend_from_slice(&[i, i, i]);
    }
    out.extend_from_slice(&bytes[13..]);
    Some(out)
}
