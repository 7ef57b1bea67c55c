//! One suite over the path users take: a [`Searcher`] opened by [`Target::searcher`], the
//! function every query command and the server call, on a local index and on a shared Milvus
//! collection. The local index is written by the store's commits and published as the indexer
//! does it, the collection through the storage trait as a push does. Each must answer alike:
//! the exact top 10 (against brute force over the vectors), with metadata filters and a
//! folder, a threshold, listings by date, near-duplicate groups, stored vectors and records
//! by id and by path, and a filter that keeps nothing said as such.
//!
//! The Milvus run needs a server: `.ci/run` starts milvus-lite and sets
//! `CLIPSEARCH_TEST_MILVUS=HOST:PORT`; it is `#[ignore]`d so that a run without one reports
//! it as ignored, not passed, and asked for without a server it fails.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clipsearch::metadata::{Filter, PhotoMeta, SortOrder, Taken, TimeSource};
use clipsearch::model::ModelIdentity;
use clipsearch::store::collection::{Collection, Item};
use clipsearch::store::{content_hash, f32_to_bytes, FileRecord, NewEntry, Store};
use clipsearch_milvus::MilvusCollection;
use clipsearch_query::{Error, Match, SearchOptions, Searcher, Target};

const DIM: usize = 64;
const N: usize = 2000;
/// Files `2k` and `2k + 1` for k below this are near-duplicates (cosine > 0.999).
const PAIRS: usize = 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Unit vectors in 50 clusters; the first `PAIRS` even files each have a twin.
fn vectors() -> Vec<Vec<f32>> {
    let mut rng = Rng(11);
    let centres: Vec<Vec<f32>> = (0..50)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| rng.next()).collect();
            normalize(&mut c);
            c
        })
        .collect();
    let mut vs: Vec<Vec<f32>> = (0..N)
        .map(|i| {
            let mut v: Vec<f32> = centres[i % 50]
                .iter()
                .map(|x| x + 0.5 * rng.next())
                .collect();
            normalize(&mut v);
            v
        })
        .collect();
    for k in 0..PAIRS {
        let mut twin: Vec<f32> = vs[2 * k].iter().map(|x| x + 0.001 * rng.next()).collect();
        normalize(&mut twin);
        vs[2 * k + 1] = twin;
    }
    vs
}

/// File `i`: in folder `a` or `b`.
fn path(i: usize) -> String {
    format!(
        "/photos/{}/{i:05}.jpg",
        if i.is_multiple_of(3) { "a" } else { "b" }
    )
}

/// A capture year from 2010 to 2019 and a camera for most files; every 40th file unread.
fn meta(i: usize) -> Option<PhotoMeta> {
    if i % 40 == 39 {
        return None;
    }
    let day = chrono::NaiveDate::from_ymd_opt(2010 + (i % 10) as i32, 1 + (i % 12) as u32, 5)
        .unwrap()
        .and_hms_opt(9, (i % 60) as u32, 0)
        .unwrap();
    let camera = [("Canon", "Canon EOS R5"), ("Apple", "iPhone 15 Pro")][i % 2];
    Some(PhotoMeta {
        taken: Some(Taken {
            local: day,
            offset_minutes: None,
            source: TimeSource::DateTimeOriginal,
        }),
        make: (!i.is_multiple_of(7)).then(|| camera.0.to_string()),
        model: (!i.is_multiple_of(7)).then(|| camera.1.to_string()),
        format: Some("JPEG".into()),
        ..Default::default()
    })
}

fn identity() -> ModelIdentity {
    ModelIdentity {
        name: "suite-model".into(),
        fingerprint: "fp-suite".into(),
        legacy_fingerprint: None,
        dim: DIM,
        preprocess_version: 1,
        decode: "exact".into(),
        precision: "f32".into(),
        family: "clip".into(),
    }
}

/// A local index holding the files, written as the indexer writes one.
fn local_index(dir: &Path, vs: &[Vec<f32>]) -> Target {
    let store = Store::open(dir, Some(&identity())).unwrap();
    let entries: Vec<NewEntry> = (0..N)
        .map(|i| {
            let bytes = f32_to_bytes(&vs[i]);
            NewEntry {
                path: PathBuf::from(path(i)),
                record: FileRecord {
                    id: store.new_id().unwrap(),
                    size: 1000 + i as u64,
                    mtime_ns: 0,
                    hash: content_hash(&bytes),
                    width: 640,
                    height: 480,
                    raw: None,
                    meta: meta(i),
                },
                embedding: Some(vs[i].clone()),
            }
        })
        .collect();
    for chunk in entries.chunks(256) {
        store.commit(chunk).unwrap();
    }
    clipsearch::index::publish(&store).unwrap();
    Target::Local(dir.to_path_buf())
}

fn filter(pairs: &[(&str, &str)]) -> Filter {
    let mut f = Filter::default();
    for (k, v) in pairs {
        f.set(k, v).unwrap();
    }
    f
}

/// The best `k` files among `kept` for `query`, by brute force.
fn truth(vs: &[Vec<f32>], query: &[f32], kept: &[usize], k: usize) -> Vec<String> {
    let mut scored: Vec<(f32, usize)> = kept.iter().map(|&i| (dot(query, &vs[i]), i)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.iter().take(k).map(|s| path(s.1)).collect()
}

fn paths(ms: &[Match]) -> Vec<String> {
    ms.iter()
        .map(|m| m.path.to_string_lossy().into_owned())
        .collect()
}

fn suite(s: &mut dyn Searcher, vs: &[Vec<f32>]) {
    let at = s.location();
    let mut rng = Rng(3);
    let all: Vec<usize> = (0..N).collect();
    let kinds = [
        ("everything", SearchOptions::default(), all.clone()),
        (
            "2015 only",
            SearchOptions {
                filter: filter(&[("after", "2015"), ("before", "2015")]),
                ..Default::default()
            },
            all.iter()
                .copied()
                .filter(|&i| i % 40 != 39 && i % 10 == 5)
                .collect(),
        ),
        (
            "an iPhone",
            SearchOptions {
                filter: filter(&[("camera", "iphone")]),
                ..Default::default()
            },
            all.iter()
                .copied()
                .filter(|&i| i % 40 != 39 && i % 7 != 0 && i % 2 == 1)
                .collect(),
        ),
        (
            "folder a",
            SearchOptions {
                under: Some("/photos/a".into()),
                ..Default::default()
            },
            all.iter().copied().filter(|&i| i % 3 == 0).collect(),
        ),
    ];
    for (what, opts, kept) in &kinds {
        for _ in 0..5 {
            let mut q: Vec<f32> = vs[rng.0 as usize % N]
                .iter()
                .map(|x| x + 0.3 * rng.next())
                .collect();
            normalize(&mut q);
            let hits = s.search(&q, opts).unwrap();
            assert_eq!(
                paths(&hits),
                truth(vs, &q, kept, 10),
                "{at}: top 10 of {what}"
            );
            for h in &hits {
                let i: usize = h
                    .path
                    .file_stem()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let score = h.score.expect("a search scores its results");
                assert!(
                    (score - dot(&q, &vs[i])).abs() < 1e-4,
                    "{at}: score {score} of {}",
                    h.path.display()
                );
                // The stored vector of a result, by its id (as /api/query's `id` terms).
                let v = s.vector_of(h.id).unwrap().expect("a result's vector");
                assert!(
                    dot(&v, &vs[i]) > 0.9999,
                    "{at}: vector of {}",
                    h.path.display()
                );
            }
        }
    }

    // A threshold keeps only results at or above it.
    let q = vs[7].clone();
    let opts = SearchOptions {
        top: 50,
        threshold: Some(0.8),
        ..Default::default()
    };
    let hits = s.search(&q, &opts).unwrap();
    let want: Vec<String> = truth(vs, &q, &all, 50)
        .into_iter()
        .filter(|p| {
            let i: usize = p[p.len() - 9..p.len() - 4].parse().unwrap();
            dot(&q, &vs[i]) >= 0.8
        })
        .collect();
    assert!(
        !want.is_empty() && want.len() < 50,
        "the threshold must cut"
    );
    assert_eq!(paths(&hits), want, "{at}: threshold 0.8");

    // A listing by filters alone: the files kept, newest first.
    let opts = SearchOptions {
        top: N,
        filter: filter(&[("after", "2019")]),
        sort: SortOrder::DateDesc,
        ..Default::default()
    };
    let listed = s.list(&opts).unwrap();
    let want: HashSet<String> = (0..N)
        .filter(|&i| i % 40 != 39 && i % 10 == 9)
        .map(path)
        .collect();
    assert_eq!(
        paths(&listed).into_iter().collect::<HashSet<_>>(),
        want,
        "{at}: listing after:2019"
    );
    assert!(listed.iter().all(|m| m.score.is_none()));
    let taken: Vec<&str> = listed.iter().map(|m| m.taken.as_deref().unwrap()).collect();
    assert!(
        taken.windows(2).all(|w| w[0] >= w[1]),
        "{at}: a -date listing runs newest first"
    );

    // A filter that keeps nothing is said as such, not answered with nothing.
    let none = SearchOptions {
        filter: filter(&[("after", "2030")]),
        ..Default::default()
    };
    assert!(
        matches!(s.search(&q, &none), Err(Error::NoMatch(_))),
        "{at}: after:2030"
    );
    assert!(matches!(s.list(&none), Err(Error::NoMatch(_))));

    // Near-duplicates: exactly the planted twins, each group in path order.
    let groups = s.groups(0.999, &SearchOptions::default()).unwrap();
    let found: HashSet<Vec<String>> = groups.iter().map(|g| paths(g)).collect();
    let planted: HashSet<Vec<String>> = (0..PAIRS)
        .map(|k| {
            let mut pair = vec![path(2 * k), path(2 * k + 1)];
            pair.sort();
            pair
        })
        .collect();
    assert_eq!(found, planted, "{at}: near-duplicate groups");

    // Records, by id and by path.
    let hit = &s.search(&vs[3], &SearchOptions::default()).unwrap()[0];
    assert_eq!(hit.path.to_string_lossy(), path(3));
    let by_id = s.describe(hit.id).unwrap().expect("a result's record");
    assert_eq!(by_id["path"], path(3), "{at}: record by id");
    assert_eq!(by_id["camera"], "Apple iPhone 15 Pro");
    let by_path = s
        .describe_path(Path::new(&path(3)))
        .unwrap()
        .expect("an indexed path's record");
    assert_eq!(by_path["path"], path(3), "{at}: record by path");
    assert!(s
        .describe_path(Path::new("/photos/none.jpg"))
        .unwrap()
        .is_none());
    assert!(s.vector_of(u64::MAX >> 2).unwrap().is_none());
}

#[test]
fn a_local_index() {
    let dir = tempfile::tempdir().unwrap();
    let vs = vectors();
    let target = local_index(dir.path(), &vs);
    let mut s = target.searcher(None).unwrap();
    suite(s.as_mut(), &vs);
    // The server shows every file of a local index.
    let hit = &s.search(&vs[0], &SearchOptions::default()).unwrap()[0];
    assert!(s.serves(hit));
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn a_shared_collection() {
    let addr = std::env::var("CLIPSEARCH_TEST_MILVUS").expect(
        "no Milvus server for this test: set CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run \
         starts milvus-lite and does)",
    );
    let name = format!("s_{}_{}", std::process::id(), rand_suffix());
    // FLAT: Milvus ranks exactly, as the local index does at this size.
    let url = format!("milvus://{addr}/{name}?index=flat");
    let collection = MilvusCollection::connect(&url).unwrap();
    let vs = vectors();
    collection.claim(&identity()).unwrap();
    let items: Vec<Item> = (0..N)
        .map(|i| Item {
            source: "here".into(),
            path: path(i),
            vector: vs[i].clone(),
            meta: meta(i),
        })
        .collect();
    for chunk in items.chunks(256) {
        collection.upsert(chunk).unwrap();
    }
    collection.flush().unwrap();
    let catalog = tempfile::tempdir().unwrap();
    let collection = Arc::new(collection);
    let target = Target::Shared {
        collection: collection.clone(),
        source: "here".into(),
        catalog: catalog.path().to_path_buf(),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = target.searcher(None).unwrap();
        suite(s.as_mut(), &vs);
        // Results name their machine; this one's are shown here, another's would not be.
        let mut hit = s.search(&vs[0], &SearchOptions::default()).unwrap()[0].clone();
        assert_eq!(hit.source.as_deref(), Some("here"));
        assert!(s.serves(&hit));
        hit.source = Some("elsewhere".into());
        assert!(!s.serves(&hit));
    }));
    let _ = collection.drop_collection();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}
