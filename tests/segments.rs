//! Views made of segments: publications that write what changed, background merges, deleted
//! rows, and vectors that live in the segments only. Every test here runs with
//! `CLIPSEARCH_SEGMENT_ROWS=64`, so that a few hundred files make sealed segments, tiers and
//! merges that a real library reaches at tens of thousands.
//!
//! The reference is a plain map of what the catalog should hold: after every publication the
//! view must hold exactly that (paths, records, vectors, path order, search), sled must find
//! every live file's vector, and no file on disk may be one the manifest does not name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clipsearch::embedding::normalize;
use clipsearch::index::{publish, publish_and_settle, tail_rows, SearchIndex};
use clipsearch::model::ModelIdentity;
use clipsearch::store::view::read_manifest;
use clipsearch::store::{content_hash, ContentHash, FileRecord, NewEntry, Store};

const ROWS: usize = 64;

fn small_segments() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("CLIPSEARCH_SEGMENT_ROWS", ROWS.to_string()));
    assert_eq!(tail_rows(), ROWS, "set before any publication reads it");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            .collect();
        normalize(&mut v);
        v
    }
}

fn identity(dim: usize) -> ModelIdentity {
    ModelIdentity {
        name: "test".into(),
        fingerprint: "f".into(),
        legacy_fingerprint: None,
        dim,
        preprocess_version: 1,
        decode: "exact".into(),
        precision: "f32".into(),
        family: "clip".into(),
    }
}

/// What the catalog should hold: path -> (content, vector).
#[derive(Default)]
struct Expected {
    files: BTreeMap<PathBuf, (ContentHash, Vec<f32>)>,
    next_content: u64,
}

impl Expected {
    fn record(store: &Store, hash: ContentHash) -> FileRecord {
        FileRecord {
            id: store.new_id().unwrap(),
            size: 1,
            mtime_ns: 0,
            hash,
            width: 1,
            height: 1,
            raw: None,
            meta: None,
        }
    }

    /// New files with new content.
    fn add(&mut self, store: &Store, rng: &mut Rng, n: usize, dim: usize) {
        let entries: Vec<NewEntry> = (0..n)
            .map(|_| {
                self.next_content += 1;
                let hash = content_hash(&self.next_content.to_le_bytes());
                let v = rng.unit(dim);
                let path = PathBuf::from(format!(
                    "/p/{}/{:06}.jpg",
                    ["a", "b", "c"][rng.below(3)],
                    self.next_content
                ));
                self.files.insert(path.clone(), (hash, v.clone()));
                NewEntry {
                    path,
                    record: Self::record(store, hash),
                    embedding: Some(v),
                }
            })
            .collect();
        store.commit(&entries).unwrap();
    }

    fn pick(&self, rng: &mut Rng) -> Option<PathBuf> {
        (!self.files.is_empty()).then(|| {
            let i = rng.below(self.files.len());
            self.files.keys().nth(i).unwrap().clone()
        })
    }

    /// One random change: a removal, a move (new path first or old path gone first), a
    /// duplicate, a changed file, or new metadata.
    fn change(&mut self, store: &Store, rng: &mut Rng, dim: usize) {
        let Some(path) = self.pick(rng) else {
            return;
        };
        let (hash, v) = self.files[&path].clone();
        let elsewhere = PathBuf::from(format!("/p/moved/{}-{}", rng.next() % 1000, rng.next()));
        let reuse = |at: &Path| NewEntry {
            path: at.to_path_buf(),
            record: Self::record(store, hash),
            embedding: None,
        };
        match rng.below(6) {
            0 => {
                store.remove_file(&path).unwrap();
                self.files.remove(&path);
            }
            1 => {
                assert!(
                    store.has_embedding(&hash).unwrap(),
                    "a moved file's vector is found"
                );
                store.commit(&[reuse(&elsewhere)]).unwrap();
                store.remove_file(&path).unwrap();
                self.files.remove(&path);
                self.files.insert(elsewhere, (hash, v));
            }
            2 => {
                store.remove_file(&path).unwrap();
                assert!(store.has_embedding(&hash).unwrap());
                store.commit(&[reuse(&elsewhere)]).unwrap();
                self.files.remove(&path);
                self.files.insert(elsewhere, (hash, v));
            }
            3 => {
                store.commit(&[reuse(&elsewhere)]).unwrap();
                self.files.insert(elsewhere, (hash, v));
            }
            4 => {
                self.next_content += 1;
                let hash = content_hash(&self.next_content.to_le_bytes());
                let v = rng.unit(dim);
                store
                    .commit(&[NewEntry {
                        path: path.clone(),
                        record: Self::record(store, hash),
                        embedding: Some(v.clone()),
                    }])
                    .unwrap();
                self.files.insert(path, (hash, v));
            }
            _ => {
                let meta = clipsearch::metadata::PhotoMeta {
                    make: Some(format!("cam{}", rng.below(5))),
                    ..Default::default()
                };
                assert!(store.set_meta(&path, meta).unwrap());
            }
        }
    }

    /// The published view holds exactly what is expected, and the store finds every vector.
    fn check(&self, store: &Store, dir: &Path) {
        let index = SearchIndex::open(dir).unwrap();
        let view = index.view();
        assert_eq!(view.len(), self.files.len());
        for (path, (hash, v)) in &self.files {
            let row = view
                .row_of_path(path)
                .unwrap_or_else(|| panic!("{path:?} in the view"));
            let rec = view.record(row);
            assert_eq!(&rec.hash, hash);
            assert_eq!(view.vector(row), v.as_slice(), "{path:?}");
            assert_eq!(view.row_of_id(rec.id), Some(row));
            assert_eq!(store.file(path).unwrap().unwrap(), rec);
            assert_eq!(
                store.embedding(hash).unwrap().as_deref(),
                Some(v.as_slice())
            );
        }
        assert!(
            (1..view.len()).all(|r| view.id(r - 1) < view.id(r)),
            "id order"
        );
        let by_path: Vec<PathBuf> = view
            .rows_by_path()
            .into_iter()
            .map(|r| view.path(r).to_path_buf())
            .collect();
        assert_eq!(by_path, self.files.keys().cloned().collect::<Vec<_>>());
        let under_b = self.files.keys().filter(|p| p.starts_with("/p/b")).count();
        assert_eq!(view.rows_under(Path::new("/p/b")).len(), under_b);
        // Search sees each live vector once at its row (duplicates share a vector).
        for (path, (_, v)) in self.files.iter().step_by(7) {
            let hits = index.search(v, 3);
            assert!(
                (hits[0].score - 1.0).abs() < 1e-5,
                "{path:?}: {:?}",
                hits[0]
            );
            let hit_paths: Vec<&Path> = hits
                .iter()
                .map(|h| view.path(view.row_of_id(h.id).expect("a hit is a live row")))
                .collect();
            let same: Vec<_> = hits
                .iter()
                .filter(|h| (h.score - 1.0).abs() < 1e-5)
                .collect();
            assert!(same.len() > 1 || hit_paths[0] == path.as_path());
        }
        // Nothing on disk that the view in force does not name (a running merge's output
        // aside, which has its own name).
        let m = read_manifest(dir).unwrap().unwrap();
        let named = m.files();
        assert_eq!(
            m.segments.iter().map(|s| s.rows).sum::<usize>()
                - m.deleted.as_ref().map_or(0, |d| d.count),
            self.files.len()
        );
        let mut logs = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with("deleted-") {
                assert!(named.contains(&name), "{name} is not named by the manifest");
            }
            logs += usize::from(name.starts_with("pending-"));
        }
        // Vectors pass through one pending log at most, gone once none is pending.
        assert!(logs <= 1, "{logs} pending logs");
        if store.pending_embeddings() == 0 {
            assert_eq!(logs, 0, "a log with nothing pending");
        }
    }
}

#[test]
fn publications_write_what_changed_and_the_view_always_holds_the_catalog() {
    small_segments();
    let dir = tempfile::tempdir().unwrap();
    let dim = 24;
    let mut store = Store::open(dir.path(), Some(&identity(dim))).unwrap();
    let mut rng = Rng(0x5eed);
    let mut expected = Expected::default();
    let mut max_segments = 0;
    for round in 0..60 {
        let n = rng.below(40) + 1;
        expected.add(&store, &mut rng, n, dim);
        for _ in 0..rng.below(12) {
            expected.change(&store, &mut rng, dim);
        }
        let before = read_manifest(dir.path()).unwrap();
        let m = publish(&store).unwrap().unwrap();
        max_segments = max_segments.max(m.segments.len());
        // A publication rewrites at most the small tail with the new files; what was sealed
        // stays as it was unless a merge replaced it.
        if let Some(before) = before {
            let sealed: Vec<_> = before.segments.iter().filter(|s| s.rows >= ROWS).collect();
            let kept = sealed.iter().filter(|s| m.segments.contains(s)).count();
            assert!(
                kept + 8 >= sealed.len(),
                "round {round}: {kept} of {}",
                sealed.len()
            );
        }
        expected.check(&store, dir.path());
        if round % 20 == 19 {
            // A new writer process: sled's records of where vectors are survive.
            drop(store);
            store = Store::open(dir.path(), Some(&identity(dim))).unwrap();
            expected.check(&store, dir.path());
        }
    }
    println!("up to {max_segments} segments");
    assert!(
        max_segments > 3,
        "the test reached several segments ({max_segments})"
    );
    let m = publish_and_settle(&store).unwrap().unwrap();
    expected.check(&store, dir.path());
    // Settled: no sealed segment keeps a quarter of deleted rows, and the tiers stay few.
    let index = SearchIndex::open(dir.path()).unwrap();
    let view = index.view();
    for p in view.parts() {
        let dead = p.segment.len() - p.len();
        assert!(
            (dead as f64) < 0.25 * p.segment.len() as f64 || p.segment.len() < ROWS,
            "{dead} of {} deleted",
            p.segment.len()
        );
    }
    println!(
        "settled: {} segments of {:?} rows, {} pending",
        m.segments.len(),
        m.segments.iter().map(|s| s.rows).collect::<Vec<_>>(),
        store.pending_embeddings()
    );
    assert!(m.segments.len() <= 12, "{} segments", m.segments.len());
    // One copy of the vectors: sled keeps only those whose rows a merge dropped while a
    // duplicate held them, never the published ones wholesale.
    assert!(
        store.pending_embeddings() * 50 <= expected.files.len(),
        "{} vectors still in sled for {} files",
        store.pending_embeddings(),
        expected.files.len()
    );
}

#[test]
fn an_index_rebuilt_or_of_the_older_format_is_published_afresh() {
    small_segments();
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let store = Store::open(dir.path(), Some(&identity(dim))).unwrap();
    let mut rng = Rng(7);
    let mut expected = Expected::default();
    for _ in 0..5 {
        expected.add(&store, &mut rng, 50, dim);
        publish(&store).unwrap();
    }
    assert!(read_manifest(dir.path()).unwrap().unwrap().segments.len() > 1);
    // --rebuild: everything forgotten, the next publication is one segment of what follows.
    store.clear(&identity(dim)).unwrap();
    let mut expected = Expected::default();
    expected.add(&store, &mut rng, 30, dim);
    let m = publish(&store).unwrap().unwrap();
    assert_eq!(m.segments.len(), 1);
    assert_eq!(m.count, 30);
    expected.check(&store, dir.path());
    let views = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with("view-")
        })
        .count();
    assert_eq!(views, 1, "the old segments are gone");
}

/// Through the codes, a view of many segments (each scanned against its own mean, with its
/// share of the candidates) recalls the exact top 10 as one segment does: at least 95% for 100
/// held-out queries (observed: 1.000).
#[test]
fn a_view_of_many_segments_searched_through_its_codes_recalls_the_exact_top_10() {
    small_segments();
    const BOUND: f64 = 0.95;
    let dir = tempfile::tempdir().unwrap();
    let dim = 256;
    let store = Store::open(dir.path(), Some(&identity(dim))).unwrap();
    let mut rng = Rng(11);
    let mut expected = Expected::default();
    let centres: Vec<Vec<f32>> = (0..40).map(|_| rng.unit(dim)).collect();
    for batch in 0..40 {
        let entries: Vec<NewEntry> = (0..100)
            .map(|i| {
                expected.next_content += 1;
                let hash = content_hash(&expected.next_content.to_le_bytes());
                let c = &centres[(batch * 100 + i) % centres.len()];
                let noise = rng.unit(dim);
                let mut v: Vec<f32> = c.iter().zip(&noise).map(|(a, b)| a + 0.6 * b).collect();
                normalize(&mut v);
                let path = PathBuf::from(format!("/p/a/{:06}.jpg", expected.next_content));
                expected.files.insert(path.clone(), (hash, v.clone()));
                NewEntry {
                    path,
                    record: Expected::record(&store, hash),
                    embedding: Some(v),
                }
            })
            .collect();
        store.commit(&entries).unwrap();
        for _ in 0..5 {
            expected.change(&store, &mut rng, dim);
        }
        publish(&store).unwrap();
    }
    let m = publish(&store).unwrap().unwrap();
    assert!(m.segments.len() >= 3, "{} segments", m.segments.len());
    assert!(m.deleted.is_some(), "some rows are deleted");
    let coded = SearchIndex::open(dir.path()).unwrap().with_scan(100, 100);
    assert!(coded.uses_codes(coded.len()));
    let exact = SearchIndex::open(dir.path())
        .unwrap()
        .with_scan(usize::MAX, 0);
    let (mut found, mut total) = (0, 0);
    for q in 0..100 {
        let c = &centres[q % centres.len()];
        let noise = rng.unit(dim);
        let mut v: Vec<f32> = c.iter().zip(&noise).map(|(a, b)| a + 0.6 * b).collect();
        normalize(&mut v);
        let truth: Vec<u64> = exact.search(&v, 10).iter().map(|h| h.id).collect();
        let got = coded.search(&v, 10);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|h| h.score.is_finite()));
        found += got.iter().filter(|h| truth.contains(&h.id)).count();
        total += truth.len();
    }
    let recall = found as f64 / total as f64;
    println!("recall@10 over {} segments: {recall:.4}", m.segments.len());
    assert!(recall >= BOUND, "recall@10 {recall:.4} < {BOUND}");
}

/// The candidates are chosen by one cut-off over every segment's codes: a small segment added
/// last that holds the whole answer (a folder of near-identical shots, say) gives all of it,
/// although it is a small share of the view's rows.
#[test]
fn the_answer_held_by_one_small_segment_is_found_whole() {
    small_segments();
    let dir = tempfile::tempdir().unwrap();
    let dim = 256;
    let store = Store::open(dir.path(), Some(&identity(dim))).unwrap();
    let mut rng = Rng(23);
    let centres: Vec<Vec<f32>> = (0..30).map(|_| rng.unit(dim)).collect();
    let mut n = 0u64;
    let mut entry = |store: &Store, centre: &[f32], spread: f32, rng: &mut Rng| {
        n += 1;
        let hash = content_hash(&n.to_le_bytes());
        let noise = rng.unit(dim);
        let mut v: Vec<f32> = centre
            .iter()
            .zip(&noise)
            .map(|(a, b)| a + spread * b)
            .collect();
        normalize(&mut v);
        NewEntry {
            path: PathBuf::from(format!("/p/{n:06}.jpg")),
            record: Expected::record(store, hash),
            embedding: Some(v),
        }
    };
    for batch in 0..30 {
        let entries: Vec<NewEntry> = (0..100)
            .map(|i| entry(&store, &centres[(batch + i) % 30], 0.6, &mut rng))
            .collect();
        store.commit(&entries).unwrap();
        publish(&store).unwrap();
    }
    let shots = rng.unit(dim);
    let entries: Vec<NewEntry> = (0..250)
        .map(|_| entry(&store, &shots, 0.3, &mut rng))
        .collect();
    store.commit(&entries).unwrap();
    let m = publish_and_settle(&store).unwrap().unwrap();
    assert!(m.segments.len() >= 3, "{} segments", m.segments.len());
    // At 5 results a segment of more than 200 rows is searched through its codes, and 200
    // candidates are rescored in all: the shots' segment must give them.
    let coded = SearchIndex::open(dir.path()).unwrap().with_scan(100, 100);
    let exact = SearchIndex::open(dir.path())
        .unwrap()
        .with_scan(usize::MAX, 0);
    let shot_ids: Vec<u64> = entries.iter().map(|e| e.record.id).collect();
    let (mut found, mut total) = (0, 0);
    for _ in 0..50 {
        let noise = rng.unit(dim);
        let mut q: Vec<f32> = shots.iter().zip(&noise).map(|(a, b)| a + 0.3 * b).collect();
        normalize(&mut q);
        let truth: Vec<u64> = exact.search(&q, 5).iter().map(|h| h.id).collect();
        assert!(truth.iter().all(|id| shot_ids.contains(id)));
        let got = coded.search(&q, 5);
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|h| shot_ids.contains(&h.id)), "only shots");
        found += got.iter().filter(|h| truth.contains(&h.id)).count();
        total += truth.len();
    }
    // Within one tight cluster the codes order candidates least well (the hardest case
    // for them): 200 of the 250 shots are rescored.
    let recall = found as f64 / total as f64;
    println!("recall@5 within the small segment's cluster: {recall:.4}");
    assert!(
        recall >= 0.85,
        "recall@5 {recall:.4} over {} segments",
        m.segments.len()
    );
}

/// A segment file deleted by hand loses only its files' vectors: the next publication serves
/// what remains and takes the lost files out of the catalog, so that the next index run embeds
/// them again (rather than the view lacking them while the catalog says they are indexed).
#[test]
fn a_missing_segment_costs_its_files_a_new_embedding_and_nothing_else() {
    small_segments();
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let store = Store::open(dir.path(), Some(&identity(dim))).unwrap();
    let mut rng = Rng(21);
    let mut expected = Expected::default();
    for _ in 0..4 {
        expected.add(&store, &mut rng, 100, dim);
        publish(&store).unwrap();
    }
    let m = read_manifest(dir.path()).unwrap().unwrap();
    assert!(m.segments.len() >= 2, "{:?}", m.segments);
    let gone = &m.segments[0];
    let lost: Vec<PathBuf> = {
        let index = SearchIndex::open(dir.path()).unwrap();
        let view = index.view();
        (0..view.len())
            .filter(|&r| view.id(r) <= gone.max_id)
            .map(|r| view.path(r).to_path_buf())
            .collect()
    };
    assert_eq!(lost.len(), gone.rows);
    std::fs::remove_file(dir.path().join(&gone.file)).unwrap();
    let m = publish(&store).unwrap().unwrap();
    assert_eq!(m.count, expected.files.len() - lost.len());
    for path in &lost {
        assert!(
            store.file(path).unwrap().is_none(),
            "{path:?} is to be indexed again"
        );
        expected.files.remove(path);
    }
    expected.check(&store, dir.path());
}
