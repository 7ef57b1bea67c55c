//! The int8 image tower (`clipsearch index --fast`) against the f32 one, with the tiny fixture
//! models (CLIP, OpenCLIP) and the bundled demo model, on the fixture photographs.
//!
//! Bound: cosine >= 0.999 between the int8 and the f32 embedding of every image (observed with
//! our AVX-512 VNNI kernel and with our AVX2 kernel, which compute the same integers: at least
//! 0.99987 over the three models, an eighth of the bound's 1 - cos; with candle's `Q8_0` product:
//! at least 0.99990). CI runs this also under an emulated AVX2-only CPU. Each kernel is tested
//! against a scalar product of the same quantized operands in `src/model/int8/tests.rs`. Whole fast mode (scaled
//! decoding and this tower) is held, relative to how far apart the images are, in
//! `tests/fast_decode.rs`. Exact mode is untouched: the parity tests hold it to the reference.

use std::path::Path;

use clipsearch::embedding::dot;
use clipsearch::model::{resolve, ClipModel, ModelFiles, Precision, Towers};

const BOUND: f32 = 0.999;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The product the int8 tower runs: AMX tiles where the CPU has them, else our VNNI kernel, else
/// our AVX2 kernel (the fast-mode figures are these kernels'), candle's elsewhere or when asked
/// for (`CLIPSEARCH_INT8_KERNEL`). With `CLIPSEARCH_REQUIRE_AMX=1` / `_VNNI=1` / `_AVX2=1` (CI on
/// a CPU with the feature) that kernel must run, so a dispatch that stopped choosing it fails.
#[test]
fn the_fast_tower_runs_the_kernel_the_cpu_has() {
    use clipsearch::model::int8;
    use clipsearch::model::vision::Int8Product;
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo");
    let files = resolve(demo.to_str().unwrap()).unwrap();
    let model = ClipModel::load_with(&files, Towers::Image, Precision::Int8).unwrap();
    let product = model.image().unwrap().int8_product();
    let asked = std::env::var("CLIPSEARCH_INT8_KERNEL").ok();
    let want = match asked.as_deref() {
        Some("candle") => Int8Product::Candle,
        Some("vnni") if int8::available() => Int8Product::Vnni,
        Some("avx2") if int8::avx2_available() => Int8Product::Avx2,
        _ if int8::amx_available() => Int8Product::Amx,
        _ if int8::available() => Int8Product::Vnni,
        _ if int8::avx2_available() => Int8Product::Avx2,
        _ => Int8Product::Candle,
    };
    assert_eq!(product, Some(want));
    let required = |var: &str| std::env::var(var).as_deref() == Ok("1");
    let any = ["AMX", "VNNI", "AVX2"].map(|f| required(&format!("CLIPSEARCH_REQUIRE_{f}")));
    if any.contains(&true) {
        assert!(
            asked.is_none(),
            "a kernel is required, and CLIPSEARCH_INT8_KERNEL={asked:?}"
        );
    }
    if required("CLIPSEARCH_REQUIRE_AMX") {
        assert_eq!(product, Some(Int8Product::Amx), "AMX is required here");
    } else if required("CLIPSEARCH_REQUIRE_VNNI") {
        // A CPU with AMX has VNNI too: either of our kernels, never candle's.
        assert_ne!(
            product,
            Some(Int8Product::Candle),
            "our kernel is required here"
        );
    }
    let f32_tower = ClipModel::load_with(&files, Towers::Image, Precision::F32).unwrap();
    assert_eq!(f32_tower.image().unwrap().int8_product(), None);
}

fn check(files: &ModelFiles) {
    let exact = ClipModel::load_with(files, Towers::Image, Precision::F32).unwrap();
    let int8 = ClipModel::load_with(files, Towers::Image, Precision::Int8).unwrap();
    assert_eq!(exact.image().unwrap().precision(), Precision::F32);
    assert_eq!(int8.image().unwrap().precision(), Precision::Int8);
    // The index records which arithmetic filled it.
    assert_eq!(exact.identity.precision, "f32");
    assert_eq!(int8.identity.precision, "int8");
    assert_eq!(exact.identity.fingerprint, int8.identity.fingerprint);

    let dir = fixtures().join("reference/images");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let pre = exact.image().unwrap().preprocessor();
    let mut pixels = Vec::new();
    for p in &names {
        pixels.extend(pre.load_file(p).unwrap());
    }
    // One batch of all images: batching must not matter either.
    let a = exact.image().unwrap().embed_pixels(&pixels).unwrap();
    let b = int8.image().unwrap().embed_pixels(&pixels).unwrap();
    let mut different = false;
    for ((p, x), y) in names.iter().zip(&a).zip(&b) {
        let cos = dot(x, y);
        eprintln!("{}: {}: cosine {cos}", files.name, p.display());
        assert!(cos >= BOUND, "{}: cosine {cos} < {BOUND}", p.display());
        different |= x != y;
    }
    assert!(
        different,
        "int8 embeddings are bit-identical: not quantized"
    );
    let single = int8
        .image()
        .unwrap()
        .embed_pixels(&pixels[..pre.len()])
        .unwrap();
    assert!(dot(&single[0], &b[0]) > 0.99999, "batch of one vs batch");
}

#[test]
fn int8_tower_of_the_tiny_model_stays_within_the_bound() {
    check(&ModelFiles::local(&fixtures().join("tiny-clip")).unwrap());
}

#[test]
fn int8_tower_of_the_demo_model_stays_within_the_bound() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo");
    check(&resolve(demo.to_str().unwrap()).unwrap());
}

#[test]
fn int8_tower_of_an_openclip_gelu_model_stays_within_the_bound() {
    // OpenCLIP's layout and the exact GELU (LAION's and DataComp's CLIPs).
    check(&ModelFiles::local(&fixtures().join("tiny-openclip")).unwrap());
}
