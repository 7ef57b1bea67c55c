//! Engine benchmarks: preprocessing a large JPEG (exact and fast mode), image-tower throughput
//! by batch size (f32 and int8), and the latency of one text query, with a ViT-B/32-shaped model
//! (random weights: speed does not depend on their values). The int8 tower runs with the kernel
//! the CPU has (AMX tiles, else AVX-512 VNNI, else candle's product), with candle's product as
//! before our kernels, and where AMX runs with the VNNI kernel too: ratios side by side.
//! Run: `cargo bench -p clipsearch --bench engine`.

use std::path::Path;

use clipsearch::model::{synthetic, ClipConfig, ClipModel, ModelFiles, Precision, Towers};
use clipsearch::preprocess::{PreprocessConfig, Preprocessor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A 4000x3000 (12 MP) photo-like JPEG: smooth gradients with texture, quality 90.
fn large_jpeg(dir: &Path) -> std::path::PathBuf {
    let (w, h) = (4000u32, 3000u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = ((x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) >> 13) & 31;
        image::Rgb([
            ((x * 255 / w) as u8).wrapping_add(n as u8),
            ((y * 255 / h) as u8).wrapping_add(n as u8),
            (((x + y) / 30) as u8).wrapping_add(n as u8),
        ])
    });
    let path = dir.join("large.jpg");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90)
        .encode_image(&img)
        .unwrap();
    path
}

fn vit_b32(dir: &Path) -> ClipModel {
    let tokenizer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/tokenizer.json");
    synthetic::write_random_checkpoint(dir, &ClipConfig::vit_b32(), &tokenizer).unwrap();
    ClipModel::load(&ModelFiles::local(dir).unwrap(), Towers::Both).unwrap()
}

fn benches(c: &mut Criterion) {
    // As the binary does, before any candle operation (see its doc).
    clipsearch::device::tune_cpu_pools();
    let tmp = tempfile::tempdir().unwrap();
    let jpeg = large_jpeg(tmp.path());
    let pre = Preprocessor::new(PreprocessConfig::clip_default(224));
    let mut g = c.benchmark_group("preprocess");
    g.sample_size(10);
    g.bench_function("decode+resize+crop 4000x3000 JPEG to 224", |b| {
        b.iter(|| pre.load_file(&jpeg).unwrap())
    });
    let rgb = clipsearch::preprocess::decode::decode_file(&jpeg).unwrap();
    g.bench_function("resize+crop only, 4000x3000 to 224", |b| {
        b.iter(|| pre.pixels_to_tensor_data(rgb.as_raw(), 4000, 3000))
    });
    let fast = Preprocessor::fast(PreprocessConfig::clip_default(224));
    g.bench_function("fast mode: decode+resize+crop 4000x3000 JPEG to 224", |b| {
        b.iter(|| fast.load_file(&jpeg).unwrap())
    });
    g.finish();

    let model = vit_b32(&tmp.path().join("vit-b32"));
    let int8 = ClipModel::load_with(
        &ModelFiles::local(&tmp.path().join("vit-b32")).unwrap(),
        Towers::Image,
        Precision::Int8,
    )
    .unwrap();
    // The int8 tower as it ran before our AVX-512 VNNI kernel (candle's Q8_0 product), for the
    // ratio side by side; on CPUs without the kernel both are candle's.
    std::env::set_var("CLIPSEARCH_INT8_KERNEL", "candle");
    let int8_candle = ClipModel::load_with(
        &ModelFiles::local(&tmp.path().join("vit-b32")).unwrap(),
        Towers::Image,
        Precision::Int8,
    )
    .unwrap();
    // Where AMX runs: the VNNI kernel on the same CPU, for the ratio of the two.
    std::env::set_var("CLIPSEARCH_INT8_KERNEL", "vnni");
    let int8_vnni = clipsearch::model::int8::amx_available().then(|| {
        ClipModel::load_with(
            &ModelFiles::local(&tmp.path().join("vit-b32")).unwrap(),
            Towers::Image,
            Precision::Int8,
        )
        .unwrap()
    });
    std::env::remove_var("CLIPSEARCH_INT8_KERNEL");
    let kernel = format!("{:?}", int8.image().unwrap().int8_product().unwrap());
    let one = pre.pixels_to_tensor_data(rgb.as_raw(), 4000, 3000);
    let mut towers = vec![
        ("image tower ViT-B/32".to_string(), model.image().unwrap()),
        (
            format!("image tower ViT-B/32 int8 ({kernel})"),
            int8.image().unwrap(),
        ),
        (
            "image tower ViT-B/32 int8 (candle's Q8_0 product)".to_string(),
            int8_candle.image().unwrap(),
        ),
    ];
    if let Some(vnni) = &int8_vnni {
        towers.push((
            "image tower ViT-B/32 int8 (Vnni, forced)".to_string(),
            vnni.image().unwrap(),
        ));
    }
    for (name, tower) in towers {
        let mut g = c.benchmark_group(name);
        g.sample_size(10);
        for batch in [1usize, 8, 32] {
            let pixels: Vec<f32> = one
                .iter()
                .copied()
                .cycle()
                .take(one.len() * batch)
                .collect();
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_with_input(BenchmarkId::from_parameter(batch), &pixels, |b, p| {
                b.iter(|| tower.embed_pixels(p).unwrap())
            });
        }
        g.finish();
    }

    let text = model.text().unwrap();
    let mut g = c.benchmark_group("text query ViT-B/32");
    g.sample_size(20);
    g.bench_function("\"a photo of a dog on the beach\" (unpadded)", |b| {
        b.iter(|| text.embed(&["a photo of a dog on the beach"]).unwrap())
    });
    let padded: Vec<u32> = {
        let tokenizer = text.clip_tokenizer().expect("a CLIP checkpoint");
        let mut ids = tokenizer.encode("a photo of a dog on the beach").unwrap();
        ids.resize(77, tokenizer.end_id());
        ids
    };
    g.bench_function("same query padded to 77 (what we avoid)", |b| {
        b.iter(|| {
            text.features_from_ids(std::slice::from_ref(&padded))
                .unwrap()
        })
    });
    g.finish();

    // A one-shot query reads tokenizer.json at every process start: our typed reading
    // (src/tokenizer/json.rs) against the tokenizers crate's own parser, same file.
    let tokenizer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/tokenizer.json");
    let mut g = c.benchmark_group("read CLIP's tokenizer.json (49,408 tokens)");
    g.sample_size(10);
    g.bench_function("clipsearch", |b| {
        b.iter(|| clipsearch::tokenizer::ClipTokenizer::from_file(&tokenizer, 77).unwrap())
    });
    g.bench_function("tokenizers::Tokenizer::from_file", |b| {
        b.iter(|| tokenizers::Tokenizer::from_file(&tokenizer).unwrap())
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
