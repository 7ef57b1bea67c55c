//! candle's CPU matmul for the linear layers of CLIP's towers, with the weight as checkpoints
//! store it (`[out, in]`, so `Linear` multiplies by a column-major view) and as
//! `model::layout` keeps it where gemm runs AVX-512 kernels (`[in, out]` memory). Shapes: a text
//! query (7 tokens, ViT-B/32's 512-wide text tower), one image and a batch of 8 (50 tokens
//! each, the 768-wide image tower), each layer's three shapes (q/k/v/out, MLP up, MLP down).
//!
//! ```text
//! cargo bench -p clipsearch --bench matmul_layouts
//! cargo bench -p clipsearch --bench matmul_layouts --no-default-features   # AVX2/FMA kernels
//! ```

use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn benches(c: &mut Criterion) {
    let dev = Device::Cpu;
    eprintln!(
        "gemm kernels: {}",
        if clipsearch::model::layout::avx512_matmul() {
            "AVX-512"
        } else {
            "AVX2/FMA (or this build has no `avx512`)"
        }
    );
    let shapes = [
        ("text query", 7, 512, 512),
        ("text query", 7, 512, 2048),
        ("text query", 7, 2048, 512),
        ("1 image", 50, 768, 768),
        ("1 image", 50, 768, 3072),
        ("1 image", 50, 3072, 768),
        ("8 images", 400, 768, 768),
        ("8 images", 400, 768, 3072),
        ("8 images", 400, 3072, 768),
    ];
    let mut group = c.benchmark_group("linear");
    for (what, m, k, n) in shapes {
        let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.02, (n, k), &dev).unwrap();
        let checkpoint = candle_nn::Linear::new(w.clone(), None);
        let relaid =
            candle_nn::Linear::new(w.t().unwrap().contiguous().unwrap().t().unwrap(), None);
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let name = format!("{what} {m}x{k} . {k}x{n}");
        group.bench_function(format!("{name} [out,in]"), |b| {
            b.iter(|| checkpoint.forward(&x).unwrap())
        });
        group.bench_function(format!("{name} [in,out]"), |b| {
            b.iter(|| relaid.forward(&x).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = matmul;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(matmul);
