//! Which files are images, and which of them this build can decode.
//!
//! Formats are recognised by content, never trusted from the name, with one exception: camera
//! RAW files are TIFF containers (or vendor variants of it), so a RAW is a file with a RAW
//! extension and a RAW or TIFF signature. A format this build cannot decode is still an image:
//! it is reported with what would read it ("HEIC: this build has no HEIC support ..."), never
//! as "not an image", and never recorded as a permanent failure, so a build that reads it picks
//! the file up on the next run.
//!
//! | format | decoded by | build |
//! |---|---|---|
//! | JPEG | libjpeg (mozjpeg's build of the libjpeg-turbo decoder: Pillow's pixels); zune-jpeg for CMYK | default (`jpeg-simd`: its SIMD code) |
//! | PNG, WebP, GIF, BMP, TIFF, TGA, PNM, QOI, ICO | the `image` crate | default |
//! | JPEG XL | jxl-oxide | default |
//! | HEIC, AVIF | libheif | `heif` feature |
//! | camera RAW | its embedded JPEG preview (`raw`) | default |

use std::path::Path;

use image::ImageFormat;

/// An image format, as recognised from a file's first bytes (and, for RAW, its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Decoded by the `image` crate.
    Image(ImageFormat),
    /// JPEG XL (codestream or ISO BMFF container), decoded by jxl-oxide.
    JpegXl,
    /// HEIF with HEVC images: what iPhones and many Android phones write.
    Heic,
    /// AVIF: HEIF with AV1 images.
    Avif,
    /// Camera RAW, by its usual name (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, ...).
    Raw(&'static str),
}

impl Format {
    /// The name a format is shown and filtered by: "JPEG", "PNG", "WebP", "HEIC", "DNG", ...
    pub fn label(&self) -> &'static str {
        match self {
            Format::Image(ImageFormat::Jpeg) => "JPEG",
            Format::Image(ImageFormat::Png) => "PNG",
            Format::Image(ImageFormat::WebP) => "WebP",
            Format::Image(ImageFormat::Gif) => "GIF",
            Format::Image(ImageFormat::Bmp) => "BMP",
            Format::Image(ImageFormat::Tiff) => "TIFF",
            Format::Image(ImageFormat::Tga) => "TGA",
            Format::Image(ImageFormat::Pnm) => "PNM",
            Format::Image(ImageFormat::Qoi) => "QOI",
            Format::Image(ImageFormat::Ico) => "ICO",
            other => other.name(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Image(f) => f.extensions_str().first().copied().unwrap_or("image"),
            Format::JpegXl => "JPEG XL",
            Format::Heic => "HEIC",
            Format::Avif => "AVIF",
            Format::Raw(kind) => kind,
        }
    }
}

/// Formats the `image` crate decodes for us (GIF: its first frame; ICO: its largest image).
pub const IMAGE_CRATE: &[ImageFormat] = &[
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
    ImageFormat::Tga,
    ImageFormat::Pnm,
    ImageFormat::Qoi,
    ImageFormat::Ico,
];

/// Camera RAW extensions, with the name a message uses.
const RAW: &[(&str, &str)] = &[
    ("dng", "DNG"),
    ("cr2", "CR2"),
    ("cr3", "CR3"),
    ("crw", "CRW"),
    ("nef", "NEF"),
    ("nrw", "NRW"),
    ("arw", "ARW"),
    ("srf", "SRF"),
    ("sr2", "SR2"),
    ("raf", "RAF"),
    ("orf", "ORF"),
    ("rw2", "RW2"),
    ("pef", "PEF"),
    ("srw", "SRW"),
    ("3fr", "3FR"),
    ("iiq", "IIQ"),
    ("erf", "ERF"),
    ("kdc", "KDC"),
    ("dcr", "DCR"),
    ("mos", "MOS"),
    ("mrw", "MRW"),
    ("x3f", "X3F"),
];

/// Extensions of every format recognised (for picking images out of a folder by name, and for
/// files whose content says nothing, like TGA).
pub const EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "dib", "tif", "tiff", "tga", "pbm",
    "pgm", "ppm", "pnm", "pam", "qoi", "ico", "jxl", "heic", "heif", "hif", "avif",
];

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// Whether the name is a camera RAW's.
pub fn is_raw_name(path: &Path) -> bool {
    extension(path).is_some_and(|e| RAW.iter().any(|(x, _)| *x == e))
}

/// Whether the name is that of a recognised format (RAW included).
pub fn has_image_extension(path: &Path) -> bool {
    extension(path)
        .is_some_and(|e| EXTENSIONS.contains(&e.as_str()) || RAW.iter().any(|(x, _)| *x == e))
}

/// The major and compatible brands of an ISO BMFF file (`ftyp` box), if it is one.
fn brands(head: &[u8]) -> Option<Vec<&[u8]>> {
    if head.len() < 16 || &head[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes(head[0..4].try_into().ok()?) as usize;
    let end = size.clamp(16, head.len());
    let mut out = vec![&head[8..12]];
    out.extend(head[16..end].chunks_exact(4));
    Some(out)
}

/// The format of a file from its first bytes (32 are enough for every signature here) and its
/// name; None if it is not an image this program knows of.
pub fn sniff(head: &[u8], path: &Path) -> Option<Format> {
    let ext = extension(path);
    let raw_name = ext
        .as_deref()
        .and_then(|e| RAW.iter().find(|(x, _)| *x == e))
        .map(|(_, name)| *name);
    if let Some(brands) = brands(head) {
        let has = |b: &[u8]| brands.contains(&b);
        if has(b"crx ") {
            return Some(Format::Raw("CR3"));
        }
        if has(b"avif") || has(b"avis") {
            return Some(Format::Avif);
        }
        if [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"]
            .iter()
            .any(|b| has(*b))
            || (has(b"mif1") || has(b"msf1"))
        {
            return Some(Format::Heic);
        }
        if has(b"jxl ") {
            return Some(Format::JpegXl);
        }
        return None;
    }
    if head.starts_with(&[0xFF, 0x0A])
        || head.starts_with(&[
            0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', 0x0D, 0x0A, 0x87, 0x0A,
        ])
    {
        return Some(Format::JpegXl);
    }
    if let Some(name) = raw_name {
        let tiff = head.starts_with(b"II*\0") || head.starts_with(b"MM\0*");
        let vendor = head.starts_with(b"FUJIFILMCCD-RAW")
            || head.starts_with(b"IIRO")
            || head.starts_with(b"IIRS")
            || head.starts_with(b"MMOR")
            || head.starts_with(b"IIU\0")
            || head.starts_with(b"FOVb")
            || head.starts_with(b"\0MRM")
            || head.starts_with(b"HEAPCCDR");
        if tiff || vendor {
            return Some(Format::Raw(name));
        }
    }
    // BigTIFF (version 43 where classic TIFF has 42), which `guess_format` does not know; the
    // `tiff` crate reads both.
    if head.starts_with(b"II+\0") || head.starts_with(b"MM\0+") {
        return Some(Format::Image(ImageFormat::Tiff));
    }
    match image::guess_format(head) {
        Ok(f) if IMAGE_CRATE.contains(&f) => Some(Format::Image(f)),
        Ok(_) => None,
        // TGA has no signature: its name is all there is.
        Err(_) if ext.as_deref() == Some("tga") => Some(Format::Image(ImageFormat::Tga)),
        Err(_) => None,
    }
}

/// Why this build cannot decode `format`, if it cannot.
pub fn missing_support(format: Format) -> Option<String> {
    match format {
        Format::Image(_) | Format::JpegXl => None,
        Format::Heic | Format::Avif => (!cfg!(feature = "heif")).then(|| {
            format!(
                "{}: this build has no {} support (build clipsearch with `--features heif`, \
                 which needs libheif: `apt-get install libheif-dev`)",
                format.name(),
                format.name()
            )
        }),
        // Read through their embedded previews (see `raw`), which say themselves when a file
        // has none large enough.
        Format::Raw(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_names_are_recognised() {
        let p = |name: &str| std::path::PathBuf::from(name);
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(
            sniff(heic, &p("x.jpg")),
            Some(Format::Heic),
            "content, not name"
        );
        let avif = b"\0\0\0\x20ftypavif\0\0\0\0avifmif1miafMA1A";
        assert_eq!(sniff(avif, &p("x")), Some(Format::Avif));
        let cr3 = b"\0\0\0\x18ftypcrx \0\0\0\x01crx isom";
        assert_eq!(sniff(cr3, &p("IMG_1.CR3")), Some(Format::Raw("CR3")));
        assert_eq!(sniff(b"\xff\x0a\xfa", &p("a")), Some(Format::JpegXl));
        let tiff = b"II*\0\x08\0\0\0";
        assert_eq!(sniff(tiff, &p("DSC_1.NEF")), Some(Format::Raw("NEF")));
        assert_eq!(
            sniff(b"II+\0\x08\0\0\0\x10\0\0\0\0\0\0\0", &p("big.tif")),
            Some(Format::Image(ImageFormat::Tiff)),
            "BigTIFF"
        );
        assert_eq!(
            sniff(tiff, &p("scan.tif")),
            Some(Format::Image(ImageFormat::Tiff))
        );
        assert_eq!(
            sniff(b"IIU\0\x18\0\0\0", &p("P1.RW2")),
            Some(Format::Raw("RW2"))
        );
        assert_eq!(
            sniff(b"qoif\0\0\0\x01", &p("a.bin")),
            Some(Format::Image(ImageFormat::Qoi))
        );
        assert_eq!(
            sniff(b"\0\0\x02\0\0", &p("a.tga")),
            Some(Format::Image(ImageFormat::Tga))
        );
        assert_eq!(sniff(b"%PDF-1.7", &p("a.pdf")), None);
        assert_eq!(sniff(b"hello", &p("notes.txt")), None);
        // A RAW name on something that is no RAW (or TIFF) is not taken for one.
        assert_eq!(sniff(b"%PDF-1.7", &p("a.dng")), None);
        assert_eq!(missing_support(Format::Raw("NEF")), None);
        if !cfg!(feature = "heif") {
            let msg = missing_support(Format::Heic).unwrap();
            assert!(
                msg.starts_with("HEIC: this build has no HEIC support"),
                "{msg}"
            );
            assert!(msg.contains("--features heif"), "{msg}");
        }
    }
}
