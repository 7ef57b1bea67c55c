//! Vector-index benchmarks at 100k x 512 (ViT-B/32's embedding width): exact scan vs HNSW query
//! latency, HNSW build time, and the time to load each kind of snapshot (what every query
//! process pays). One-shot costs are timed once and printed; per-query costs go through
//! criterion. Run: `cargo bench -p clipsearch --bench index`.

use std::time::Instant;

use clipsearch::embedding::normalize;
use clipsearch::index::{ExactIndex, HnswIndex, HnswParams, NearestNeighbours, SearchIndex};
use clipsearch::model::ModelIdentity;
use clipsearch::store::snapshot::VectorSet;
use clipsearch::store::{content_hash, FileRecord, NewEntry, Store};
use criterion::{criterion_group, criterion_main, Criterion};

const N: usize = 100_000;
const DIM: usize = 512;

fn clustered(n: usize, dim: usize) -> VectorSet {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| next()).collect();
            normalize(&mut c);
            c
        })
        .collect();
    let mut set = VectorSet::new(dim);
    for i in 0..n {
        let mut v: Vec<f32> = centres[i % 1000]
            .iter()
            .map(|x| x + 0.08 * next())
            .collect();
        normalize(&mut v);
        set.push(i as u64 + 1, &v);
    }
    set
}

/// An index directory holding `set` (catalog + embeddings) and a snapshot (with `graph` as its
/// HNSW part, if given).
fn store_with(set: &VectorSet, graph: Option<&HnswIndex>) -> (tempfile::TempDir, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Some(&ModelIdentity {
            name: "bench".into(),
            fingerprint: "bench".into(),
            dim: set.dim,
            preprocess_version: 1,
            decode: "exact".into(),
            precision: "f32".into(),
        }),
    )
    .unwrap();
    let entries: Vec<NewEntry> = (0..set.len())
        .map(|i| NewEntry {
            path: format!("/photos/{i:06}.jpg").into(),
            record: FileRecord {
                id: store.new_id().unwrap(),
                size: 1,
                mtime_ns: 0,
                hash: content_hash(&i.to_le_bytes()),
                width: 1,
                height: 1,
            },
            embedding: Some(set.vector(i).to_vec()),
        })
        .collect();
    for chunk in entries.chunks(2000) {
        store.commit(chunk).unwrap();
    }
    let t = Instant::now();
    let dump = graph.map(|g| move |dir: &std::path::Path, name: &str| g.dump_to(dir, name));
    store
        .write_snapshot(
            set,
            dump.as_ref()
                .map(|f| f as &dyn Fn(&std::path::Path, &str) -> clipsearch::Result<String>),
        )
        .unwrap();
    (dir, t.elapsed().as_secs_f64())
}

fn benches(c: &mut Criterion) {
    let set = clustered(N, DIM);
    let queries: Vec<Vec<f32>> = (0..64).map(|i| set.vector(i * 1361 % N).to_vec()).collect();

    let t = Instant::now();
    let hnsw = HnswIndex::build(&set, HnswParams::default());
    println!(
        "HNSW build, {N} x {DIM}: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let exact = ExactIndex::new(set.clone());

    let mut group = c.benchmark_group(format!("query top-10 at {N} x {DIM}"));
    group.sample_size(20);
    let mut i = 0;
    group.bench_function("exact scan", |b| {
        b.iter(|| {
            i += 1;
            exact.search(&queries[i % 64], 10, &|_| true)
        })
    });
    group.bench_function("hnsw", |b| {
        b.iter(|| {
            i += 1;
            hnsw.search(&queries[i % 64], 10, &|_| true)
        })
    });
    group.finish();

    for graph in [None, Some(&hnsw)] {
        let name = if graph.is_some() { "hnsw" } else { "exact" };
        let (dir, write) = store_with(&set, graph);
        println!("snapshot ({name}) write: {write:.1} s");
        let size: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.metadata().unwrap().len())
            .sum();
        println!("snapshot ({name}) files: {:.0} MB", size as f64 / 1e6);
        let mut times = Vec::new();
        for _ in 0..3 {
            let store = Store::open_existing(dir.path()).unwrap();
            let t = Instant::now();
            let index = SearchIndex::load(&store).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(index.len(), N);
        }
        println!("snapshot ({name}) load, {N} vectors: {times:.0?} ms");
    }
}

criterion_group!(index, benches);
criterion_main!(index);
