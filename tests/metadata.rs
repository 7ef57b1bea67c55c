//! Photo metadata read by clipsearch against what ExifTool reads from the same files
//! (`tests/fixtures/exif/expected.json`, written by that folder's `make.sh`): capture times with
//! offsets and sub-seconds, GPS in all four hemispheres, camera and lens, orientation, format,
//! the fallbacks (DateTimeDigitized, XMP, the file's mtime) and damaged EXIF.

use std::path::{Path, PathBuf};

use clipsearch::metadata::{read, TimeSource};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exif")
}

fn expected() -> Vec<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

/// ExifTool's "YYYY:MM:DD HH:MM:SS" as ISO 8601 (what `Taken::iso` prints without an offset).
fn iso(exiftool: &str) -> String {
    let (d, t) = exiftool.split_at(10);
    format!("{}T{}", d.replace(':', "-"), t.trim())
}

const MTIME: i64 = 1_700_000_000_123_000_000;

#[test]
fn values_equal_exiftools() {
    let all = expected();
    assert_eq!(all.len(), 11);
    for e in &all {
        let name = e["SourceFile"].as_str().unwrap();
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let out = read(Path::new(name), &bytes, MTIME);
        let m = &out.meta;
        let taken = m.taken.as_ref().expect("always a time: the mtime at worst");
        // Capture time: DateTimeOriginal, else CreateDate (DateTimeDigitized), with sub-seconds
        // and offset; an impossible date is no date.
        let original = e["DateTimeOriginal"]
            .as_str()
            .filter(|_| name != "broken.jpg");
        if name == "xmp_only.jpg" {
            assert_eq!(taken.source, TimeSource::Xmp, "{name}");
            assert_eq!(
                taken.iso(),
                "2021-03-04T05:06:07+02:00",
                "{name}: exiftool says {original:?}"
            );
        } else if let Some(dto) = original {
            assert_eq!(taken.source, TimeSource::DateTimeOriginal, "{name}");
            let mut want = iso(dto);
            if let Some(sub) = e["SubSecTimeOriginal"].as_u64() {
                want.push_str(&format!(".{sub}"));
            }
            if let Some(off) = e["OffsetTimeOriginal"].as_str() {
                want.push_str(off);
            }
            assert_eq!(taken.iso(), want, "{name}");
        } else if let Some(cd) = e["CreateDate"].as_str() {
            assert_eq!(taken.source, TimeSource::DateTimeDigitized, "{name}");
            assert_eq!(taken.iso(), iso(cd), "{name}");
        } else {
            assert_eq!(taken.source, TimeSource::FileModified, "{name}");
        }
        // GPS, signed by hemisphere.
        match (e["GPSLatitude"].as_f64(), e["GPSLongitude"].as_f64()) {
            (Some(lat), Some(lon)) => {
                let g = m.gps.expect(name);
                assert!(
                    (g.lat - lat).abs() < 1e-6 && (g.lon - lon).abs() < 1e-6,
                    "{name}: {g:?}"
                );
                assert_eq!(g.alt, e["GPSAltitude"].as_f64(), "{name}");
            }
            _ => assert_eq!(m.gps, None, "{name}"),
        }
        for (key, ours) in [
            ("Make", &m.make),
            ("Model", &m.model),
            ("LensModel", &m.lens),
        ] {
            assert_eq!(ours.as_deref(), e[key].as_str(), "{name}: {key}");
        }
        assert_eq!(
            m.orientation.map(u64::from),
            e["Orientation"].as_u64(),
            "{name}"
        );
        let file_type = e["FileType"].as_str().unwrap();
        // (The default build cannot decode HEIC, but reads its metadata all the same.)
        let decodable = file_type != "HEIC";
        let want_format = if file_type.contains("WEBP") {
            "WebP"
        } else {
            file_type
        };
        assert_eq!(m.format.as_deref(), Some(want_format), "{name}");
        // Damage is a warning, exactly where ExifTool warns too.
        assert_eq!(
            out.warning.is_some(),
            e["Warning"].is_string(),
            "{name}: {:?}",
            out.warning
        );
        // And never stops the image itself.
        if decodable {
            clipsearch::preprocess::decode::decode_bytes(Path::new(name), &bytes).expect(name);
        }
    }
}

#[test]
fn places_offline() {
    let place = |name: &str| {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        read(Path::new(name), &bytes, MTIME)
            .meta
            .place
            .map(|p| (p.city.clone(), p.country()))
    };
    assert_eq!(
        place("lisbon.jpg"),
        Some(("Lisbon".into(), "Portugal".into()))
    );
    assert_eq!(place("sydney.jpg").map(|p| p.1), Some("Australia".into()));
    assert_eq!(place("rio.png").map(|p| p.1), Some("Brazil".into()));
    assert_eq!(place("tokyo.webp").map(|p| p.1), Some("Japan".into()));
    assert_eq!(place("plain.jpg"), None);
    assert_eq!(
        place("phone.heic"),
        Some(("San Francisco".into(), "United States".into()))
    );
}

#[test]
fn camera_names_read_as_people_say_them() {
    let bytes = std::fs::read(fixtures().join("digitized.jpg")).unwrap();
    let m = read(Path::new("digitized.jpg"), &bytes, MTIME).meta;
    assert_eq!(m.camera().as_deref(), Some("NIKON D850"));
    let bytes = std::fs::read(fixtures().join("lisbon.jpg")).unwrap();
    let m = read(Path::new("lisbon.jpg"), &bytes, MTIME).meta;
    assert_eq!(m.camera().as_deref(), Some("Canon EOS R5"));
}

/// JPEG XL keeps EXIF in an `Exif` box, Brotli-compressed (`brob`) when cjxl recompresses a
/// JPEG: `orient6.jxl` was made from a JPEG to which ExifTool wrote Orientation 6
/// (`tests/fixtures/formats/make.sh`; ExifTool 12.57 itself does not read `brob` boxes).
#[test]
fn jpeg_xl_exif_in_a_compressed_box() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats/orient6.jxl");
    let bytes = std::fs::read(&path).unwrap();
    let out = read(&path, &bytes, MTIME);
    assert_eq!(out.warning, None);
    assert_eq!(out.meta.orientation, Some(6));
    assert_eq!(out.meta.format.as_deref(), Some("JPEG XL"));
}
