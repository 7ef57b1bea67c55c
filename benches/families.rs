//! Image-tower throughput (f32, batch 8) and one text query's latency for each model family,
//! side by side in one run: a ViT-B/32 CLIP with random weights (always, with OpenAI's
//! quick-GELU and with OpenCLIP's GELU, both also with fast mode's int8 tower), and every checkpoint
//! directory listed in `CLIPSEARCH_BENCH_MODELS` (colon-separated), e.g. the random-weight
//! SigLIP 2 checkpoints of real size that `tools/bench/random_checkpoints.py` writes:
//!
//! ```text
//! /tmp/refenv/bin/python tools/bench/random_checkpoints.py /tmp/fullsize
//! CLIPSEARCH_BENCH_MODELS=/tmp/fullsize/siglip2-base-patch16-224 \
//!     cargo bench -p clipsearch --bench families
//! ```

use std::path::{Path, PathBuf};

use clipsearch::model::{
    synthetic, ClipConfig, ClipModel, ImageEncoder, ModelFiles, Precision, Towers,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 8;

fn benches(c: &mut Criterion) {
    // As the binary does, before any candle operation (see its doc).
    clipsearch::device::tune_cpu_pools();
    let tmp = tempfile::tempdir().unwrap();
    let b32 = tmp.path().join("clip-vit-b32");
    let tokenizer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/tokenizer.json");
    synthetic::write_random_checkpoint(&b32, &ClipConfig::vit_b32(), &tokenizer).unwrap();
    // The same weights with OpenCLIP's exact GELU (LAION's and DataComp's CLIPs).
    let gelu = tmp.path().join("clip-vit-b32-gelu");
    std::fs::create_dir_all(&gelu).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(b32.join(f), gelu.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(b32.join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&config).unwrap();
    for tower in ["text_config", "vision_config"] {
        json[tower]["hidden_act"] = "gelu".into();
    }
    std::fs::write(gelu.join("config.json"), json.to_string()).unwrap();
    let clips = [b32.clone(), gelu.clone()];
    let mut dirs = vec![b32, gelu];
    if let Ok(list) = std::env::var("CLIPSEARCH_BENCH_MODELS") {
        dirs.extend(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    for dir in dirs {
        let files = ModelFiles::local(&dir).unwrap();
        let model = ClipModel::load(&files, Towers::Both).unwrap();
        let name = format!(
            "{} ({}, {} px)",
            dir.file_name().unwrap().to_string_lossy(),
            model.config.family.name(),
            model.config.vision.image_size
        );
        let image = model.image().unwrap();
        let pixels: Vec<f32> = (0..BATCH * image.preprocessor().len())
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect();
        bench_image(c, "f32", &name, image, &pixels);
        if clips.contains(&dir) {
            let int8 = ClipModel::load_with(&files, Towers::Image, Precision::Int8).unwrap();
            bench_image(c, "int8", &name, int8.image().unwrap(), &pixels);
        }
        let text = model.text().unwrap();
        let mut g = c.benchmark_group("one text query");
        g.sample_size(20);
        g.bench_function(&name, |b| {
            b.iter(|| text.embed(&["a photo of a dog on the beach"]).unwrap())
        });
        g.finish();
    }
}

/// One batch of `pixels` through `image`, in the group of its precision.
fn bench_image(
    c: &mut Criterion,
    precision: &str,
    name: &str,
    image: &ImageEncoder,
    pixels: &[f32],
) {
    let mut g = c.benchmark_group(format!("image tower {precision}, batch {BATCH}"));
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(name, |b| {
        b.iter(|| image.features_from_pixels(pixels).unwrap())
    });
    g.finish();
}

criterion_group!(families, benches);
criterion_main!(families);
