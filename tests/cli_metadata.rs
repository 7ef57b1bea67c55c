//! Photo metadata end to end, on the real binary: the EXIF fixtures (values checked against
//! ExifTool in `tests/metadata.rs`) indexed, then every filter and order of `search`,
//! `similar`, `dupes` and `info`, inline and as options; moves keep metadata; an index written
//! in the previous release's format is completed without embedding anything.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::*;

/// 2015-01-01 12:00 UTC: the stand-in date of the fixtures that record none.
const OLD: u64 = 1_420_113_600;

/// The EXIF fixtures in a fresh folder, the undated ones given an old modification time.
fn photos(dir: &Path) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for e in std::fs::read_dir(fixtures().join("exif")).unwrap() {
        let p = e.unwrap().path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ["jpg", "png", "webp"].contains(&ext) {
            std::fs::copy(&p, photos.join(p.file_name().unwrap())).unwrap();
        }
    }
    for name in ["plain.jpg", "broken.jpg"] {
        let f = std::fs::File::options()
            .write(true)
            .open(photos.join(name))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(OLD))
            .unwrap();
    }
    photos
}

fn names(results: &[Value]) -> Vec<String> {
    paths_of(results)
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn search(idx: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["-n", "50"];
    all.extend_from_slice(args);
    search_json(idx, &all)
}

fn set(names: &[&str]) -> Vec<String> {
    sorted(names.iter().map(|s| s.to_string()).collect())
}

#[test]
fn every_filter_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let idx = tmp.path().join("index");
    let summary = index(&photos, &idx, &[]);
    assert_eq!(summary["indexed"], 8);
    // The damaged EXIF is a warning; its image is indexed.
    let warnings = summary["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("broken.jpg"));

    let q = |args: &[&str]| sorted(names(&search(&idx, args)));
    // Dates: years, months and days, both ends inclusive, in the photo's local time.
    assert_eq!(
        q(&["photo", "--after", "2021"]),
        set(&["lisbon.jpg", "tokyo.webp", "xmp_only.jpg"])
    );
    assert_eq!(
        q(&["photo", "--before", "2018"]),
        set(&["rio.png", "plain.jpg", "broken.jpg"])
    );
    assert_eq!(
        q(&["photo", "--after", "2019-12-31", "--before", "2019-12-31"]),
        set(&["sydney.jpg"])
    );
    assert_eq!(
        q(&["photo", "--after", "2020-07", "--before", "2021-03"]),
        set(&["digitized.jpg", "xmp_only.jpg"])
    );
    // Camera: words of make and model, the make not repeated.
    assert_eq!(q(&["photo", "--camera", "canon"]), set(&["lisbon.jpg"]));
    assert_eq!(
        q(&["photo", "--camera", "nikon d850"]),
        set(&["digitized.jpg"])
    );
    assert_eq!(q(&["photo", "--camera", "IPHONE"]), set(&["sydney.jpg"]));
    // Places from GPS, offline; city, region or country, case- and accent-insensitive.
    assert_eq!(q(&["photo", "--place", "PORTUGAL"]), set(&["lisbon.jpg"]));
    assert_eq!(
        q(&["photo", "--place", "New South Wales"]),
        set(&["sydney.jpg"])
    );
    assert_eq!(
        q(&["photo", "--place", "tokyo, japan"]),
        set(&["tokyo.webp"])
    );
    assert_eq!(q(&["photo", "--place", "BRA"]), set(&["rio.png"]));
    assert_eq!(
        q(&["photo", "--near", "38.72,-9.14,25"]),
        set(&["lisbon.jpg"])
    );
    assert_eq!(q(&["photo", "--near", "-23,-43.2,50"]), set(&["rio.png"]));
    // Formats by content.
    assert_eq!(
        q(&["photo", "--format", "png,webp"]),
        set(&["rio.png", "tokyo.webp"])
    );
    assert_eq!(q(&["photo", "--format", "jpg"]).len(), 6);
    // Several filters at once, and inline in the text.
    assert_eq!(
        q(&["photo", "--after", "2019", "--camera", "apple"]),
        set(&["sydney.jpg"])
    );
    assert_eq!(
        q(&["a photo after:2021 place:Lisbon"]),
        set(&["lisbon.jpg"])
    );
    assert_eq!(
        q(&["photo", "+", "camera:\"canon eos\""]),
        set(&["lisbon.jpg"])
    );

    // Orders: the best by score, then by date; undated files last.
    let by = |args: &[&str]| names(&search(&idx, args));
    let newest = by(&["photo", "--sort", "-date"]);
    assert_eq!(newest[..3], ["lisbon.jpg", "tokyo.webp", "xmp_only.jpg"]);
    let oldest = by(&["photo sort:date"]);
    assert_eq!(
        sorted(oldest[..2].to_vec()),
        set(&["broken.jpg", "plain.jpg"])
    );
    assert_eq!(
        oldest[2..],
        [
            "rio.png",
            "sydney.jpg",
            "digitized.jpg",
            "xmp_only.jpg",
            "tokyo.webp",
            "lisbon.jpg"
        ]
    );
    // Scores, when ordered by score, are best first.
    let scored = search(&idx, &["photo"]);
    let scores: Vec<f64> = scored
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Filters alone list by date, without scores; JSON carries the metadata.
    let listed = search(&idx, &["after:2019", "before:2022"]);
    assert_eq!(
        names(&listed),
        ["sydney.jpg", "digitized.jpg", "xmp_only.jpg", "tokyo.webp"]
    );
    assert!(listed.iter().all(|r| r.get("score").is_none()));
    assert_eq!(listed[0]["taken"], "2019-12-31T23:59:59+11:00");
    assert_eq!(listed[0]["place"], "Sydney, New South Wales, Australia");
    assert_eq!(listed[0]["camera"], "Apple iPhone 11 Pro");
    let listed = search(&idx, &["--format", "png", "--sort", "-date"]);
    assert_eq!(names(&listed), ["rio.png"]);

    // A filter that keeps nothing says so, with what the index has (exit 1).
    let out = run(clipsearch()
        .args(["search", "photo", "--place", "Atlantis", "--index"])
        .arg(&idx));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no indexed file matches place Atlantis"),
        "{err}"
    );
    assert!(err.contains("4 a GPS position"), "{err}");
    // Nothing to search for is a usage error (it used to list arbitrary files).
    for args in [vec![""], vec![]] {
        let out = run(clipsearch()
            .arg("search")
            .args(&args)
            .arg("--index")
            .arg(&idx));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // A bad filter names what is expected.
    let out = run(clipsearch()
        .args(["search", "photo", "--after", "June", "--index"])
        .arg(&idx));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("2023-06"), "{}", stderr(&out));

    // The text output of a date-ordered query shows when and where.
    let out = run(clipsearch()
        .args(["search", "place:Lisbon", "--index"])
        .arg(&idx));
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("2023-06-14 10:03") && stdout(&out).contains("(Lisbon, Portugal)"),
        "{}",
        stdout(&out)
    );

    // similar and dupes take the same filters.
    let lisbon = photos.join("lisbon.jpg");
    let out = run(clipsearch()
        .arg("similar")
        .arg(&lisbon)
        .args(["--place", "japan", "--json", "--index"])
        .arg(&idx));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&json_lines(&out)), ["tokyo.webp"]);
    std::fs::copy(&lisbon, photos.join("lisbon_copy.jpg")).unwrap();
    index(&photos, &idx, &[]);
    let dupes = |args: &[&str]| {
        let out = run(clipsearch()
            .args(["dupes", "--threshold", "0.999", "--json", "--index"])
            .arg(&idx)
            .args(args));
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&out)
    };
    let groups = dupes(&["--place", "Lisbon"]);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["size"], 2);
    assert!(dupes(&["--place", "Tokyo"]).is_empty());

    // info: everything the index holds for a file.
    let out = run(clipsearch()
        .arg("info")
        .arg(&lisbon)
        .args(["--json", "--index"])
        .arg(&idx));
    assert!(out.status.success(), "{}", stderr(&out));
    let info = &json_lines(&out)[0];
    assert_eq!(info["taken"], "2023-06-14T10:03:12.250+01:00");
    assert_eq!(info["taken_source"], "date_time_original");
    assert_eq!(info["place"]["city"], "Lisbon");
    assert_eq!(info["place"]["country"], "Portugal");
    assert_eq!(info["camera"], "Canon EOS R5");
    assert_eq!(info["lens"], "RF24-105mm F4 L IS USM");
    assert_eq!(info["format"], "JPEG");
    assert_eq!(info["gps"]["alt"], 45.0);
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(64), Some(48))
    );
    let out = run(clipsearch()
        .arg("info")
        .arg(photos.join("plain.jpg"))
        .arg("--index")
        .arg(&idx));
    assert!(
        stdout(&out).contains("file modification time"),
        "{}",
        stdout(&out)
    );
    let out = run(clipsearch()
        .arg("info")
        .arg(tmp.path().join("nowhere.jpg"))
        .arg("--index")
        .arg(&idx));
    assert_eq!(out.status.code(), Some(4));

    // stats says what filters can work with.
    let out = run(clipsearch().args(["stats", "--json", "--index"]).arg(&idx));
    assert!(out.status.success(), "{}", stderr(&out));
    let m = &json_lines(&out)[0]["metadata"];
    assert_eq!(m["files"], 9);
    assert_eq!(m["dated"], 9);
    // lisbon and its copy, sydney, rio, tokyo, digitized, xmp_only: not plain, not broken.
    assert_eq!(m["dated_by_camera"], 7);
    assert_eq!(
        (m["first_month"].as_str(), m["last_month"].as_str()),
        (Some("2015-01"), Some("2023-06"))
    );
    assert_eq!(m["with_place"], 5);
    assert_eq!(m["with_camera"], 7);
    assert_eq!(m["unread"], 0);

    // A move keeps the metadata, as it keeps the embedding.
    std::fs::rename(&lisbon, photos.join("moved.jpg")).unwrap();
    let summary = index(&photos, &idx, &[]);
    assert_eq!(
        (summary["moved"].as_u64(), summary["embedded"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        q(&["photo", "--place", "portugal"]),
        set(&["lisbon_copy.jpg", "moved.jpg"])
    );
}

/// Rewrites an index as the previous release wrote it: JSON catalog records without metadata,
/// every vector in sled's `embeddings` (none of format 4's `located`, `refs`, `removals`),
/// format version 2, one view file of format 1 (the segment layout without the metadata
/// section) named by a manifest of format 1.
fn downgrade(idx: &Path) {
    let (records, vectors) = {
        let store = clipsearch::store::Store::open(idx, None).unwrap();
        let records: Vec<_> = store.files().map(Result::unwrap).collect();
        let vectors: Vec<Vec<f32>> = records
            .iter()
            .map(|(_, r)| store.embedding(&r.hash).unwrap().unwrap())
            .collect();
        (records, vectors)
    };
    {
        let db = clipsearch::store::sled_config(&idx.join("db"))
            .open()
            .unwrap();
        let files = db.open_tree("files").unwrap();
        let embeddings = db.open_tree("embeddings").unwrap();
        for ((path, rec), v) in records.iter().zip(&vectors) {
            let mut json = serde_json::to_value(rec).unwrap();
            assert!(json.as_object_mut().unwrap().remove("meta").is_some());
            use std::os::unix::ffi::OsStrExt;
            files
                .insert(
                    path.as_os_str().as_bytes(),
                    serde_json::to_vec(&json).unwrap(),
                )
                .unwrap();
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            embeddings.insert(rec.hash, bytes).unwrap();
        }
        for tree in ["located", "refs", "removals"] {
            db.drop_tree(tree).unwrap();
        }
        let meta = db.open_tree("meta").unwrap();
        meta.remove("refs").unwrap();
        meta.insert("format_version", &2u32.to_le_bytes()).unwrap();
        db.flush().unwrap();
    }
    let manifest_path = idx.join("view.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let segments = manifest["segments"].as_array().unwrap().clone();
    assert_eq!(segments.len(), 1, "a first publication is one segment");
    let name = segments[0]["file"].as_str().unwrap().to_string();
    let file = idx.join(&name);
    let mut bytes = std::fs::read(&file).unwrap();
    // Format 1 ends with the path strings: the metadata section and (format 3) the binary
    // codes after it go.
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let dim = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let (count, strings_len) = (u64_at(16), u64_at(24));
    let meta_at = 64 + 4 * count * dim + (8 + 64 + 4) * count + strings_len;
    bytes.truncate(meta_at);
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes[32..64].fill(0);
    std::fs::write(&file, bytes).unwrap();
    let m = manifest.as_object_mut().unwrap();
    m.remove("segments");
    m.remove("deleted");
    m.insert("file".into(), name.into());
    m.insert("format".into(), 1.into());
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[test]
fn an_index_of_the_previous_format_is_completed_without_embedding() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let idx = tmp.path().join("index");
    index(&photos, &idx, &[]);
    downgrade(&idx);

    // Searches work as before; stats and filters say what to run.
    assert_eq!(search(&idx, &["photo"]).len(), 8);
    let out = run(clipsearch().args(["stats", "--index"]).arg(&idx));
    assert!(
        stdout(&out).contains("8 files without metadata yet"),
        "{}",
        stdout(&out)
    );
    let out = run(clipsearch()
        .args(["search", "photo", "--place", "portugal", "--index"])
        .arg(&idx));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run `clipsearch index DIR...`"),
        "{}",
        stderr(&out)
    );

    let summary = index(&photos, &idx, &[]);
    assert_eq!(summary["embedded"], 0, "{summary}");
    assert_eq!(summary["indexed"], 0, "{summary}");
    assert_eq!(summary["metadata_read"], 8, "{summary}");
    assert_eq!(
        names(&search(&idx, &["photo", "--place", "portugal"])),
        ["lisbon.jpg"]
    );
    assert_eq!(
        names(&search(&idx, &["after:2019", "before:2019"])),
        ["sydney.jpg"]
    );
    // And once only.
    let summary = index(&photos, &idx, &[]);
    assert_eq!(summary["metadata_read"], 0);
}

#[test]
fn the_api_takes_the_same_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let idx = tmp.path().join("index");
    index(&photos, &idx, &[]);
    let server = serve(&idx, &[]);
    let addr = server.addr.as_str();
    let results = |target: &str| {
        let (status, body) = api(addr, target);
        assert_eq!(status, 200, "{target}: {body}");
        body["results"].as_array().unwrap().clone()
    };

    assert_eq!(
        names(&results("/api/search?q=photo&place=portugal")),
        ["lisbon.jpg"]
    );
    assert_eq!(
        names(&results("/api/search?q=photo%20after:2021%20sort:-date")),
        ["lisbon.jpg", "tokyo.webp", "xmp_only.jpg"]
    );
    let listed = results("/api/search?after=2019&before=2019");
    assert_eq!(names(&listed), ["sydney.jpg"]);
    assert!(listed[0]["score"].is_null());
    assert_eq!(listed[0]["place"], "Sydney, New South Wales, Australia");
    assert_eq!(listed[0]["camera"], "Apple iPhone 11 Pro");
    assert_eq!(
        names(&results(
            "/api/search?q=photo&near=35.7,139.7,20&format=webp"
        )),
        ["tokyo.webp"]
    );
    assert_eq!(
        names(&results("/api/search?q=photo&camera=sony&sort=date")),
        ["rio.png"]
    );

    // No match: a 200 with no results and the reason.
    let (status, body) = api(addr, "/api/search?q=photo&place=Atlantis");
    assert_eq!(status, 200);
    assert_eq!(body["results"].as_array().unwrap().len(), 0);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("no indexed file matches place Atlantis"));
    // Nothing to search for, or a filter that makes no sense: 400, saying why.
    let (status, body) = api(addr, "/api/search?q=");
    assert_eq!(status, 400, "{body}");
    let (status, body) = api(addr, "/api/search?q=photo&after=June");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("2023-06"),
        "{body}"
    );

    let lisbon = &results("/api/search?q=photo&place=lisbon")[0];
    let id = lisbon["id"].as_u64().unwrap();
    let (status, info) = api(addr, &format!("/api/info/{id}"));
    assert_eq!(status, 200);
    assert_eq!(info["place"]["label"], "Lisbon, Portugal");
    assert_eq!(info["taken"], "2023-06-14T10:03:12.250+01:00");
    assert_eq!(info["lens"], "RF24-105mm F4 L IS USM");
    assert_eq!(api(addr, "/api/info/999999").0, 404);
    assert_eq!(
        names(&results(&format!("/api/similar/{id}?place=japan"))),
        ["tokyo.webp"]
    );
    let (status, body) = api(addr, "/api/dupes?threshold=0.5&format=png");
    assert_eq!(status, 200);
    assert_eq!(
        body["groups"].as_array().unwrap().len(),
        0,
        "one PNG cannot be a pair"
    );
}
