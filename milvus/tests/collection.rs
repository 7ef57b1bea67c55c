//! One test suite for every implementation of the storage trait, as tantivy tests its
//! `Directory` implementations: the local store and Milvus (HNSW and FLAT) must behave alike:
//! model claims, idempotent upserts, search (the point itself first; recall@10 against exact
//! search >= 0.99 with HNSW, the exact ranking with FLAT and locally), scopes, metadata filters
//! (filtered top-10 against brute force over the kept files), removal, listing, and writers
//! killed (SIGKILL) mid-run: every file held exactly once afterwards.
//!
//! The Milvus runs need a server: `.ci/run` starts milvus-lite and sets
//! `CLIPSEARCH_TEST_MILVUS=HOST:PORT`. They are `#[ignore]`d, so that a run without a server
//! reports them as ignored rather than passed; `.ci/run` runs them with `--ignored`, and asked
//! for without a server they fail.

use std::collections::HashSet;

use clipsearch::index::LocalCollection;
use clipsearch::metadata::{Filter, Gps, PhotoMeta, Place, Taken, TimeSource};
use clipsearch::model::ModelIdentity;
use clipsearch::store::collection::{Collection, Item, Scope};
use clipsearch_milvus::MilvusCollection;

const DIM: usize = 64;
const N: usize = 10_000;

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

/// `N` unit vectors in 100 clusters, as photo embeddings are.
fn vectors(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| rng.next()).collect();
            normalize(&mut c);
            c
        })
        .collect();
    (0..N)
        .map(|i| {
            let mut v: Vec<f32> = centres[i % 100]
                .iter()
                .map(|x| x + 0.15 * rng.next())
                .collect();
            normalize(&mut v);
            v
        })
        .collect()
}

fn identity(name: &str, dim: usize) -> ModelIdentity {
    ModelIdentity {
        name: name.into(),
        fingerprint: format!("fp-{name}"),
        legacy_fingerprint: None,
        dim,
        preprocess_version: 1,
        decode: "exact".into(),
        precision: "f32".into(),
        family: "clip".into(),
    }
}

fn file(i: usize) -> (String, String) {
    let source = if i.is_multiple_of(2) { "alpha" } else { "beta" };
    (source.to_string(), format!("/photos/{i:05}.jpg"))
}

/// Photo metadata of file `i`: a capture month from 2010 to 2021, one of three places (or
/// none), one of four cameras (or none), a format; every 50th file never read.
fn meta(i: usize) -> Option<PhotoMeta> {
    if i % 50 == 49 {
        return None;
    }
    let day = chrono::NaiveDate::from_ymd_opt(2010 + (i % 12) as i32, 1 + (i / 12 % 12) as u32, 3)
        .unwrap();
    let (place, gps) = match i % 4 {
        0 => (Some(("Lisbon", "Lisbon", "PT")), Some((38.72, -9.14))),
        1 => (
            Some(("New York City", "New York", "US")),
            Some((40.71, -74.0)),
        ),
        3 => (Some(("Zurich", "Zurich", "CH")), Some((47.37, 8.54))),
        _ => (None, None),
    };
    let camera = match i % 5 {
        0 => Some(("Canon", "Canon EOS R5")),
        1 => Some(("NIKON CORPORATION", "NIKON D850")),
        2 => Some(("Apple", "iPhone 15 Pro")),
        3 => Some(("FUJIFILM", "X-T5")),
        _ => None,
    };
    Some(PhotoMeta {
        taken: Some(Taken {
            local: day.and_hms_opt(12, 0, 0).unwrap(),
            offset_minutes: None,
            source: TimeSource::DateTimeOriginal,
        }),
        gps: gps.map(|(lat, lon)| Gps {
            lat,
            lon,
            alt: None,
        }),
        place: place.map(|(city, region, cc)| Place {
            city: city.into(),
            region: region.into(),
            country_code: cc.into(),
        }),
        make: camera.map(|c| c.0.to_string()),
        model: camera.map(|c| c.1.to_string()),
        format: Some(["JPEG", "HEIC", "DNG"][i % 3].to_string()),
        ..Default::default()
    })
}

/// Files 0..n with these vectors and their metadata.
fn items(vs: &[Vec<f32>], n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let (source, path) = file(i);
            Item {
                source,
                path,
                vector: vs[i].clone(),
                meta: meta(i),
            }
        })
        .collect()
}

fn filter(pairs: &[(&str, &str)]) -> Filter {
    let mut f = Filter::default();
    for (k, v) in pairs {
        f.set(k, v).unwrap();
    }
    f
}

/// Metadata filters: the top 10 among the files a filter keeps, against brute force over
/// the same files; the listing of a filter alone; a filter that keeps nothing.
fn filtered(c: &dyn Collection, vs: &[Vec<f32>], held: &dyn Fn(usize) -> bool, exact: bool) {
    let where_ = c.location();
    let filters = [
        filter(&[("after", "2015"), ("before", "2015")]),
        filter(&[("place", "Lisbon, Portugal")]),
        filter(&[("camera", "nikon")]),
        filter(&[("near", "40.71,-74.0,50")]),
        filter(&[("format", "raw")]),
        filter(&[
            ("place", "zürich"),
            ("format", "heif"),
            ("camera", "iphone 15"),
        ]),
        filter(&[("place", "CHE"), ("after", "2021-03")]),
    ];
    let mut rng = Rng(5);
    for f in &filters {
        let keeps = |i: usize| held(i) && f.matches_meta(meta(i).as_ref());
        let kept: Vec<usize> = (0..N).filter(|&i| keeps(i)).collect();
        assert!(kept.len() >= 10, "{f:?} keeps {}", kept.len());
        let scope = Scope {
            filter: f.clone(),
            ..Default::default()
        };
        let listed: HashSet<(String, String)> = c
            .select(&scope)
            .unwrap()
            .into_iter()
            .map(|x| (x.source, x.path))
            .collect();
        let want: HashSet<(String, String)> = kept.iter().map(|&i| file(i)).collect();
        assert!(
            listed == want,
            "{where_}: select {} listed {} of {}",
            f.describe(),
            listed.len(),
            want.len()
        );
        let (mut found, mut total) = (0, 0);
        for _ in 0..10 {
            let mut v: Vec<f32> = vs[rng.0 as usize % N]
                .iter()
                .map(|x| x + 0.2 * rng.next())
                .collect();
            normalize(&mut v);
            let mut truth: Vec<(f32, usize)> = kept.iter().map(|&i| (dot(&v, &vs[i]), i)).collect();
            truth.sort_by(|a, b| b.0.total_cmp(&a.0));
            let want: Vec<(String, String)> = truth[..10].iter().map(|t| file(t.1)).collect();
            let hits = c.search(&v, 10, &scope).unwrap();
            for h in &hits {
                let i: usize = h.path[8..13].parse().unwrap();
                assert!(keeps(i), "{where_}: {} returned {}", f.describe(), h.path);
                assert_eq!(h.meta, meta(i), "{where_}: the metadata comes back");
            }
            let got: Vec<(String, String)> = hits.into_iter().map(|h| (h.source, h.path)).collect();
            if exact && truth[9].0 - truth.get(10).map_or(-2.0, |t| t.0) > 1e-5 {
                assert_eq!(got, want, "{where_}: {}", f.describe());
            }
            found += got.iter().filter(|g| want.contains(g)).count();
            total += want.len();
        }
        let recall = found as f64 / total as f64;
        eprintln!(
            "{where_}: {} keeps {} files, recall@10 {recall:.3}",
            f.describe(),
            kept.len()
        );
        assert!(
            recall >= 0.99,
            "{where_}: {} recall@10 {recall}",
            f.describe()
        );
    }
    let nowhere = Scope {
        filter: filter(&[("place", "Atlantis")]),
        ..Default::default()
    };
    assert!(c.search(&vs[0], 10, &nowhere).unwrap().is_empty());
    assert!(c.select(&nowhere).unwrap().is_empty());
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The suite. `exact`: the backend searches exactly (same ranking as brute force).
fn suite(c: &dyn Collection, exact: bool) {
    let where_ = c.location();
    assert_eq!(c.model().unwrap(), None, "{where_}: unclaimed");
    c.claim(&identity("m", DIM)).unwrap();
    c.claim(&identity("m", DIM)).unwrap();
    let err = c.claim(&identity("other", 32)).unwrap_err().to_string();
    assert!(err.contains("not comparable"), "{where_}: {err}");
    assert_eq!(c.model().unwrap().unwrap().name, "m");

    let vs = vectors(7);
    let items = items(&vs, N);
    for batch in items.chunks(1000) {
        c.upsert(batch).unwrap();
    }
    c.flush().unwrap();
    assert_eq!(c.count().unwrap(), N, "{where_}");
    // Upserts are idempotent: a batch repeated after a crash adds nothing.
    c.upsert(&items[..1000]).unwrap();
    c.flush().unwrap();
    assert_eq!(c.count().unwrap(), N, "{where_}: no duplicates");

    // Replacing a file's vector is seen by the next search (no count changes).
    let moved = Item {
        source: "alpha".into(),
        path: "/photos/00000.jpg".into(),
        vector: vs[5000].clone(),
        meta: None,
    };
    c.upsert(std::slice::from_ref(&moved)).unwrap();
    c.flush().unwrap();
    let hits = c.search(&vs[5000], 2, &Scope::default()).unwrap();
    assert!(
        hits.iter().any(|h| h.path == "/photos/00000.jpg"),
        "{where_}: {hits:?}"
    );
    c.upsert(&items[..1]).unwrap();
    c.flush().unwrap();
    assert_eq!(c.count().unwrap(), N, "{where_}");

    // A stored vector finds itself first.
    for i in [0, 4321, N - 1] {
        let hits = c.search(&vs[i], 5, &Scope::default()).unwrap();
        assert_eq!(hits.len(), 5, "{where_}");
        let (source, path) = file(i);
        assert!(
            hits.iter()
                .take(if exact { 1 } else { 3 })
                .any(|h| h.source == source && h.path == path),
            "{where_}: {i} not first: {hits:?}"
        );
        assert!(hits[0].score > 0.99, "{where_}: {}", hits[0].score);
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{where_}: sorted"
        );
    }

    // Held-out queries against brute force.
    let mut rng = Rng(99);
    let (mut found, mut total) = (0, 0);
    for q in 0..100 {
        let mut v: Vec<f32> = vs[(q * 97) % N]
            .iter()
            .map(|x| x + 0.1 * rng.next())
            .collect();
        normalize(&mut v);
        let mut truth: Vec<(f32, usize)> = vs
            .iter()
            .enumerate()
            .map(|(i, x)| (dot(&v, x), i))
            .collect();
        truth.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: Vec<(String, String)> = truth[..10].iter().map(|t| file(t.1)).collect();
        let got: Vec<(String, String)> = c
            .search(&v, 10, &Scope::default())
            .unwrap()
            .into_iter()
            .map(|h| (h.source, h.path))
            .collect();
        if exact {
            // Identical ranking, but for ties within float rounding.
            let near_tie = truth[9].0 - truth[10].0 < 1e-5;
            if !near_tie {
                assert_eq!(got, want, "{where_}: query {q}");
            }
        }
        found += got.iter().filter(|g| want.contains(g)).count();
        total += want.len();
    }
    let recall = found as f64 / total as f64;
    eprintln!("{where_}: recall@10 {recall:.4}");
    assert!(recall >= 0.99, "{where_}: recall@10 {recall}");

    // Scopes: by source, by folder.
    let alpha = Scope {
        source: Some("alpha".into()),
        ..Default::default()
    };
    let hits = c.search(&vs[1], 20, &alpha).unwrap();
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h.source == "alpha"), "{where_}");
    let folder = Scope {
        prefix: Some("/photos/001".into()),
        ..Default::default()
    };
    let hits = c.search(&vs[5], 20, &folder).unwrap();
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h.path.starts_with("/photos/001")),
        "{where_}: {hits:?}"
    );

    // Metadata filters.
    filtered(c, &vs, &|_| true, exact);

    // Removal.
    let gone: Vec<(String, String)> = (0..100).map(file).collect();
    c.remove(&gone).unwrap();
    c.flush().unwrap();
    assert_eq!(c.count().unwrap(), N - 100, "{where_}");
    for i in [0, 50, 99] {
        let hits = c.search(&vs[i], 10, &Scope::default()).unwrap();
        assert!(
            hits.iter()
                .all(|h| (h.source.clone(), h.path.clone()) != file(i)),
            "{where_}: removed {i} returned"
        );
    }
    let listed: HashSet<(String, String)> = c.files().unwrap().into_iter().collect();
    let expected: HashSet<(String, String)> = (100..N).map(file).collect();
    assert_eq!(listed.len(), N - 100, "{where_}");
    assert!(
        listed == expected,
        "{where_}: files() lists exactly what is held"
    );

    // Items in a scope, with their stored vectors (what near-duplicate search reads).
    let held = c
        .items(&Scope {
            source: Some("beta".into()),
            prefix: Some("/photos/00".into()),
            ..Default::default()
        })
        .unwrap();
    let want: Vec<usize> = (100..1000).filter(|i| i % 2 == 1).collect();
    assert_eq!(
        held.len(),
        want.len(),
        "{where_}: beta's files under /photos/00"
    );
    for it in &held {
        let i: usize = it.path[8..13].parse().unwrap();
        assert!(
            it.source == "beta" && want.contains(&i),
            "{where_}: {}",
            it.path
        );
        assert_eq!(it.vector, vs[i], "{where_}: {} stored as written", it.path);
    }
    assert_eq!(c.items(&Scope::default()).unwrap().len(), N - 100);

    // By key: held ones with their vectors; removed and unknown keys left out.
    let key = |i: usize| {
        let (s, p) = file(i);
        clipsearch::store::collection::key_of(&s, &p)
    };
    let mut got = c.get(&[key(4321), key(50), key(N - 1), 12345]).unwrap();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(got.len(), 2, "{where_}: {got:?}");
    assert_eq!(
        (got[0].source.as_str(), got[0].path.as_str()),
        ("beta", "/photos/04321.jpg")
    );
    assert_eq!(got[0].vector, vs[4321]);
    assert_eq!(got[1].path, format!("/photos/{:05}.jpg", N - 1));
}

#[test]
fn the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let c = LocalCollection::open(dir.path()).unwrap();
    suite(&c, true);
}

/// A fresh collection on the test server, dropped afterwards. The tests that need one are
/// `#[ignore]`d, so a run without a server reports them as ignored, not passed; asked for
/// (`--ignored`, as `.ci/run` does) without a server, they fail here.
fn milvus(index: &str) -> Option<(MilvusCollection, impl Drop)> {
    let Ok(addr) = std::env::var("CLIPSEARCH_TEST_MILVUS") else {
        panic!(
            "no Milvus server for this test. Start one with `pip install milvus-lite==3.2.2 \
             pymilvus && milvus-lite server --data-dir /tmp/milvus --host 127.0.0.1 --port 19531` \
             and set CLIPSEARCH_TEST_MILVUS=127.0.0.1:19531 (bash .ci/run does)"
        );
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("t_{}_{nanos}", std::process::id());
    let url = format!("milvus://{addr}/{name}{index}");
    let c = MilvusCollection::connect(&url).unwrap();
    struct DropAfter(String);
    impl Drop for DropAfter {
        fn drop(&mut self) {
            if let Ok(c) = MilvusCollection::connect(&self.0) {
                let _ = c.drop_collection();
            }
        }
    }
    Some((c, DropAfter(url)))
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn milvus_with_hnsw() {
    if let Some((c, _cleanup)) = milvus("") {
        suite(&c, false);
    }
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn milvus_with_flat_ranks_exactly() {
    if let Some((c, _cleanup)) = milvus("?index=flat") {
        suite(&c, true);
    }
}

#[test]
fn an_unreachable_server_is_named() {
    let err = MilvusCollection::connect("milvus://127.0.0.1:1/photos")
        .err()
        .expect("nothing listens on port 1")
        .to_string();
    assert!(
        err.contains("cannot reach Milvus at milvus://127.0.0.1:1/photos"),
        "{err}"
    );
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn a_collection_made_before_metadata_keeps_working() {
    let Some((c, _drop)) = milvus("") else {
        return;
    };
    c.create_without_metadata(&identity("m", DIM)).unwrap();
    let vs = vectors(3);
    c.claim(&identity("m", DIM)).unwrap();
    c.upsert(&items(&vs, 200)).unwrap();
    c.flush().unwrap();
    let hits = c.search(&vs[7], 3, &Scope::default()).unwrap();
    assert_eq!(hits[0].path, file(7).1);
    assert_eq!(hits[0].meta, None, "it has nowhere to keep metadata");
    let dated = Scope {
        filter: filter(&[("after", "2015")]),
        ..Default::default()
    };
    let err = c.search(&vs[7], 3, &dated).unwrap_err().to_string();
    assert!(
        err.contains("made by an older clipsearch") && err.contains("index into a new collection"),
        "{err}"
    );
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn incarnations_and_counts_by_source() {
    let Some((c, _drop)) = milvus("") else {
        return;
    };
    assert_eq!(c.incarnation().unwrap(), None, "no collection yet");
    c.claim(&identity("m", DIM)).unwrap();
    let first = c.incarnation().unwrap().expect("set when created");
    let other = MilvusCollection::connect(&c.location()).unwrap();
    assert_eq!(
        other.incarnation().unwrap().as_ref(),
        Some(&first),
        "stable"
    );
    c.upsert(&items(&vectors(5), 101)).unwrap();
    c.flush().unwrap();
    assert_eq!(
        (
            c.count_source("alpha").unwrap(),
            c.count_source("beta").unwrap()
        ),
        (51, 50)
    );
    assert_eq!(c.count_source("gamma").unwrap(), 0);
    // Dropped and made again: another life.
    c.drop_collection().unwrap();
    c.claim(&identity("m", DIM)).unwrap();
    let second = c.incarnation().unwrap().expect("set when created");
    assert_ne!(second, first);
    assert_eq!(other.incarnation().unwrap(), Some(second));
    // One made by an older clipsearch, without one, gets one once.
    c.drop_collection().unwrap();
    c.create_without_metadata(&identity("m", DIM)).unwrap();
    let given = c.incarnation().unwrap().expect("given one");
    assert_eq!(other.incarnation().unwrap(), Some(given));
}

/// The collection a crash-test child writes to: a local directory or a Milvus URL.
fn open_any(location: &str) -> Box<dyn Collection> {
    if clipsearch_milvus::is_url(location) {
        Box::new(MilvusCollection::connect(location).unwrap())
    } else {
        Box::new(LocalCollection::open(std::path::Path::new(location)).unwrap())
    }
}

/// `CRASH_N` items, upserted by the crash child in batches of 10, each flushed.
fn crash_items() -> Vec<Item> {
    items(&vectors(11), CRASH_N)
}
const CRASH_N: usize = 2_000;

/// The writer the crash test kills: run as this test binary with `CLIPSEARCH_CRASH_CHILD` set.
#[test]
fn crash_child() {
    let Ok(location) = std::env::var("CLIPSEARCH_CRASH_CHILD") else {
        return;
    };
    let c = open_any(&location);
    c.claim(&identity("m", DIM)).unwrap();
    for batch in crash_items().chunks(10) {
        c.upsert(batch).unwrap();
        c.flush().unwrap();
    }
}

fn child(location: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["crash_child", "--exact"])
        .env("CLIPSEARCH_CRASH_CHILD", location)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// Writers killed (SIGKILL) at moments spread over their run (fractions of how long a whole
/// run takes into `scratch`), then one run to the end: every file held exactly once, its
/// vector and metadata as written, whatever moment the kills hit.
fn survives_kills(location: &str, scratch: &str) {
    let t = std::time::Instant::now();
    assert!(child(scratch).status().unwrap().success());
    let whole = t.elapsed();
    let mut partial = 0;
    for f in [0.15, 0.35, 0.55, 0.75, 0.9] {
        let mut running = child(location).spawn().unwrap();
        std::thread::sleep(whole.mul_f64(f));
        let _ = running.kill();
        let _ = running.wait();
        let held = open_any(location).count().unwrap();
        partial += usize::from(held > 0 && held < CRASH_N);
    }
    assert!(
        partial > 0,
        "{location}: no kill landed mid-run (a whole run: {whole:?})"
    );
    assert!(
        child(location).status().unwrap().success(),
        "{location}: the run after the kills"
    );
    let c = open_any(location);
    assert_eq!(c.count().unwrap(), CRASH_N, "{location}");
    let files = c.files().unwrap();
    let distinct: HashSet<&(String, String)> = files.iter().collect();
    assert_eq!(
        (files.len(), distinct.len()),
        (CRASH_N, CRASH_N),
        "{location}: each file once"
    );
    let items = crash_items();
    let keys: Vec<i64> = [0usize, 777, CRASH_N - 1]
        .iter()
        .map(|&i| clipsearch::store::collection::key_of(&items[i].source, &items[i].path))
        .collect();
    let mut got = c.get(&keys).unwrap();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let want = [&items[0], &items[777], &items[CRASH_N - 1]];
    assert_eq!(got.len(), 3, "{location}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.path, &g.vector, &g.meta), (&w.path, &w.vector, &w.meta));
    }
}

#[test]
fn the_local_store_survives_kills() {
    let (dir, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    survives_kills(
        dir.path().to_str().unwrap(),
        scratch.path().to_str().unwrap(),
    );
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn milvus_survives_kills() {
    if let (Some((c, _cleanup)), Some((scratch, _too))) = (milvus(""), milvus("")) {
        survives_kills(&c.location(), &scratch.location());
    }
}
