//! `clipsearch index` end to end: the real binary, temp directories, the tiny fixture model.

#[path = "mutations/mod.rs"]
mod mutations;
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use support::*;

/// A crafted PNG header announcing 100000 x 100000 pixels: a decompression bomb.
fn bomb_png() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A tiny IDAT (a stored deflate block of five zero bytes), then IEND.
    let mut idat = b"IDAT".to_vec();
    idat.extend_from_slice(&[
        0x78, 0x01, 0x01, 0x05, 0x00, 0xfa, 0xff, 0, 0, 0, 0, 0, 0, 0x05, 0, 0x01,
    ]);
    png.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    png.extend_from_slice(&idat);
    png.extend_from_slice(&crc32(&idat).to_be_bytes());
    png.extend_from_slice(&0u32.to_be_bytes());
    png.extend_from_slice(b"IEND");
    png.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    png
}

/// Good images of many kinds, and bad ones: returns (good count, bad file names).
fn collection(dir: &Path) -> (usize, Vec<&'static str>) {
    std::fs::create_dir_all(dir.join("trip/day1")).unwrap();
    write_jpeg(&dir.join("trip/day1/a.jpg"), &photo(320, 240, 1));
    write_jpeg(&dir.join("trip/b.jpeg"), &photo(200, 300, 2));
    photo(90, 60, 3).save(dir.join("c.png")).unwrap();
    // A PNG with a .jpg name: recognised by content, indexed.
    let mut png = Vec::new();
    photo(50, 50, 4)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(dir.join("misnamed.jpg"), &png).unwrap();
    // 16-bit, 1x1, grey+alpha, animated GIF: all good.
    let wide = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(40, 30, |x, y| {
        image::Rgb([x as u16 * 1500, y as u16 * 2000, 30000])
    });
    wide.save(dir.join("deep16.png")).unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([200, 10, 10]))
        .save(dir.join("dot.png"))
        .unwrap();
    image::GrayAlphaImage::from_fn(30, 30, |x, _| image::LumaA([x as u8 * 8, 128]))
        .save(dir.join("ghost.png"))
        .unwrap();
    {
        let f = std::fs::File::create(dir.join("anim.gif")).unwrap();
        let mut enc = image::codecs::gif::GifEncoder::new(f);
        for seed in [5, 6] {
            let rgba = image::DynamicImage::ImageRgb8(photo(40, 40, seed)).to_rgba8();
            enc.encode_frame(image::Frame::new(rgba)).unwrap();
        }
    }
    // Bad: truncated JPEG, zero bytes, text with an image name, a decompression bomb.
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .encode_image(&photo(300, 200, 7))
        .unwrap();
    std::fs::write(dir.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(dir.join("empty.png"), b"").unwrap();
    std::fs::write(dir.join("notes.jpg"), b"shopping list: milk").unwrap();
    std::fs::write(dir.join("bomb.png"), bomb_png()).unwrap();
    // Ignored silently: not images by name or content; hidden files.
    std::fs::write(dir.join("readme.txt"), b"hello").unwrap();
    std::fs::create_dir_all(dir.join(".thumbnails")).unwrap();
    write_jpeg(&dir.join(".thumbnails/t.jpg"), &photo(20, 20, 8));
    (
        8,
        vec!["truncated.jpg", "empty.png", "notes.jpg", "bomb.png"],
    )
}

#[test]
fn first_run_indexes_good_files_and_lists_bad_ones_then_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let idx = tmp.path().join("idx");
    let (good, bad) = collection(&photos);

    let s = index(&photos, &idx, &[]);
    assert_eq!(s["indexed"], good, "{s}");
    assert_eq!(s["embedded"], good, "{s}");
    assert_eq!(s["failed"], bad.len(), "{s}");
    let reasons: HashMap<String, String> = s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = f["path"].as_str().unwrap();
            (
                Path::new(p).file_name().unwrap().to_string_lossy().into(),
                f["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    for b in &bad {
        assert!(reasons.contains_key(*b), "{b} not listed: {reasons:?}");
    }
    assert!(reasons["truncated.jpg"].contains("truncated"));
    assert!(reasons["empty.png"].contains("empty"));
    assert!(reasons["notes.jpg"].contains("not an image"));
    assert!(
        reasons["bomb.png"].contains("too large"),
        "{}",
        reasons["bomb.png"]
    );
    for key in [
        "indexed",
        "unchanged",
        "moved",
        "removed",
        "failed",
        "seconds",
    ] {
        assert!(s.get(key).is_some(), "summary has {key}");
    }

    // Second run: all unchanged, no model run, bad files not retried but still reported.
    let s = index(&photos, &idx, &[]);
    assert_eq!(s["unchanged"], good, "{s}");
    assert_eq!(s["indexed"], 0);
    assert_eq!(s["embedded"], 0, "no model run");
    assert_eq!(s["failed"], bad.len());

    // Human output: a count and the first few failures.
    let out = run(clipsearch()
        .arg("index")
        .arg(&photos)
        .arg("--index")
        .arg(&idx));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("unchanged {good}")), "{text}");
    assert!(
        text.contains("failed: ") && text.contains("notes.jpg"),
        "{text}"
    );
}

#[test]
fn renamed_moved_deleted_and_duplicated_files() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let idx = tmp.path().join("idx");
    std::fs::create_dir_all(photos.join("old")).unwrap();
    for i in 0..5 {
        write_jpeg(
            &photos.join(format!("old/p{i}.jpg")),
            &photo(160, 120, 10 + i),
        );
    }
    // An identical copy is embedded once.
    std::fs::copy(photos.join("old/p0.jpg"), photos.join("copy_of_p0.jpg")).unwrap();
    let s = index(&photos, &idx, &[]);
    assert_eq!(s["indexed"], 6);
    assert_eq!(s["embedded"], 5, "duplicate content embedded once: {s}");

    std::fs::create_dir_all(photos.join("new")).unwrap();
    std::fs::rename(photos.join("old/p1.jpg"), photos.join("new/renamed.jpg")).unwrap();
    std::fs::remove_file(photos.join("old/p2.jpg")).unwrap();
    let s = index(&photos, &idx, &[]);
    assert_eq!(s["moved"], 1, "{s}");
    assert_eq!(s["removed"], 1, "{s}");
    assert_eq!(s["embedded"], 0, "a moved file is not re-embedded: {s}");
    assert_eq!(s["unchanged"], 4);

    let all = paths_of(&search_json(&idx, &["anything", "-n", "100"]));
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(all.iter().any(|p| p.ends_with("new/renamed.jpg")));
    assert!(
        !all.iter().any(|p| p.ends_with("old/p1.jpg")),
        "old path gone"
    );
    assert!(
        !all.iter().any(|p| p.ends_with("old/p2.jpg")),
        "deleted file gone"
    );
}

#[test]
fn fast_decoding_is_recorded_and_not_mixed_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    write_jpeg(&photos.join("big.jpg"), &photo(800, 600, 3));
    let idx = tmp.path().join("idx");
    let s = index(&photos, &idx, &["--fast"]);
    assert_eq!(s["embedded"], 1);
    write_jpeg(&photos.join("more.jpg"), &photo(800, 600, 4));
    let out = run(clipsearch()
        .arg("index")
        .arg(&photos)
        .arg("--index")
        .arg(&idx));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("--fast"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("int8 image tower"),
        "{}",
        stderr(&out)
    );
    let s = index(&photos, &idx, &["--fast"]);
    assert_eq!(s["embedded"], 1);
}

#[test]
fn other_model_and_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    write_jpeg(&photos.join("x.jpg"), &photo(100, 100, 1));
    let idx = tmp.path().join("idx");
    index(&photos, &idx, &[]);
    // A different model (same architecture, one weight changed) must not mix into the index.
    let other = tmp.path().join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(tiny_model().join(f), other.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(other.join("config.json")).unwrap();
    std::fs::write(other.join("config.json"), cfg.replace("2.6592", "2.6593")).unwrap();
    let out = run(clipsearch()
        .arg("index")
        .arg(&photos)
        .arg("--index")
        .arg(&idx)
        .arg("--model")
        .arg(&other));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("--rebuild"), "{}", stderr(&out));
    let out = run(clipsearch()
        .arg("index")
        .arg(&photos)
        .arg("--index")
        .arg(&idx)
        .arg("--model")
        .arg(&other)
        .args(["--rebuild", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["embedded"], 1);
}

#[test]
fn sigkill_at_random_moments_then_rerun_leaves_exactly_one_record_per_file() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let idx = tmp.path().join("idx");
    std::fs::create_dir_all(&photos).unwrap();
    const N: usize = 60;
    for i in 0..N {
        write_jpeg(
            &photos.join(format!("img{i:03}.jpg")),
            &photo(900, 700, 100 + i as u32),
        );
    }
    // Kill moments spread over start-up, model load, batches and publications; on a slow or
    // loaded machine, where the first batch commits later, later moments until one lands
    // mid-run (the property under test needs at least one such kill).
    let mut seed = 0x9e37_79b9_u64;
    let mut partial_rounds = 0;
    for round in 0..14u64 {
        if round >= 5 && partial_rounds > 0 {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = if round < 5 {
            50 + round * 60 + seed % 60
        } else {
            350 + (round - 4) * 250 + seed % 100
        };
        let mut child = index_command(&photos, &idx)
            .args(["--batch-size", "4"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        eprintln!("round {round}: killed after {delay} ms ({status})");
        // Whatever was committed is searchable right away.
        let out = run(clipsearch()
            .args(["search", "x", "-n", "1000", "--json", "--index"])
            .arg(&idx));
        if out.status.success() {
            let paths = paths_of(&json_lines(&out));
            let unique: std::collections::HashSet<_> = paths.iter().collect();
            assert_eq!(unique.len(), paths.len(), "no duplicates after a kill");
            if paths.len() < N {
                partial_rounds += 1;
            }
        } else {
            assert_eq!(
                out.status.code(),
                Some(5),
                "only 'empty index' is acceptable: {}",
                stderr(&out)
            );
        }
    }
    assert!(
        partial_rounds > 0,
        "no kill landed in the middle of a run with work committed"
    );
    let s = index(&photos, &idx, &[]);
    assert_eq!(
        s["indexed"].as_u64().unwrap() + s["unchanged"].as_u64().unwrap(),
        N as u64,
        "{s}"
    );
    let s = index(&photos, &idx, &[]);
    assert_eq!(s["unchanged"], N, "{s}");
    let paths = paths_of(&search_json(&idx, &["x", "-n", "1000"]));
    assert_eq!(paths.len(), N);
    let unique: std::collections::HashSet<_> = paths.iter().collect();
    assert_eq!(unique.len(), N, "exactly one record per file");
}

#[test]
fn ctrl_c_stops_after_a_committed_batch_and_the_next_run_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let idx = tmp.path().join("idx");
    std::fs::create_dir_all(&photos).unwrap();
    const N: usize = 80;
    for i in 0..N {
        write_jpeg(
            &photos.join(format!("img{i:03}.jpg")),
            &photo(1200, 900, 500 + i as u32),
        );
    }
    let child = index_command(&photos, &idx)
        .args(["--batch-size", "2", "--decode-threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let s = &json_lines(&out)[0];
    assert_eq!(s["interrupted"], true, "{s}");
    let done = s["indexed"].as_u64().unwrap();
    assert!(done < N as u64, "stopped early: {s}");
    // What was committed is searchable, and the next run does only the rest.
    if done > 0 {
        let found = paths_of(&search_json(&idx, &["x", "-n", "1000"])).len() as u64;
        assert_eq!(found, done);
    }
    let s = index(&photos, &idx, &[]);
    assert_eq!(s["unchanged"].as_u64().unwrap(), done, "{s}");
    assert_eq!(s["indexed"].as_u64().unwrap(), N as u64 - done, "{s}");
}

#[test]
fn a_folder_of_damaged_files_of_every_format_indexes_with_each_file_indexed_or_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("odd");
    std::fs::create_dir_all(&dir).unwrap();
    let mut total = 0;
    for (i, (name, bytes)) in mutations::base_files().into_iter().enumerate() {
        std::fs::write(dir.join(&name), &bytes).unwrap();
        total += 1;
        let (stem, ext) = name.rsplit_once('.').unwrap();
        for (m, b) in mutations::mutations(&bytes, 8, 77 + i as u64) {
            std::fs::write(dir.join(format!("{stem}-{m}.{ext}")), b).unwrap();
            total += 1;
        }
    }
    let out = run(index_command(&dir, &tmp.path().join("idx")).arg("--verbose"));
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    let s = &json_lines(&out)[0];
    let (indexed, failed) = (
        s["indexed"].as_u64().unwrap(),
        s["failed"].as_u64().unwrap(),
    );
    eprintln!("{total} files: {indexed} indexed, {failed} reported");
    assert_eq!(indexed + failed, total as u64, "{s}");
    assert!(indexed > 0 && failed > 0);
    let failures = s["failures"].as_array().unwrap();
    assert!(failures
        .iter()
        .all(|f| !f["reason"].as_str().unwrap().is_empty()));
    // The tiled TIFF with separate planes, which made the `tiff` crate panic before clipsearch
    // read such files itself, is indexed.
    assert!(
        !failures.iter().any(|f| f["path"]
            .as_str()
            .unwrap()
            .ends_with("odd_tiled_planar.tif")),
        "{s}"
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// Bad input is exit code 4, with the file's reason. (A decoder's panic is reported the same
/// way, as "decoder crashed": `decode.rs`'s unit test provokes a real one; no file reaches one
/// through the binary any more.)
#[test]
fn embed_reports_a_damaged_image_as_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let jpeg = std::fs::read(fixtures().join("reference/images/astronaut.jpg")).unwrap();
    let cut = tmp.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).unwrap();
    let out = run(clipsearch()
        .args(["embed", "--image"])
        .arg(&cut)
        .arg("--model")
        .arg(tiny_model()));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated JPEG"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn jpeg_xl_indexes_and_formats_this_build_lacks_are_reported_every_run_not_remembered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phone");
    std::fs::create_dir_all(&dir).unwrap();
    let formats = fixtures().join("formats");
    for f in ["photo.jxl", "orient6.jxl", "photo.heic", "photo.avif"] {
        std::fs::copy(formats.join(f), dir.join(f)).unwrap();
    }
    // A TIFF-shaped file named like a camera RAW.
    let mut dng = b"II*\0\x08\0\0\0".to_vec();
    dng.resize(256, 0);
    std::fs::write(dir.join("IMG_0001.DNG"), dng).unwrap();
    write_jpeg(&dir.join("IMG_0002.jpg"), &photo(200, 150, 5));
    let idx = tmp.path().join("idx");
    let s = index(&dir, &idx, &[]);
    let decodable = if cfg!(feature = "heif") { 5 } else { 3 };
    assert_eq!(s["indexed"], decodable, "{s}");
    let reasons: Vec<String> = s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("IMG_0001.DNG") && r.contains("camera RAW (DNG)")),
        "{reasons:?}"
    );
    if !cfg!(feature = "heif") {
        for kind in ["HEIC", "AVIF"] {
            assert!(
                reasons
                    .iter()
                    .any(|r| r.contains(&format!("{kind}: this build has no {kind} support"))),
                "{reasons:?}"
            );
        }
    }
    // Not remembered as bad files: reported again, and a build that reads them would index them.
    let again = index(&dir, &idx, &[]);
    assert_eq!(again["unchanged"], decodable, "{again}");
    assert_eq!(again["failed"], s["failed"], "{again}");
    let found = paths_of(&search_json(&idx, &["x", "-n", "10"]));
    assert!(found.iter().any(|p| p.ends_with("photo.jxl")), "{found:?}");
    assert!(
        found.iter().any(|p| p.ends_with("orient6.jxl")),
        "{found:?}"
    );
}

#[test]
fn a_raw_and_a_jpeg_of_one_shot_are_one_entry_showing_both_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("card");
    std::fs::create_dir_all(&dir).unwrap();
    let dng = std::fs::read(fixtures().join("formats/preview.dng")).unwrap();
    // Shot 1: RAW + JPEG; shot 2: RAW alone (indexed through its preview); shot 3: JPEG alone.
    write_jpeg(&dir.join("IMG_0001.JPG"), &photo(400, 300, 1));
    std::fs::write(dir.join("IMG_0001.DNG"), &dng).unwrap();
    std::fs::write(dir.join("IMG_0002.dng"), &dng).unwrap();
    write_jpeg(&dir.join("IMG_0003.jpg"), &photo(400, 300, 3));
    let idx = tmp.path().join("idx");
    let s = index(&dir, &idx, &[]);
    assert_eq!(s["indexed"], 3, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    let raw_of = |idx: &Path| -> HashMap<String, Option<String>> {
        search_json(idx, &["x", "-n", "10"])
            .iter()
            .map(|r| {
                let name = |v: &serde_json::Value| {
                    v.as_str().map(|p| {
                        Path::new(p)
                            .file_name()
                            .unwrap()
                            .to_string_lossy()
                            .into_owned()
                    })
                };
                (name(&r["path"]).unwrap(), name(&r["raw"]))
            })
            .collect()
    };
    let got = raw_of(&idx);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got["IMG_0001.JPG"].as_deref(), Some("IMG_0001.DNG"));
    assert_eq!(got["IMG_0002.dng"], None);
    assert_eq!(got["IMG_0003.jpg"], None);
    // The text output names the RAW beside its JPEG.
    let out = run(clipsearch()
        .args(["search", "x", "-n", "10", "--index"])
        .arg(&idx));
    assert!(
        stdout(&out).contains("IMG_0001.JPG  (RAW: "),
        "{}",
        stdout(&out)
    );

    // A RAW appears beside an unchanged JPEG: the JPEG's entry gains it, nothing is embedded.
    std::fs::write(
        dir.join("IMG_0003.NEF"),
        std::fs::read(fixtures().join("formats/preview.nef")).unwrap(),
    )
    .unwrap();
    let s = index(&dir, &idx, &[]);
    assert_eq!(s["embedded"], 0, "{s}");
    assert_eq!(
        raw_of(&idx)["IMG_0003.jpg"].as_deref(),
        Some("IMG_0003.NEF")
    );
    // The JPEG of shot 1 is deleted: its RAW becomes the shot's entry.
    std::fs::remove_file(dir.join("IMG_0001.JPG")).unwrap();
    index(&dir, &idx, &[]);
    let got = raw_of(&idx);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.contains_key("IMG_0001.DNG"), "{got:?}");
}
