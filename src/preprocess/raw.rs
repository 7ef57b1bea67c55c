//! Camera RAW files, through the JPEG preview the camera embeds in them.
//!
//! Every current camera stores, beside the sensor data, a JPEG of the shot as the camera
//! rendered it (its picture style, white balance, lens corrections): usually full size or close
//! to it. That rendering is what the photographer saw and what a search should see, and reading
//! it costs a fraction of a millisecond, where developing sensor data costs a second or more per
//! photo. So a RAW is indexed through its largest embedded JPEG, when that is at least
//! [`MIN_PREVIEW_SIDE`] pixels on its short side (enough for every CLIP input in use, 336 px at
//! most). A RAW without one is developed by LibRaw with the `libraw` feature (`libraw.rs`), and
//! otherwise reported with what to do.
//!
//! Where the previews are: TIFF-based RAWs (DNG, CR2, NEF, NRW, ARW, SRF, SR2, PEF, ORF, RW2,
//! SRW, 3FR, IIQ, ERF, KDC, DCR, MOS) keep them as IFDs whose compression is JPEG, or behind the
//! `JPEGInterchangeFormat` tags, in IFD0, the IFD chain or SubIFDs (Panasonic: tag 0x2E); Fujifilm
//! RAF points to one from its header; Canon CR3 keeps one in its `PRVW` box. The orientation is
//! the container's (IFD0's Orientation tag), unless the preview carries its own.
//!
//! A hand-written reader, not a RAW library: the one pure-Rust RAW decoder (rawler) is LGPL,
//! which a statically linked binary cannot honour, and reading previews needs only
//! bounds-checked walking of TIFF directories. LibRaw (LGPL too) is linked dynamically.

use std::path::Path;

use image::metadata::Orientation;
use image::RgbImage;

use crate::error::Result;

/// Shortest side a preview must have to stand in for the photo.
pub const MIN_PREVIEW_SIDE: u32 = 336;

/// Most IFDs followed in one file (malformed files can chain them in loops).
const MAX_IFDS: usize = 64;

struct Tiff<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Tiff<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
}

/// One IFD entry: tag, type, count, and where its value is (inline or at an offset).
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value_at: usize,
}

fn type_size(kind: u16) -> usize {
    match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 => 8,
        _ => 0,
    }
}

impl Tiff<'_> {
    fn entries(&self, ifd: usize) -> Option<Vec<Entry>> {
        let n = self.u16(ifd)? as usize;
        (0..n)
            .map(|i| {
                let at = ifd + 2 + 12 * i;
                let (tag, kind, count) = (self.u16(at)?, self.u16(at + 2)?, self.u32(at + 4)?);
                let size = type_size(kind).checked_mul(count as usize)?;
                let value_at = if size <= 4 {
                    at + 8
                } else {
                    self.u32(at + 8)? as usize
                };
                Some(Entry {
                    tag,
                    kind,
                    count,
                    value_at,
                })
            })
            .collect()
    }

    /// The first value of an entry as an integer (SHORT or LONG).
    fn value(&self, e: &Entry) -> Option<u32> {
        match e.kind {
            3 => self.u16(e.value_at).map(u32::from),
            4 | 13 => self.u32(e.value_at),
            _ => None,
        }
    }

    fn values(&self, e: &Entry) -> Vec<u32> {
        (0..e.count.min(64) as usize)
            .filter_map(|i| match e.kind {
                3 => self.u16(e.value_at + 2 * i).map(u32::from),
                4 | 13 => self.u32(e.value_at + 4 * i),
                _ => None,
            })
            .collect()
    }
}

/// IFD0's integer tags of a TIFF (the first value of each), for explaining why a TIFF cannot
/// be decoded.
pub(crate) fn tiff_ifd0(bytes: &[u8]) -> Option<std::collections::HashMap<u16, u32>> {
    Some(
        tiff_ifd0_entries(bytes)?
            .into_iter()
            .filter_map(|(tag, v)| Some((tag, *v.first()?)))
            .collect(),
    )
}

/// IFD0's integer tags of a TIFF with all their values (at most 64 each).
pub(crate) fn tiff_ifd0_entries(bytes: &[u8]) -> Option<std::collections::HashMap<u16, Vec<u32>>> {
    let little = bytes.starts_with(b"II");
    if !little && !bytes.starts_with(b"MM") {
        return None;
    }
    let t = Tiff { bytes, little };
    let ifd = t.u32(4)? as usize;
    Some(
        t.entries(ifd)?
            .iter()
            .map(|e| (e.tag, t.values(e)))
            .filter(|(_, v)| !v.is_empty())
            .collect(),
    )
}

/// Every JPEG preview a RAW embeds (for their EXIF, where the container's is not plain TIFF).
pub(crate) fn preview_jpegs(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = tiff_previews(bytes).0;
    out.sort_by_key(|j| std::cmp::Reverse(j.len()));
    out.extend(raf_preview(bytes));
    out.extend(cr3_preview(bytes));
    out
}

/// Every JPEG a TIFF-based RAW embeds, and IFD0's orientation.
fn tiff_previews(bytes: &[u8]) -> (Vec<&[u8]>, Option<u16>) {
    let little = bytes.starts_with(b"II");
    let t = Tiff { bytes, little };
    let mut out = Vec::new();
    let mut orientation = None;
    let Some(first) = t.u32(4) else {
        return (out, None);
    };
    let mut queue = vec![first as usize];
    let mut seen = std::collections::HashSet::new();
    while let Some(ifd) = queue.pop() {
        if ifd < 8 || !seen.insert(ifd) || seen.len() > MAX_IFDS {
            continue;
        }
        let Some(entries) = t.entries(ifd) else {
            continue;
        };
        let find = |tag: u16| entries.iter().find(|e| e.tag == tag);
        if seen.len() == 1 {
            orientation = find(0x0112).and_then(|e| t.value(e)).map(|v| v as u16);
        }
        let slice = |start: Option<u32>, len: Option<u32>| {
            let (s, l) = (start? as usize, len? as usize);
            bytes.get(s..s.checked_add(l)?)
        };
        // JPEGInterchangeFormat / Length.
        if let Some(j) = slice(
            find(0x0201).and_then(|e| t.value(e)),
            find(0x0202).and_then(|e| t.value(e)),
        ) {
            out.push(j);
        }
        // An IFD whose single strip is a JPEG (compression 6 or 7).
        if matches!(find(0x0103).and_then(|e| t.value(e)), Some(6 | 7)) {
            if let Some(j) = slice(
                find(0x0111).and_then(|e| t.value(e)),
                find(0x0117).and_then(|e| t.value(e)),
            ) {
                out.push(j);
            }
        }
        // Panasonic's JpgFromRaw: the JPEG is the value itself.
        if let Some(e) = find(0x002E).filter(|e| e.kind == 7) {
            if let Some(j) = bytes.get(e.value_at..e.value_at.saturating_add(e.count as usize)) {
                out.push(j);
            }
        }
        // SubIFDs, EXIF IFD, next IFD.
        for tag in [0x014A, 0x8769] {
            if let Some(e) = find(tag) {
                queue.extend(t.values(e).into_iter().map(|v| v as usize));
            }
        }
        let next = ifd + 2 + 12 * entries.len();
        if let Some(n) = t.u32(next).filter(|&n| n != 0) {
            queue.push(n as usize);
        }
    }
    out.retain(|j| j.starts_with(&[0xFF, 0xD8]));
    (out, orientation)
}

/// Fujifilm RAF: the header points to a JPEG (offset and length at bytes 84 and 88).
fn raf_preview(bytes: &[u8]) -> Option<&[u8]> {
    let be = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let (start, len) = (be(84)? as usize, be(88)? as usize);
    bytes
        .get(start..start.checked_add(len)?)
        .filter(|j| j.starts_with(&[0xFF, 0xD8]))
}

/// Canon CR3: the JPEG of the `PRVW` box (inside Canon's preview `uuid` box).
fn cr3_preview(bytes: &[u8]) -> Option<&[u8]> {
    let at = bytes.windows(4).position(|w| w == b"PRVW")?;
    let size = u32::from_be_bytes(bytes.get(at - 4..at)?.try_into().ok()?) as usize;
    let body = bytes.get(at + 4..(at - 4).checked_add(size)?)?;
    let start = body.windows(2).position(|w| w == [0xFF, 0xD8])?;
    Some(&body[start..])
}

/// A JPEG preview's pixel size, and whether it carries an EXIF orientation of its own: one
/// header read.
#[derive(Clone, Copy)]
struct PreviewInfo {
    width: u32,
    height: u32,
    oriented: bool,
}

fn preview_info(jpeg: &[u8]) -> Option<PreviewInfo> {
    let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(jpeg));
    d.read_info().ok()?;
    let info = d.info()?;
    let oriented = d
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .is_some_and(|o| o != Orientation::NoTransforms);
    Some(PreviewInfo {
        width: info.width as u32,
        height: info.height as u32,
        oriented,
    })
}

/// Sensor data developed by LibRaw (the `libraw` feature), for a RAW without a usable preview.
#[cfg(feature = "libraw")]
fn develop(path: &Path, bytes: &[u8], kind: &str, _why: &str) -> Result<RgbImage> {
    super::libraw::develop(path, bytes, kind)
}

#[cfg(not(feature = "libraw"))]
fn develop(path: &Path, _bytes: &[u8], kind: &str, why: &str) -> Result<RgbImage> {
    Err(crate::Error::UnsupportedFormat {
        path: path.to_path_buf(),
        reason: format!(
            "camera RAW ({kind}): {why}, and this build does not develop sensor data (build \
             clipsearch with `--features libraw`, which needs `apt-get install libraw-dev`; or \
             index the JPEG or HEIC the camera wrote beside it)"
        ),
    })
}

/// What a RAW's picture is decoded from.
pub(super) enum Source<'a> {
    /// Its largest embedded JPEG, large enough to stand in for the photo, and the container's
    /// orientation to apply once it is decoded (`None` when the JPEG carries its own, which its
    /// decoder applies).
    Preview {
        jpeg: &'a [u8],
        orientation: Option<Orientation>,
    },
    /// Its sensor data, developed (no usable preview).
    Developed(RgbImage),
}

/// Finds what a RAW is decoded from. The preview's JPEG is decoded by the caller
/// ([`super::decode`], which dispatched here): this module reads containers, not JPEGs.
pub(super) fn source<'a>(path: &Path, bytes: &'a [u8], kind: &str) -> Result<Source<'a>> {
    let (previews, container_orientation) = if bytes.starts_with(b"FUJIFILMCCD-RAW") {
        (raf_preview(bytes).into_iter().collect(), None)
    } else if bytes.get(4..8) == Some(b"ftyp") {
        (cr3_preview(bytes).into_iter().collect(), None)
    } else {
        // TIFF proper, and the vendor variants that only change the magic number (ORF, RW2).
        tiff_previews(bytes)
    };
    let best = previews
        .into_iter()
        .filter_map(|j| preview_info(j).map(|i| (j, i)))
        .max_by_key(|(_, i)| i.width as u64 * i.height as u64);
    let Some((jpeg, info)) = best.filter(|(_, i)| i.width.min(i.height) >= MIN_PREVIEW_SIDE) else {
        let what = match best {
            None => "it embeds no JPEG preview".to_string(),
            Some((_, i)) => format!(
                "its largest embedded preview is {}x{}, under {MIN_PREVIEW_SIDE} px",
                i.width, i.height
            ),
        };
        return develop(path, bytes, kind, &what).map(Source::Developed);
    };
    // A preview with its own orientation is turned by the JPEG decoder; else the container's.
    let orientation = if info.oriented {
        None
    } else {
        container_orientation.and_then(|o| Orientation::from_exif(o as u8))
    };
    Ok(Source::Preview { jpeg, orientation })
}
