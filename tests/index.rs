//! The vector index: each implementation of `NearestNeighbours` against the same expectations,
//! HNSW recall against exact search, and persistence through the sled snapshot.

use clipsearch::embedding::normalize;
use clipsearch::index::{
    rebuild_snapshot, ExactIndex, HnswIndex, HnswParams, NearestNeighbours, SearchIndex,
};
use clipsearch::model::ModelIdentity;
use clipsearch::store::snapshot::VectorSet;
use clipsearch::store::{content_hash, FileRecord, NewEntry, Store};

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| self.next()).collect();
        normalize(&mut v);
        v
    }
}

/// `n` unit vectors in `clusters` tight-ish clusters, as photo embeddings are.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> VectorSet {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.unit(dim)).collect();
    let mut set = VectorSet::new(dim);
    for i in 0..n {
        let c = &centres[i % clusters];
        let mut v: Vec<f32> = c
            .iter()
            .map(|x| x + 0.35 * rng.next() / (dim as f32).sqrt() * 4.0)
            .collect();
        normalize(&mut v);
        set.push(1000 + i as u64, &v);
    }
    set
}

fn implementations(set: &VectorSet) -> Vec<(&'static str, Box<dyn NearestNeighbours>)> {
    vec![
        (
            "exact",
            Box::new(ExactIndex::new(set.clone())) as Box<dyn NearestNeighbours>,
        ),
        (
            "hnsw",
            Box::new(HnswIndex::build(set, HnswParams::default())),
        ),
    ]
}

#[test]
fn every_implementation_finds_a_stored_vector_first_and_honours_filters() {
    let set = clustered(2000, 64, 20, 7);
    for (name, index) in implementations(&set) {
        assert_eq!(index.len(), 2000, "{name}");
        for probe in [0usize, 17, 1999] {
            let hits = index.search(set.vector(probe), 5, &|_| true);
            assert_eq!(hits.len(), 5, "{name}");
            if name == "exact" {
                assert_eq!(hits[0].id, set.ids[probe], "{name}: itself first");
            } else {
                // Approximate: the graph is built in parallel and can, rarely, rank a
                // near-identical neighbour first; the point itself must be among the top 5.
                assert!(
                    hits.iter().any(|h| h.id == set.ids[probe]),
                    "{name}: itself found"
                );
            }
            assert!(hits[0].score > 0.99, "{name}: {}", hits[0].score);
            assert!(
                hits.windows(2).all(|w| w[0].score >= w[1].score),
                "{name}: sorted"
            );
        }
        let odd_only = index.search(set.vector(0), 10, &|id| id % 2 == 1);
        assert!(!odd_only.is_empty(), "{name}");
        assert!(
            odd_only.iter().all(|h| h.id % 2 == 1),
            "{name}: filter honoured"
        );
        assert!(
            index.search(set.vector(0), 0, &|_| true).is_empty(),
            "{name}: k = 0"
        );
    }
}

/// The bound: HNSW with default parameters must return at least 95% of the exact top 10,
/// averaged over 200 queries on 10k clustered 128-d vectors.
#[test]
fn hnsw_recall_at_10_is_at_least_0_95() {
    const BOUND: f64 = 0.95;
    let set = clustered(10_000, 128, 100, 42);
    let exact = ExactIndex::new(set.clone());
    let hnsw = HnswIndex::build(&set, HnswParams::default());
    let mut rng = Rng(99);
    let (mut found, mut total) = (0usize, 0usize);
    for q in 0..200 {
        // Queries near the data, not on it.
        let base = set.vector((q * 97) % set.len());
        let mut v: Vec<f32> = base.iter().map(|x| x + 0.05 * rng.next()).collect();
        normalize(&mut v);
        let truth: Vec<u64> = exact
            .search(&v, 10, &|_| true)
            .iter()
            .map(|h| h.id)
            .collect();
        let got: Vec<u64> = hnsw
            .search(&v, 10, &|_| true)
            .iter()
            .map(|h| h.id)
            .collect();
        found += got.iter().filter(|id| truth.contains(id)).count();
        total += truth.len();
    }
    let recall = found as f64 / total as f64;
    eprintln!("HNSW recall@10 = {recall:.4}");
    assert!(recall >= BOUND, "recall@10 {recall} < {BOUND}");
}

fn identity(dim: usize) -> ModelIdentity {
    ModelIdentity {
        name: "test".into(),
        fingerprint: "f".into(),
        dim,
        preprocess_version: 1,
        decode: "exact".into(),
        precision: "f32".into(),
    }
}

fn fill(store: &Store, set: &VectorSet) -> Vec<u64> {
    let mut ids = Vec::new();
    let entries: Vec<NewEntry> = (0..set.len())
        .map(|i| {
            let id = store.new_id().unwrap();
            ids.push(id);
            let v = set.vector(i).to_vec();
            NewEntry {
                path: format!("/photos/{i:05}.jpg").into(),
                record: FileRecord {
                    id,
                    size: 1,
                    mtime_ns: 0,
                    hash: content_hash(format!("{i}").as_bytes()),
                    width: 1,
                    height: 1,
                },
                embedding: Some(v),
            }
        })
        .collect();
    for chunk in entries.chunks(500) {
        store.commit(chunk).unwrap();
    }
    ids
}

#[test]
fn persisted_hnsw_reloads_and_answers_without_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let set = clustered(3000, 32, 30, 5);
    let probe = set.vector(123).to_vec();
    let (before, id123) = {
        let store = Store::open(dir.path(), Some(&identity(32))).unwrap();
        let ids = fill(&store, &set);
        // Threshold 1: force a graph even for this small set.
        let info = rebuild_snapshot(&store, 32, 1).unwrap();
        assert!(info.hnsw.is_some());
        assert_eq!(info.count, 3000);
        let index = SearchIndex::load(&store).unwrap();
        (
            index.search(&store, &probe, 10, &|_| true).unwrap(),
            ids[123],
        )
    };
    assert!(before.iter().any(|h| h.id == id123), "{before:?}");
    // A new process: the graph comes from sled, nothing is re-inserted.
    let store = Store::open(dir.path(), Some(&identity(32))).unwrap();
    let index = SearchIndex::load(&store).unwrap();
    assert_eq!(index.len(), 3000);
    let after = index.search(&store, &probe, 10, &|_| true).unwrap();
    assert_eq!(before, after, "reloaded graph answers the same");

    // A removed file disappears from results even before the next snapshot.
    store
        .remove_file(std::path::Path::new("/photos/00123.jpg"))
        .unwrap();
    let hits = index.search(&store, &probe, 10, &|_| true).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.id != id123));

    // The next snapshot extends the stored graph with a new file instead of rebuilding it.
    let v = Rng(77).unit(32);
    let new_id = store.new_id().unwrap();
    store
        .commit(&[NewEntry {
            path: "/photos/new.jpg".into(),
            record: FileRecord {
                id: new_id,
                size: 1,
                mtime_ns: 0,
                hash: content_hash(b"new"),
                width: 1,
                height: 1,
            },
            embedding: Some(v.clone()),
        }])
        .unwrap();
    let info = rebuild_snapshot(&store, 32, 1).unwrap();
    assert!(info.hnsw.is_some());
    assert_eq!(info.count, 3000, "one removed, one added");
    let index = SearchIndex::load(&store).unwrap();
    // Extended, not rebuilt: the removed point is still in the graph (3001 points), filtered.
    assert_eq!(index.len(), 3001);
    // (HNSW is approximate: the new point must be among the top 10 for itself.)
    let near_v = index.search(&store, &v, 10, &|_| true).unwrap();
    assert!(near_v.iter().any(|h| h.id == new_id), "{near_v:?}");
    let hits = index.search(&store, &probe, 10, &|_| true).unwrap();
    assert!(
        hits.iter().all(|h| h.id != id123),
        "the removed point stays filtered"
    );
}

#[test]
fn files_committed_after_the_snapshot_are_searched_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(&identity(16))).unwrap();
    let first = clustered(50, 16, 5, 1);
    fill(&store, &first);
    rebuild_snapshot(&store, 16, usize::MAX).unwrap();
    // As if a run was killed after committing more files but before its snapshot.
    let mut late = VectorSet::new(16);
    let v = Rng(3).unit(16);
    late.push(0, &v);
    let id = store.new_id().unwrap();
    store
        .commit(&[NewEntry {
            path: "/photos/late.jpg".into(),
            record: FileRecord {
                id,
                size: 1,
                mtime_ns: 0,
                hash: content_hash(b"late"),
                width: 1,
                height: 1,
            },
            embedding: Some(v.clone()),
        }])
        .unwrap();
    let index = SearchIndex::load(&store).unwrap();
    assert_eq!(index.len(), 51);
    let hits = index.search(&store, &v, 1, &|_| true).unwrap();
    assert_eq!(hits[0].id, id);
}

#[test]
fn another_model_or_a_newer_format_is_refused_with_guidance() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Some(&identity(16))).unwrap());
    let mut other = identity(32);
    other.fingerprint = "g".into();
    other.name = "openai/clip-vit-large-patch14".into();
    let msg = Store::open(dir.path(), Some(&other))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("--rebuild") && msg.contains("--model test"),
        "{msg}"
    );
}

/// Not a test on its own: the child process of `a_second_process_gets_a_busy_message`.
#[test]
fn hold_index_when_asked() {
    if let Ok(dir) = std::env::var("CLIPSEARCH_TEST_HOLD") {
        let _held = Store::open(std::path::Path::new(&dir), None).unwrap();
        println!("holding");
        std::thread::sleep(std::time::Duration::from_secs(20));
    }
}

#[test]
fn a_second_process_gets_a_busy_message() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_index_when_asked",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CLIPSEARCH_TEST_HOLD", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    while !line.contains("holding") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
    }
    let msg = Store::open(dir.path(), None).err().map(|e| e.to_string());
    child.kill().unwrap();
    child.wait().unwrap();
    let msg = msg.expect("the index was opened twice");
    assert!(msg.contains("in use by process"), "{msg}");
    assert!(
        msg.contains(&child.id().to_string()),
        "names the holder: {msg}"
    );
    assert!(
        msg.contains("hold_index_when_asked"),
        "names its command: {msg}"
    );
    // Once the holder is gone, the index opens.
    assert!(Store::open(dir.path(), None).is_ok());
}
