//! Fast mode (`clipsearch index --fast`) against exact mode, with bounds that mean something.
//!
//! A bound like "cosine >= 0.995" says little on its own: with the tiny random model two
//! unrelated photos already have cosine 0.989, and a photo and its 90°-rotated copy 0.9957. So
//! each bound here is relative to the *separation* of the set: how close exact mode's embedding
//! of a photo comes to a wrong answer (any other photo of the set, or the same photo rotated by
//! 90°; re-encodings of one picture are not wrong answers for each other). Fast mode may move an
//! embedding at most SHARE = 0.15 of that distance: `1 - cos(exact, fast) <= SHARE * (1 - max(wrong
//! cosines))`, checked with the tiny random model and with the bundled demo model (trained: its
//! embeddings mean something). Observed (`--nocapture`): scaled decoding <= 0.012 of the
//! separation, the reducer <= 0.008, whole fast mode (with the int8 tower) <= 0.074; a decode
//! turned by 90° >= 0.92, so the bound catches it (tested below), and a fast path that skips its
//! reduction fails the large-PNG test.

use std::path::{Path, PathBuf};

use clipsearch::embedding::dot;
use clipsearch::model::{resolve, ClipModel, ModelFiles, Precision, Towers};
use clipsearch::preprocess::decode::{decode_bytes, decode_bytes_with, DecodeMode};
use clipsearch::preprocess::Preprocessor;
use image::{DynamicImage, ImageFormat, RgbImage};

/// Fast mode's share of the distance to the nearest wrong answer.
const SHARE: f32 = 0.15;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn models() -> Vec<ModelFiles> {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo");
    vec![
        ModelFiles::local(&fixtures().join("tiny-clip")).unwrap(),
        resolve(demo.to_str().unwrap()).unwrap(),
    ]
}

/// The JPEG fixtures: every one is at least twice the 64 px input, so each takes the scaled path.
fn jpegs() -> Vec<PathBuf> {
    let dir = fixtures().join("reference/images");
    vec![
        dir.join("astronaut.jpg"),
        dir.join("chelsea.jpg"),
        dir.join("rocket.jpg"),
        dir.join("chelsea_exif_orient6.jpg"),
        // Progressive (Pillow's default script): at 1/8 only its DC scans are decoded.
        fixtures().join("progressive.jpg"),
    ]
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// What exact mode makes of a set of files (as bytes), and each one's distance to the nearest
/// wrong answer: another file of the set, or itself rotated by 90°.
struct Exact {
    embeddings: Vec<Vec<f32>>,
    separation: Vec<f32>,
}

fn exact_mode(model: &ClipModel, files: &[(PathBuf, Vec<u8>)]) -> Exact {
    let image = model.image().unwrap();
    let pre = image.preprocessor();
    let embed = |path: &Path, bytes: &[u8]| {
        image
            .embed_pixels(&pre.load_bytes(path, bytes).unwrap())
            .unwrap()
            .remove(0)
    };
    let embeddings: Vec<Vec<f32>> = files.iter().map(|(p, b)| embed(p, b)).collect();
    let decoded: Vec<RgbImage> = files
        .iter()
        .map(|(p, b)| decode_bytes(p, b).unwrap())
        .collect();
    // Two files are one picture (a re-encoding: the progressive fixture is the astronaut) when
    // their pixels differ by under three levels on average: not a wrong answer for each other.
    let same_picture = |i: usize, j: usize| {
        let (a, b) = (&decoded[i], &decoded[j]);
        a.dimensions() == b.dimensions()
            && a.as_raw()
                .iter()
                .zip(b.as_raw())
                .map(|(x, y)| x.abs_diff(*y) as u64)
                .sum::<u64>()
                < 3 * a.as_raw().len() as u64
    };
    let separation = (0..files.len())
        .map(|i| {
            let rotated = image::imageops::rotate90(&decoded[i]);
            let r = embed(
                Path::new("rotated.png"),
                &encode(&rotated, ImageFormat::Png),
            );
            let nearest_wrong = (0..files.len())
                .filter(|&j| j != i && !same_picture(i, j))
                .map(|j| dot(&embeddings[i], &embeddings[j]))
                .fold(dot(&embeddings[i], &r), f32::max);
            1.0 - nearest_wrong
        })
        .collect();
    Exact {
        embeddings,
        separation,
    }
}

fn read(paths: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    paths
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect()
}

/// Checks `fast` (one embedding per file) against exact mode; returns the worst share.
fn within_share(what: &str, exact: &Exact, fast: &[Vec<f32>], names: &[String]) -> f32 {
    let mut worst: f32 = 0.0;
    for (i, f) in fast.iter().enumerate() {
        let moved = 1.0 - dot(&exact.embeddings[i], f);
        let share = moved / exact.separation[i];
        eprintln!(
            "{what}: {}: 1 - cos = {moved:.2e}, separation {:.2e}: {:.3} of it",
            names[i], exact.separation[i], share
        );
        assert!(
            share <= SHARE,
            "{what}: {}: fast mode moved the embedding {share:.3} of the way to a wrong answer",
            names[i]
        );
        worst = worst.max(share);
    }
    worst
}

#[test]
fn scaled_decoding_stays_within_the_share_of_the_separation_and_really_scales() {
    let files = read(&jpegs());
    let names: Vec<String> = jpegs()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for model_files in models() {
        let model = ClipModel::load(&model_files, Towers::Image).unwrap();
        let image = model.image().unwrap();
        let fast = Preprocessor::fast(image.preprocessor().config.clone());
        let exact = exact_mode(&model, &files);
        let mut embeddings = Vec::new();
        for ((path, bytes), name) in files.iter().zip(&names) {
            let full = decode_bytes(path, bytes).unwrap();
            let small = decode_bytes_with(path, bytes, fast.decode).unwrap();
            assert!(
                small.width() < full.width() && small.height() < full.height(),
                "{name}: not scaled ({:?} vs {:?})",
                small.dimensions(),
                full.dimensions()
            );
            assert!(small.width().min(small.height()) >= 64, "{name}: too small");
            let pixels = fast.load_bytes(path, bytes).unwrap();
            embeddings.push(image.embed_pixels(&pixels).unwrap().remove(0));
        }
        within_share(&model_files.name, &exact, &embeddings, &names);
    }
}

/// A photo-like picture, large enough for fast mode's block-averaging reduction.
fn large_picture(w: u32, h: u32, seed: u32) -> RgbImage {
    let s = seed.wrapping_mul(2654435761);
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let a = ((s & 0xff) as f32 / 255.0) * 9.0 + 2.0;
        let b = (((s >> 8) & 0xff) as f32 / 255.0) * 9.0 + 2.0;
        image::Rgb([
            (127.0 + 120.0 * (a * fx + b * fy).sin()) as u8,
            (127.0 + 120.0 * (b * fx * 3.0 - a * fy).cos()) as u8,
            (((s >> 16) & 0xff) as f32 * (1.0 - fx * fy)) as u8,
        ])
    })
}

#[test]
fn large_pngs_take_the_reducer_in_fast_mode_within_the_bound() {
    let files: Vec<(PathBuf, Vec<u8>)> = (0..4)
        .map(|i| {
            let img = large_picture(1600 + 37 * i, 1200 - 23 * i, 11 + i);
            (
                PathBuf::from(format!("large{i}.png")),
                encode(&img, ImageFormat::Png),
            )
        })
        .collect();
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    for model_files in models() {
        let model = ClipModel::load(&model_files, Towers::Image).unwrap();
        let image = model.image().unwrap();
        let exact_pre = image.preprocessor();
        let fast = Preprocessor::fast(exact_pre.config.clone());
        let exact = exact_mode(&model, &files);
        let mut embeddings = Vec::new();
        for (path, bytes) in &files {
            // PNGs are decoded whole in both modes: what differs is the reduction before the
            // bicubic resize. Equal pixels would mean the reducer never ran.
            assert_eq!(
                decode_bytes_with(path, bytes, fast.decode).unwrap(),
                decode_bytes(path, bytes).unwrap()
            );
            let a = exact_pre.load_bytes(path, bytes).unwrap();
            let b = fast.load_bytes(path, bytes).unwrap();
            assert_ne!(a, b, "{}: fast mode did not reduce", path.display());
            embeddings.push(image.embed_pixels(&b).unwrap().remove(0));
        }
        within_share(&model_files.name, &exact, &embeddings, &names);
    }
}

#[test]
fn whole_fast_mode_scaled_decoding_with_the_int8_tower_stays_within_the_bound() {
    let mut paths = jpegs();
    paths.push(fixtures().join("reference/images/coffee.png"));
    let files = read(&paths);
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for model_files in models() {
        let exact_model = ClipModel::load(&model_files, Towers::Image).unwrap();
        let int8 = ClipModel::load_with(&model_files, Towers::Image, Precision::Int8).unwrap();
        let exact = exact_mode(&exact_model, &files);
        let tower = int8.image().unwrap();
        let fast = Preprocessor::fast(tower.preprocessor().config.clone());
        let embeddings: Vec<Vec<f32>> = files
            .iter()
            .map(|(p, b)| {
                let pixels = fast.load_bytes(p, b).unwrap();
                tower.embed_pixels(&pixels).unwrap().remove(0)
            })
            .collect();
        within_share(
            &format!("{} (scaled + int8)", model_files.name),
            &exact,
            &embeddings,
            &names,
        );
    }
}

#[test]
fn a_rotated_decode_fails_the_bound() {
    // What the bound is for: a fast path that, say, lost the EXIF orientation would turn the
    // picture by 90°. Here the rotation is applied on purpose, and the bound must catch it.
    let files = read(&jpegs());
    for model_files in models() {
        let model = ClipModel::load(&model_files, Towers::Image).unwrap();
        let image = model.image().unwrap();
        let fast = Preprocessor::fast(image.preprocessor().config.clone());
        let exact = exact_mode(&model, &files);
        for (i, (path, bytes)) in files.iter().enumerate() {
            let small = decode_bytes_with(path, bytes, fast.decode).unwrap();
            let turned = image::imageops::rotate90(&small);
            let (w, h) = turned.dimensions();
            let pixels = fast.pixels_to_tensor_data(turned.as_raw(), w as usize, h as usize);
            let e = image.embed_pixels(&pixels).unwrap().remove(0);
            let share = (1.0 - dot(&exact.embeddings[i], &e)) / exact.separation[i];
            eprintln!(
                "{}: {}: rotated: {share:.2} of the separation",
                model_files.name,
                path.display()
            );
            assert!(
                share > SHARE,
                "{}: a rotation passed the bound",
                path.display()
            );
        }
    }
}

#[test]
fn other_formats_and_small_jpegs_decode_exactly() {
    let dir = fixtures().join("reference/images");
    let png = dir.join("coffee.png");
    let bytes = std::fs::read(&png).unwrap();
    let mode = DecodeMode::Scaled { min_short: 64 };
    assert_eq!(
        decode_bytes_with(&png, &bytes, mode).unwrap(),
        decode_bytes(&png, &bytes).unwrap()
    );
    // 300 px short side < 2 x 224: no scaling for a ViT-B/32-sized target.
    let jpg = dir.join("chelsea.jpg");
    let bytes = std::fs::read(&jpg).unwrap();
    let mode = DecodeMode::Scaled { min_short: 224 };
    assert_eq!(
        decode_bytes_with(&jpg, &bytes, mode).unwrap(),
        decode_bytes(&jpg, &bytes).unwrap()
    );
    // A truncated JPEG is still refused.
    let e = decode_bytes_with(
        &jpg,
        &bytes[..bytes.len() / 2],
        DecodeMode::Scaled { min_short: 64 },
    );
    assert!(e.unwrap_err().to_string().contains("truncated"));
}
