//! What each embedding mode costs and keeps, on a folder of photos: preprocessing CPU time (one
//! thread) with exact and with DCT-scaled decoding, and the cosine to exact mode's embedding of
//! the middle way (scaled decoding, f32 tower) and of fast mode (scaled decoding, int8 tower).
//! The figures behind the README's "Why exact mode stays the default".
//!
//! `cargo run --release -p clipsearch --example mode_fidelity MODEL_DIR PHOTO_DIR`, e.g. with
//! `models/demo` (trained) or a ViT-B/32 from `--example write_vitb32`, and the photos of
//! `../shared/tools/fetch-photos.sh`.

use std::time::Instant;

use clipsearch::embedding::dot;
use clipsearch::model::{ClipModel, ModelFiles, Precision, Towers};
use clipsearch::preprocess::Preprocessor;

fn main() {
    clipsearch::device::tune_cpu_pools();
    let mut args = std::env::args().skip(1);
    let (model, photos) = match (args.next(), args.next()) {
        (Some(m), Some(p)) => (m, p),
        _ => {
            eprintln!("usage: mode_fidelity MODEL_DIR PHOTO_DIR");
            std::process::exit(2);
        }
    };
    let files = ModelFiles::local(std::path::Path::new(&model)).expect("a model directory");
    let f32_model = ClipModel::load_with(&files, Towers::Image, Precision::F32).unwrap();
    let int8_model = ClipModel::load_with(&files, Towers::Image, Precision::Int8).unwrap();
    let (f32_tower, int8_tower) = (f32_model.image().unwrap(), int8_model.image().unwrap());
    let exact = f32_tower.preprocessor().clone();
    let scaled = Preprocessor::fast(exact.config.clone());

    let mut paths: Vec<_> = std::fs::read_dir(&photos)
        .expect("a photo directory")
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let (mut exact_s, mut scaled_s) = (0f64, 0f64);
    let (mut middle, mut fast) = (Vec::new(), Vec::new());
    for path in &paths {
        let t = Instant::now();
        let Ok(exact_px) = exact.load_file(path) else {
            eprintln!("skipped (cannot decode): {}", path.display());
            continue;
        };
        exact_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let scaled_px = scaled.load_file(path).unwrap();
        scaled_s += t.elapsed().as_secs_f64();
        let reference = &f32_tower.embed_pixels(&exact_px).unwrap()[0];
        middle.push(dot(
            reference,
            &f32_tower.embed_pixels(&scaled_px).unwrap()[0],
        ));
        fast.push(dot(
            reference,
            &int8_tower.embed_pixels(&scaled_px).unwrap()[0],
        ));
    }
    let summary = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        format!("min {:.4}, median {:.4}", v[0], v[v.len() / 2])
    };
    println!("{}: {} photos", model, middle.len());
    println!("preprocessing CPU, one thread: exact {exact_s:.2} s, scaled {scaled_s:.2} s");
    println!(
        "scaled decoding + f32 tower, cosine to exact: {}",
        summary(middle)
    );
    println!(
        "fast mode (scaled + int8), cosine to exact:   {}",
        summary(fast)
    );
}
