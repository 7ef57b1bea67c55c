//! Insert throughput and query latency of both storage backends, side by side in one run:
//! the local store and Milvus (the server `CLIPSEARCH_TEST_MILVUS` names, e.g. milvus-lite),
//! 100k x 512 clustered unit vectors (`BENCH_N` changes the count), upserted in batches of
//! 1,000 (each with a capture year from 2015 to 2024), then 200 held-out top-10 queries, one
//! at a time (p50/p99 latency), and recall@10 against brute force; then 100 queries filtered to
//! one year (a tenth of the files), against brute force over that year.
//! Run: `CLIPSEARCH_TEST_MILVUS=127.0.0.1:19531 cargo bench -p clipsearch-milvus --bench collection`

use std::time::Instant;

use clipsearch::index::LocalCollection;
use clipsearch::metadata::{Filter, PhotoMeta, Taken, TimeSource};
use clipsearch::model::ModelIdentity;
use clipsearch::store::collection::{Collection, Item, Scope};

const DIM: usize = 512;

fn vectors(n: usize) -> Vec<Vec<f32>> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let norm = |v: &mut Vec<f32>| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
    };
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| next()).collect();
            norm(&mut c);
            c
        })
        .collect();
    (0..n)
        .map(|i| {
            let mut v: Vec<f32> = centres[i % 1000]
                .iter()
                .map(|x| x + 0.08 * next())
                .collect();
            norm(&mut v);
            v
        })
        .collect()
}

fn meta(i: usize) -> PhotoMeta {
    let day = chrono::NaiveDate::from_ymd_opt(2015 + (i % 10) as i32, 6, 15).unwrap();
    PhotoMeta {
        taken: Some(Taken {
            local: day.and_hms_opt(12, 0, 0).unwrap(),
            offset_minutes: None,
            source: TimeSource::DateTimeOriginal,
        }),
        format: Some("JPEG".into()),
        ..Default::default()
    }
}

/// p50 and p99 of latencies in ms.
fn percentiles(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    (pct(0.5), pct(0.99))
}

/// Latency and recall@10 of `queries` in `scope`, against brute force over the files `keep`s.
fn measure(
    c: &dyn Collection,
    vs: &[Vec<f32>],
    queries: &[Vec<f32>],
    scope: &Scope,
    keep: impl Fn(usize) -> bool,
) -> (f64, f64, f64) {
    let mut times = Vec::new();
    let (mut found, mut total) = (0, 0);
    for q in queries {
        let t = Instant::now();
        let hits = c.search(q, 10, scope).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let mut truth: Vec<(f32, usize)> = vs
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i))
            .collect();
        truth.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: Vec<String> = truth[..10]
            .iter()
            .map(|t| format!("/photos/{:06}.jpg", t.1))
            .collect();
        found += hits.iter().filter(|h| want.contains(&h.path)).count();
        total += 10;
    }
    let (p50, p99) = percentiles(times);
    (p50, p99, found as f64 / total as f64)
}

fn run(c: &dyn Collection, vs: &[Vec<f32>], queries: &[Vec<f32>]) {
    c.claim(&ModelIdentity {
        name: "bench".into(),
        fingerprint: "bench".into(),
        legacy_fingerprint: None,
        dim: DIM,
        preprocess_version: 1,
        decode: "exact".into(),
        precision: "f32".into(),
        family: "clip".into(),
    })
    .unwrap();
    let items: Vec<Item> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| Item {
            source: "bench".into(),
            path: format!("/photos/{i:06}.jpg"),
            vector: v.clone(),
            meta: Some(meta(i)),
        })
        .collect();
    let t = Instant::now();
    for batch in items.chunks(1000) {
        c.upsert(batch).unwrap();
    }
    let upsert = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.flush().unwrap();
    // The first query waits for whatever the backend still builds (its index, a view).
    c.search(&queries[0], 10, &Scope::default()).unwrap();
    let ready = t.elapsed().as_secs_f64();
    let (p50, p99, recall) = measure(c, vs, queries, &Scope::default(), |_| true);
    println!(
        "{}: {} vectors upserted in {upsert:.1} s ({:.0} rows/s); flush + ready for queries {ready:.1} s; \
         top-10 latency p50 {p50:.1} ms, p99 {p99:.1} ms ({} queries); recall@10 {recall:.3}",
        c.location(),
        vs.len(),
        vs.len() as f64 / upsert,
        queries.len(),
    );
    let mut year = Filter::default();
    year.set("after", "2019").unwrap();
    year.set("before", "2019").unwrap();
    let scope = Scope {
        filter: year,
        ..Default::default()
    };
    let (p50, p99, recall) = measure(c, vs, &queries[..100], &scope, |i| i % 10 == 4);
    println!(
        "{}: filtered to one year (10% of the files): top-10 latency p50 {p50:.1} ms, p99 \
         {p99:.1} ms (100 queries); recall@10 {recall:.3}",
        c.location(),
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let vs = vectors(n);
    let queries: Vec<Vec<f32>> = (0..200)
        .map(|i| {
            let mut q: Vec<f32> = vs[(i * 7919 + 13) % n]
                .iter()
                .enumerate()
                .map(|(j, x)| x + 0.02 * (((i * 31 + j) % 7) as f32 - 3.0) / 3.0)
                .collect();
            let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            q.iter_mut().for_each(|x| *x /= norm);
            q
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    run(&LocalCollection::open(dir.path()).unwrap(), &vs, &queries);
    match std::env::var("CLIPSEARCH_TEST_MILVUS") {
        Err(_) => println!("Milvus: skipped (set CLIPSEARCH_TEST_MILVUS=HOST:PORT)"),
        Ok(addr) => {
            let url = format!("milvus://{addr}/bench_{}", std::process::id());
            let c = clipsearch_milvus::MilvusCollection::connect(&url).unwrap();
            run(&c, &vs, &queries);
            c.drop_collection().unwrap();
        }
    }
}
