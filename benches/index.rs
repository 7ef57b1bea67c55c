//! Vector-index benchmarks at 100k x 512 (ViT-B/32's embedding width): publishing a view (what
//! an index run pays each time it lets readers see its progress); opening it (what every query
//! process pays); the search through the view's binary codes (what queries use) against the
//! exact f32 scan and, with `INDEX_BENCH_GRAPH=1`, an hnsw_rs graph built in memory (minutes);
//! and recall@10 against the exact scan for held-out queries (near the data, not in it).
//! One-shot costs are timed once and printed; per-query costs go through criterion.
//! Run: `cargo bench -p clipsearch --bench index`. The million-photo figures are
//! `cargo bench -p clipsearch-cli --bench scale`'s.

use std::time::Instant;

use clipsearch::embedding::normalize;
use clipsearch::index::{publish, HnswIndex, HnswParams, NearestNeighbours, SearchIndex};
use clipsearch::metadata::{Filter, Gps, PhotoMeta, Place, Taken, TimeSource};
use clipsearch::model::ModelIdentity;
use clipsearch::store::vectors::VectorSet;
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

/// Metadata for the `i`-th file: taken in year 1925 + i % 100 (so one year is 1% of the
/// files), by one of three cameras, every tenth with a GPS position in Lisbon.
fn meta_of(i: usize) -> PhotoMeta {
    let local = chrono::NaiveDate::from_ymd_opt(1925 + (i % 100) as i32, 1 + (i % 12) as u32, 1)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    let lisbon = i.is_multiple_of(10);
    PhotoMeta {
        taken: Some(Taken {
            local,
            offset_minutes: None,
            source: TimeSource::DateTimeOriginal,
        }),
        gps: lisbon.then_some(Gps {
            lat: 38.72,
            lon: -9.14,
            alt: None,
        }),
        place: lisbon.then(|| Place {
            city: "Lisbon".into(),
            region: "Lisbon".into(),
            country_code: "PT".into(),
        }),
        make: Some(["Canon", "SONY", "Apple"][i % 3].into()),
        model: Some(["Canon EOS R5", "ILCE-7M3", "iPhone 15"][i % 3].into()),
        lens: None,
        orientation: Some(1),
        format: Some("JPEG".into()),
    }
}

/// An index directory holding `set` (catalog + embeddings), and the time to publish its view.
fn store_with(set: &VectorSet) -> (tempfile::TempDir, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Some(&ModelIdentity {
            name: "bench".into(),
            fingerprint: "bench".into(),
            legacy_fingerprint: None,
            dim: set.dim,
            preprocess_version: 1,
            decode: "exact".into(),
            precision: "f32".into(),
            family: "clip".into(),
        }),
    )
    .unwrap();
    let entries: Vec<NewEntry> = (0..set.len())
        .map(|i| NewEntry {
            path: format!("/photos/{:03}/{i:06}.jpg", i % 997).into(),
            record: FileRecord {
                id: store.new_id().unwrap(),
                size: 1,
                mtime_ns: 0,
                hash: content_hash(&i.to_le_bytes()),
                width: 1,
                height: 1,
                raw: None,
                meta: Some(meta_of(i)),
            },
            embedding: Some(set.vector(i).to_vec()),
        })
        .collect();
    for chunk in entries.chunks(2000) {
        store.commit(chunk).unwrap();
    }
    let t = Instant::now();
    publish(&store).unwrap();
    let secs = t.elapsed().as_secs_f64();
    // A periodic publication during a run: the same rewrite, timed again warm.
    let t = Instant::now();
    publish(&store).unwrap();
    println!(
        "publish (periodic), {} files: {:.2} s",
        set.len(),
        t.elapsed().as_secs_f64()
    );
    (dir, secs)
}

/// What periodic publication costs a whole first run that ends at `N` files: the cost of one
/// publication measured at a small and at the full size (it is a rewrite of the view, linear
/// in the files), then the run simulated at `RATE` images/s (default 10, about this machine's
/// exact-mode indexing rate) with the indexer's schedule: after the first batch, then every
/// 30 s but never more often than 20x the last publication's cost, and once at the end.
fn publishing_overhead(set: &VectorSet) {
    let cost = |n: usize| {
        let mut part = VectorSet::new(set.dim);
        for i in 0..n {
            part.push(set.ids[i], set.vector(i));
        }
        let (dir, _) = store_with(&part);
        let store = Store::open(dir.path(), None).unwrap();
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let t = Instant::now();
                publish(&store).unwrap();
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[1]
    };
    let small = 1000;
    let (c0, c1) = (cost(small), cost(N));
    let per_file = (c1 - c0) / (N - small) as f64;
    let at = |n: usize| (c0 + per_file * (n as f64 - small as f64)).max(c0);
    let rate: f64 = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10.0);
    let run = N as f64 / rate;
    let (mut t, mut last, mut last_cost, mut spent, mut count) = (0.0, None, 0.0, 0.0, 0);
    while t < run {
        t += 8.0 / rate; // one batch of 8
        let due = match last {
            None => true,
            Some(l) => t - l >= 30.0f64.max(20.0 * last_cost),
        };
        if due {
            last_cost = at((t * rate) as usize);
            spent += last_cost;
            t += last_cost;
            last = Some(t);
            count += 1;
        }
    }
    spent += c1;
    count += 1;
    println!(
        "publish (median of 3): {:.3} s at {small} files, {c1:.3} s at {N} files",
        c0
    );
    println!(
        "a first run to {N} files at {rate} images/s ({run:.0} s of indexing): {count} \
         publications, {spent:.1} s in all = {:.2}% of the run",
        100.0 * spent / (run + spent)
    );
}

fn benches(c: &mut Criterion) {
    let set = clustered(N, DIM);
    let queries: Vec<Vec<f32>> = (0..64).map(|i| set.vector(i * 1361 % N).to_vec()).collect();
    let (dir, write) = store_with(&set);
    println!("publish (first), {N} files: {write:.1} s");
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    println!("view files: {:.0} MB", size as f64 / 1e6);
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let index = SearchIndex::open(dir.path()).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(index.len(), N);
    }
    println!("view open, {N} files: {times:.1?} ms");
    let codes = SearchIndex::open(dir.path()).unwrap();
    assert!(codes.uses_codes(N));
    let exact = SearchIndex::open(dir.path())
        .unwrap()
        .with_scan(usize::MAX, 0);
    let graph = std::env::var("INDEX_BENCH_GRAPH")
        .is_ok_and(|v| v == "1")
        .then(|| {
            let t = Instant::now();
            let g = HnswIndex::build(&codes.view().vectors(), HnswParams::default());
            println!(
                "HNSW graph (in memory) built over {N} files in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            g
        });

    publishing_overhead(&set);

    // Recall of the graph against the exact scan, for queries that are not stored vectors.
    let mut rng = 0x1234_5678_9abc_def1u64;
    let held_out: Vec<Vec<f32>> = (0..200)
        .map(|q| {
            let base = set.vector((q * 7919 + 13) % N);
            let mut v: Vec<f32> = base
                .iter()
                .map(|x| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    x + 0.1 * ((rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
                })
                .collect();
            normalize(&mut v);
            v
        })
        .collect();
    let recall = |name: &str, search: &dyn Fn(&[f32]) -> Vec<u64>| {
        let (mut found, mut total) = (0, 0);
        for q in &held_out {
            let truth: Vec<u64> = exact.search(q, 10).iter().map(|h| h.id).collect();
            let got = search(q);
            found += got.iter().filter(|id| truth.contains(id)).count();
            total += truth.len();
        }
        println!(
            "{name} recall@10 vs exact, {N} files, {} held-out queries: {:.3}",
            held_out.len(),
            found as f64 / total as f64
        );
    };
    recall("binary codes + rescoring", &|q| {
        codes.search(q, 10).iter().map(|h| h.id).collect()
    });
    if let Some(g) = &graph {
        recall("HNSW", &|q| {
            g.search(q, 10, &|_| true).iter().map(|h| h.id).collect()
        });
    }
    let views: Vec<(&str, &SearchIndex)> = vec![("codes", &codes), ("exact", &exact)];

    // Filtered queries, as a warm `search` runs them: the filter over the view's metadata,
    // then the top 10 of what it keeps (scanned exactly when it keeps few, through the codes
    // when it keeps many).
    let filters: Vec<(&str, Filter)> = [
        ("1%: one year", vec![("after", "1970"), ("before", "1970")]),
        (
            "3%: place + camera",
            vec![("place", "lisbon"), ("camera", "canon")],
        ),
        ("50%: after 1975", vec![("after", "1975")]),
    ]
    .into_iter()
    .map(|(name, pairs)| {
        let mut f = Filter::default();
        for (k, v) in pairs {
            f.set(k, v).unwrap();
        }
        (name, f)
    })
    .collect();
    for (name, index) in &views {
        for (fname, f) in &filters {
            let rows = index.view().select(f);
            let t = Instant::now();
            for _ in 0..20 {
                std::hint::black_box(index.view().select(f));
            }
            println!(
                "filter {fname} over {N} files ({name} view): {} kept, selected in {:.2} ms",
                rows.len(),
                t.elapsed().as_secs_f64() * 1e3 / 20.0
            );
        }
    }

    let mut group = c.benchmark_group(format!("query top-10 at {N} x {DIM}"));
    group.sample_size(20);
    let mut i = 0;
    for (name, index) in &views {
        group.bench_function(format!("{name} (stored vectors)"), |b| {
            b.iter(|| {
                i += 1;
                index.search(&queries[i % 64], 10)
            })
        });
        group.bench_function(format!("{name} (held-out queries)"), |b| {
            b.iter(|| {
                i += 1;
                index.search(&held_out[i % held_out.len()], 10)
            })
        });
        for (fname, f) in &filters {
            group.bench_function(format!("{name}, filtered {fname} (held-out)"), |b| {
                b.iter(|| {
                    i += 1;
                    let rows = index.view().select(f);
                    index.search_rows(&held_out[i % held_out.len()], 10, &rows)
                })
            });
        }
    }
    if let Some(g) = &graph {
        group.bench_function("hnsw (held-out queries)", |b| {
            b.iter(|| {
                i += 1;
                g.search(&held_out[i % held_out.len()], 10, &|_| true)
            })
        });
    }
    group.finish();
}

criterion_group!(index, benches);
criterion_main!(index);
