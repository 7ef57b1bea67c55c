//! Shared by the benchmarks: a synthetic index of N random unit vectors under fake paths, as
//! large as wanted without embedding anything.
#![allow(dead_code)]

use std::path::Path;

use clipsearch::embedding::normalize;
use clipsearch::model::{synthetic, ClipConfig, ModelFiles, ModelIdentity};

/// A ViT-B/32-shaped checkpoint with random weights (speed does not depend on their values),
/// written under `dir`.
pub fn vit_b32(dir: &Path) -> ModelFiles {
    let model_dir = dir.join("vit-b32");
    let tokenizer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-clip/tokenizer.json");
    synthetic::write_random_checkpoint(&model_dir, &ClipConfig::vit_b32(), &tokenizer).unwrap();
    ModelFiles::local(&model_dir).unwrap()
}
use clipsearch::store::{content_hash, FileRecord, NewEntry, Store};

/// Fills a new index at `dir` with `n` vectors (paths `/photos/DDD/NNNNNN.jpg`, which do not
/// exist) for `model`, with an HNSW graph in its published view if `hnsw`.
pub fn build_index(dir: &Path, model: &ModelFiles, n: usize, hnsw: bool) {
    let identity = ModelIdentity::of(model).unwrap();
    let store = Store::open(dir, Some(&identity)).unwrap();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut entries = Vec::with_capacity(2000);
    for i in 0..n {
        let mut v: Vec<f32> = (0..identity.dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        normalize(&mut v);
        entries.push(NewEntry {
            path: format!("/photos/{:03}/{i:06}.jpg", i % 997).into(),
            record: FileRecord {
                id: store.new_id().unwrap(),
                size: 1,
                mtime_ns: 0,
                hash: content_hash(&i.to_le_bytes()),
                width: 1,
                height: 1,
                raw: None,
                meta: None,
            },
            embedding: Some(v),
        });
        if entries.len() == 2000 {
            store.commit(&entries).unwrap();
            entries.clear();
        }
    }
    let threshold = if hnsw { 1 } else { usize::MAX };
    clipsearch::index::publish(&store, clipsearch::index::GraphPolicy::Update { threshold })
        .unwrap();
}
