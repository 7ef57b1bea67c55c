//! Where a query process spends its start-up: `cargo run --release --example latency_probe DIR`
//! builds a 100k x 512 synthetic index in DIR (once), then times opening it and loading the
//! search snapshot.
use std::time::Instant;

use clipsearch::embedding::normalize;
use clipsearch::index::SearchIndex;
use clipsearch::model::ModelIdentity;
use clipsearch::store::{content_hash, FileRecord, NewEntry, Store};

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("DIR"));
    if !dir.join("db").exists() {
        let id = ModelIdentity {
            name: "probe".into(),
            fingerprint: "probe".into(),
            dim: 512,
            preprocess_version: 1,
            decode: "exact".into(),
        };
        let store = Store::open(&dir, Some(&id)).unwrap();
        let mut s = 88172645463325252u64;
        let mut batch = Vec::new();
        for i in 0..100_000usize {
            let mut v: Vec<f32> = (0..512)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / 16777216.0 - 0.5
                })
                .collect();
            normalize(&mut v);
            batch.push(NewEntry {
                path: format!("/p/{i:06}.jpg").into(),
                record: FileRecord {
                    id: store.new_id().unwrap(),
                    size: 1,
                    mtime_ns: 0,
                    hash: content_hash(&i.to_le_bytes()),
                    width: 1,
                    height: 1,
                },
                embedding: Some(v),
            });
            if batch.len() == 2000 {
                store.commit(&batch).unwrap();
                batch.clear();
            }
        }
        clipsearch::index::rebuild_snapshot(&store, 512, usize::MAX).unwrap();
    }
    for _ in 0..3 {
        let t = Instant::now();
        let store = Store::open_existing(&dir).unwrap();
        let open = t.elapsed();
        let t = Instant::now();
        let info = store.snapshot_info().unwrap().unwrap();
        let raw = store.load_vectors(&info).unwrap();
        let read = t.elapsed();
        drop(raw);
        let t = Instant::now();
        let index = SearchIndex::load(&store).unwrap();
        let load = t.elapsed();
        println!(
            "open {open:?}, read vector part {read:?}, SearchIndex::load {load:?} ({} vectors)",
            index.len()
        );
    }
}
