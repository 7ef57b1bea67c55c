//! Reading a photo's metadata from its bytes: EXIF through kamadak-exif (JPEG, PNG's eXIf,
//! WebP, TIFF and TIFF-based RAW, HEIC/AVIF), JPEG XL's `Exif` box, a RAW's embedded preview
//! when its container is not plain TIFF, and XMP's dates as a fallback.

use std::io::Cursor;
use std::path::Path;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};
use exif::{In, Tag, Value};

use super::photo::{Gps, PhotoMeta, Taken, TimeSource};
use super::place;
use crate::preprocess::formats::{sniff, Format};

/// What was read, and what was wrong with it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadOutcome {
    pub meta: PhotoMeta,
    /// Set when the file's metadata is malformed (what could be read is kept).
    pub warning: Option<String>,
}

/// Reads the metadata of a file whose content is `bytes`. `mtime_ns` stands in for the
/// capture time when the file records none. Never fails: damage is a warning, and a parser's
/// panic is contained like a decoder's.
pub fn read(path: &Path, bytes: &[u8], mtime_ns: i64) -> ReadOutcome {
    let format = sniff(&bytes[..bytes.len().min(4096)], path);
    let mut out = crate::preprocess::decode::contain_panics(path, || Ok(read_inner(bytes, format)))
        .unwrap_or_else(|e| ReadOutcome {
            meta: PhotoMeta::default(),
            warning: Some(format!("metadata: {e}")),
        });
    out.meta.format = format.map(|f| f.label().to_string());
    if out.meta.taken.is_none() {
        out.meta.taken = from_mtime(mtime_ns);
    }
    if let Some(g) = out.meta.gps {
        out.meta.place = place::locate(g.lat, g.lon);
    }
    out
}

/// What [`read_file`] reads of a JPEG: its metadata segments all come before the image data,
/// and this covers EXIF (64 KiB at most), XMP and an ICC profile.
const JPEG_HEAD: usize = 256 << 10;

/// Reads the metadata of a file on disk without decoding it (for indexes built before
/// metadata was recorded): a JPEG's head only, other formats whole (their metadata can sit
/// anywhere: WebP's EXIF chunk at the end, HEIF's wherever its item location says).
pub fn read_file(path: &Path, mtime_ns: i64) -> std::io::Result<ReadOutcome> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(JPEG_HEAD);
    (&mut f).take(JPEG_HEAD as u64).read_to_end(&mut bytes)?;
    if !bytes.starts_with(&[0xFF, 0xD8]) && bytes.len() == JPEG_HEAD {
        f.read_to_end(&mut bytes)?;
    }
    Ok(read(path, &bytes, mtime_ns))
}

fn read_inner(bytes: &[u8], format: Option<Format>) -> ReadOutcome {
    let mut out = ReadOutcome::default();
    let mut warn = |w: String| {
        out.warning.get_or_insert(w);
    };
    let exif = match format {
        Some(Format::JpegXl) => jxl_exif(bytes).and_then(|raw| parse_raw(raw, &mut warn)),
        Some(Format::Raw(_)) => {
            parse_container(bytes, &mut |_| {}).or_else(|| raw_preview_exif(bytes, &mut warn))
        }
        _ => parse_container(bytes, &mut warn),
    };
    if let Some(exif) = &exif {
        fill_from_exif(exif, &mut out.meta, &mut warn);
    }
    if out.meta.taken.is_none() {
        out.meta.taken = xmp_date(bytes);
    }
    out
}

fn parse_container(bytes: &[u8], warn: &mut dyn FnMut(String)) -> Option<exif::Exif> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    let result = reader.read_from_container(&mut Cursor::new(bytes));
    settle(result, warn)
}

fn parse_raw(raw: Vec<u8>, warn: &mut dyn FnMut(String)) -> Option<exif::Exif> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    settle(reader.read_raw(raw), warn)
}

fn settle(
    result: Result<exif::Exif, exif::Error>,
    warn: &mut dyn FnMut(String),
) -> Option<exif::Exif> {
    let partial = result.or_else(|e| {
        e.distill_partial_result(|errors| {
            if let Some(first) = errors.first() {
                warn(format!("damaged EXIF ({first}); kept what could be read"));
            }
        })
    });
    match partial {
        Ok(e) => Some(e),
        // No metadata at all, or a container kamadak does not know: nothing to say.
        Err(exif::Error::NotFound(_)) => None,
        Err(exif::Error::InvalidFormat(why))
            if why.contains("Unknown image format") || why.contains("No compatible brand") =>
        {
            None
        }
        Err(e) => {
            warn(format!("unreadable EXIF: {e}"));
            None
        }
    }
}

/// A RAW whose container is not plain TIFF (ORF, RW2, RAF, ...): its previews are JPEGs that
/// carry the camera's EXIF.
fn raw_preview_exif(bytes: &[u8], warn: &mut dyn FnMut(String)) -> Option<exif::Exif> {
    crate::preprocess::raw::preview_jpegs(bytes)
        .into_iter()
        .find_map(|jpeg| parse_container(jpeg, warn))
}

/// Largest EXIF block taken from a compressed box (EXIF is at most 64 KiB in JPEG; the cap
/// keeps a Brotli bomb from growing without bound).
const MAX_EXIF: u64 = 1 << 20;

/// The TIFF data of a JPEG XL container's `Exif` box, plain or Brotli-compressed (`brob`, as
/// cjxl writes it when it recompresses a JPEG).
fn jxl_exif(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as u64;
        let kind = &bytes[at + 4..at + 8];
        let (header, size) = match size {
            1 => (
                16usize,
                u64::from_be_bytes(bytes.get(at + 8..at + 16)?.try_into().ok()?),
            ),
            0 => (8, (bytes.len() - at) as u64),
            s => (8, s),
        };
        let end = at
            .checked_add(usize::try_from(size).ok()?)?
            .min(bytes.len());
        if size < header as u64 {
            return None;
        }
        let body = bytes.get(at + header..end)?;
        let exif = match kind {
            b"Exif" => Some(body.to_vec()),
            b"brob" if body.get(..4) == Some(b"Exif") => {
                use std::io::Read;
                let mut out = Vec::new();
                brotli_decompressor::Decompressor::new(&body[4..], 4096)
                    .take(MAX_EXIF)
                    .read_to_end(&mut out)
                    .ok()?;
                Some(out)
            }
            _ => None,
        };
        if let Some(body) = exif {
            // A 4-byte offset to the TIFF header comes first.
            let skip = 4 + u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
            return body.get(skip..).map(<[u8]>::to_vec);
        }
        at = end;
    }
    None
}

fn ascii(exif: &exif::Exif, tag: Tag) -> Option<String> {
    let f = exif.get_field(tag, In::PRIMARY)?;
    match &f.value {
        Value::Ascii(parts) => {
            let s = String::from_utf8_lossy(parts.first()?)
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string();
            (!s.is_empty()).then_some(s)
        }
        _ => None,
    }
}

fn ascii_bytes(exif: &exif::Exif, tag: Tag) -> Option<Vec<u8>> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(parts) => parts.first().cloned(),
        _ => None,
    }
}

fn fill_from_exif(exif: &exif::Exif, meta: &mut PhotoMeta, warn: &mut dyn FnMut(String)) {
    let times = [
        (
            Tag::DateTimeOriginal,
            Tag::OffsetTimeOriginal,
            Tag::SubSecTimeOriginal,
            TimeSource::DateTimeOriginal,
        ),
        (
            Tag::DateTimeDigitized,
            Tag::OffsetTimeDigitized,
            Tag::SubSecTimeDigitized,
            TimeSource::DateTimeDigitized,
        ),
        (
            Tag::DateTime,
            Tag::OffsetTime,
            Tag::SubSecTime,
            TimeSource::DateTime,
        ),
    ];
    for (tag, offset, subsec, source) in times {
        let Some(raw) = ascii_bytes(exif, tag) else {
            continue;
        };
        match exif::DateTime::from_ascii(&raw) {
            Ok(mut dt) => {
                if let Some(s) = ascii_bytes(exif, subsec) {
                    let _ = dt.parse_subsec(&s);
                }
                if let Some(o) = ascii_bytes(exif, offset) {
                    let _ = dt.parse_offset(&o);
                }
                let date = NaiveDate::from_ymd_opt(dt.year as i32, dt.month as u32, dt.day as u32);
                let ms = dt.nanosecond.unwrap_or(0) / 1_000_000;
                match date.and_then(|d| {
                    d.and_hms_milli_opt(dt.hour as u32, dt.minute as u32, dt.second as u32, ms)
                }) {
                    Some(local) => {
                        meta.taken = Some(Taken {
                            local,
                            offset_minutes: dt.offset.filter(|o| o.abs() <= 18 * 60),
                            source,
                        });
                        break;
                    }
                    None => warn(format!(
                        "impossible {tag} `{}`",
                        String::from_utf8_lossy(&raw).trim_end_matches('\0')
                    )),
                }
            }
            // "0000:00:00 00:00:00" and blanks mean "unknown", and are common.
            Err(exif::Error::BlankValue(_)) => {}
            Err(e) => warn(format!("unreadable {tag}: {e}")),
        }
    }
    meta.gps = gps(exif);
    meta.make = ascii(exif, Tag::Make);
    meta.model = ascii(exif, Tag::Model);
    meta.lens = ascii(exif, Tag::LensModel);
    meta.orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|o| (1..=8).contains(o))
        .map(|o| o as u8);
}

fn degrees(exif: &exif::Exif, tag: Tag, reference: Tag, negative: u8) -> Option<f64> {
    let Value::Rational(parts) = &exif.get_field(tag, In::PRIMARY)?.value else {
        return None;
    };
    let mut value = 0.0;
    for (i, r) in parts.iter().take(3).enumerate() {
        if r.denom == 0 {
            return None;
        }
        value += r.to_f64() / [1.0, 60.0, 3600.0][i];
    }
    let sign = match ascii_bytes(exif, reference)?.first() {
        Some(c) if c.to_ascii_uppercase() == negative => -1.0,
        Some(_) => 1.0,
        None => return None,
    };
    value.is_finite().then_some(sign * value)
}

fn gps(exif: &exif::Exif) -> Option<Gps> {
    let lat = degrees(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S')?;
    let lon = degrees(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W')?;
    // Exactly (0, 0) is what receivers without a fix write, not a photo in the Gulf of Guinea.
    if lat.abs() > 90.0 || lon.abs() > 180.0 || (lat == 0.0 && lon == 0.0) {
        return None;
    }
    let alt = exif
        .get_field(Tag::GPSAltitude, In::PRIMARY)
        .and_then(|f| match &f.value {
            Value::Rational(r) if r.first().is_some_and(|r| r.denom != 0) => Some(r[0].to_f64()),
            _ => None,
        })
        .map(|a| {
            let below = exif
                .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
                == Some(1);
            if below {
                -a
            } else {
                a
            }
        });
    Some(Gps { lat, lon, alt })
}

/// A date in an XMP packet, best property first, as an attribute or an element.
fn xmp_date(bytes: &[u8]) -> Option<Taken> {
    let start = find(bytes, b"<x:xmpmeta")?;
    let end = find(&bytes[start..], b"</x:xmpmeta>").map_or(bytes.len(), |e| start + e);
    let xmp = std::str::from_utf8(&bytes[start..end]).ok()?;
    for name in [
        "exif:DateTimeOriginal",
        "xmp:CreateDate",
        "photoshop:DateCreated",
    ] {
        let value = xmp_attribute(xmp, name).or_else(|| xmp_element(xmp, name));
        if let Some(t) = value.and_then(|v| parse_xmp_date(v.trim())) {
            return Some(t);
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn xmp_attribute<'a>(xmp: &'a str, name: &str) -> Option<&'a str> {
    let at = xmp.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&xmp[at..at + xmp[at..].find('"')?])
}

fn xmp_element<'a>(xmp: &'a str, name: &str) -> Option<&'a str> {
    let at = xmp.find(&format!("<{name}>"))? + name.len() + 2;
    Some(&xmp[at..at + xmp[at..].find('<')?])
}

/// XMP dates: `2023-06-14T10:03:12.25+01:00`, `...Z`, without seconds or zone, or a bare day.
fn parse_xmp_date(v: &str) -> Option<Taken> {
    let xmp = |local: NaiveDateTime, offset_minutes| {
        Some(Taken {
            local,
            offset_minutes,
            source: TimeSource::Xmp,
        })
    };
    if let Ok(dt) = DateTime::parse_from_rfc3339(v) {
        return xmp(
            dt.naive_local(),
            Some((dt.offset().local_minus_utc() / 60) as i16),
        );
    }
    for f in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(v, f) {
            return xmp(
                dt.naive_local(),
                Some((dt.offset().local_minus_utc() / 60) as i16),
            );
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(v, f) {
            return xmp(local, None);
        }
    }
    let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?;
    xmp(day.and_hms_opt(0, 0, 0)?, None)
}

/// The modification time as wall-clock time in this machine's zone (where the file most likely
/// was copied from the camera): a guess, marked as one.
fn from_mtime(mtime_ns: i64) -> Option<Taken> {
    if mtime_ns <= 0 {
        return None;
    }
    let t = Local.timestamp_nanos(mtime_ns);
    let millis = t.timestamp_subsec_millis();
    let local = t.naive_local().with_nanosecond_ms(millis)?;
    Some(Taken {
        local,
        offset_minutes: Some((t.offset().local_minus_utc() / 60) as i16),
        source: TimeSource::FileModified,
    })
}

trait Millis {
    fn with_nanosecond_ms(self, ms: u32) -> Option<NaiveDateTime>;
}

impl Millis for NaiveDateTime {
    fn with_nanosecond_ms(self, ms: u32) -> Option<NaiveDateTime> {
        chrono::Timelike::with_nanosecond(&self, ms * 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmp_dates() {
        let t = parse_xmp_date("2021-03-04T05:06:07.5+02:00").unwrap();
        assert_eq!(t.iso(), "2021-03-04T05:06:07.500+02:00");
        let t = parse_xmp_date("2021-03-04T05:06:07Z").unwrap();
        assert_eq!(t.offset_minutes, Some(0));
        let t = parse_xmp_date("2021-03-04T05:06:07").unwrap();
        assert_eq!(
            (t.iso().as_str(), t.offset_minutes),
            ("2021-03-04T05:06:07", None)
        );
        assert!(parse_xmp_date("2021-03-04").is_some());
        assert!(parse_xmp_date("yesterday").is_none());
        let packet = b"..<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:Description \
            xmp:CreateDate=\"2019-08-01T12:00:00\"/></x:xmpmeta>..";
        assert_eq!(xmp_date(packet).unwrap().iso(), "2019-08-01T12:00:00");
    }

    #[test]
    fn nothing_to_read_is_no_warning() {
        let out = read(Path::new("x.png"), b"not an image at all", 0);
        assert_eq!(out.warning, None);
        assert_eq!(out.meta, PhotoMeta::default());
    }

    #[test]
    fn mtime_is_a_marked_guess() {
        let out = read(Path::new("x.bin"), b"", 1_600_000_000_000_000_000);
        let t = out.meta.taken.unwrap();
        assert_eq!(t.source, TimeSource::FileModified);
        let back = Local
            .from_local_datetime(&t.local)
            .earliest()
            .unwrap()
            .timestamp();
        assert_eq!(back, 1_600_000_000);
    }
}
