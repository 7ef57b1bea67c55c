//! Load on `clipsearch serve`: 8 concurrent clients send text queries (each new, so each runs
//! the text tower) over loopback to a server holding a 100k-vector index, while `--watch`
//! indexes photos that keep arriving. Prints queries/s and p50/p99 latency, and how many
//! photos were indexed meanwhile. ViT-B/32-shaped model with random weights (speed does not
//! depend on their values). Bounded: `SERVE_LOAD_SECONDS` (default 20) of load, loopback only.
//! Run: `cargo bench -p clipsearch-cli --bench serve_load`.

use std::time::{Duration, Instant};

mod support;

const N: usize = 100_000;
const CLIENTS: usize = 8;

fn photo(i: u32) -> image::RgbImage {
    image::RgbImage::from_fn(1600, 1200, |x, y| {
        image::Rgb([
            (x * 7 + i * 13) as u8,
            (y * 5 + i * 29) as u8,
            ((x ^ y) + i) as u8,
        ])
    })
}

fn main() {
    let seconds: u64 = std::env::var("SERVE_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let model = support::vit_b32(tmp.path());
    let index = tmp.path().join("index");
    let t = Instant::now();
    support::build_index(&index, &model, N);
    println!(
        "built a {N}-vector index in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let incoming = tmp.path().join("incoming");
    std::fs::create_dir(&incoming).unwrap();
    let (mut server, base) = support::serve(&index, &["--watch".as_ref(), incoming.as_os_str()]);
    let stats = || -> serde_json::Value {
        let text = ureq::get(&format!("{base}/api/stats"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    // Warm-up: load the text tower once.
    ureq::get(&format!("{base}/api/search?q=warm-up"))
        .call()
        .unwrap();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let writer = {
        let incoming = incoming.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while Instant::now() < deadline {
                photo(i)
                    .save(incoming.join(format!("new-{i:04}.jpg")))
                    .unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            i
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let base = base.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut i = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let url = format!("{base}/api/search?n=10&q=photo+{c}+number+{i}");
                    // A reply counts only if it is what a client wants: 10 results, each
                    // with a path and a score, best first.
                    let good = ureq::get(&url)
                        .timeout(Duration::from_secs(60))
                        .call()
                        .ok()
                        .and_then(|r| r.into_string().ok())
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                        .is_some_and(|v| {
                            let hits = v["results"].as_array().cloned().unwrap_or_default();
                            let scores: Vec<f64> =
                                hits.iter().filter_map(|h| h["score"].as_f64()).collect();
                            hits.len() == 10
                                && scores.len() == 10
                                && hits.iter().all(|h| h["path"].is_string())
                                && scores.windows(2).all(|w| w[0] >= w[1])
                        });
                    if good {
                        latencies.push(t.elapsed().as_secs_f64());
                    } else {
                        errors += 1;
                    }
                    i += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for c in clients {
        let (l, e) = c.join().unwrap();
        all.extend(l);
        errors += e;
    }
    // Measured, not nominal: the last requests end after the deadline.
    let elapsed = started.elapsed().as_secs_f64();
    let written = writer.join().unwrap();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] * 1000.0;
    // Let the watcher catch up, to say how much indexing ran alongside.
    std::thread::sleep(Duration::from_secs(5));
    let files = stats()["files"].as_u64().unwrap();
    println!(
        "{CLIENTS} clients, {elapsed:.1} s, {N} vectors: {:.1} queries/s, p50 {:.0} ms, p99 {:.0} ms, {errors} errors or malformed replies; meanwhile {written} photos (1600x1200) arrived and the index grew to {files}",
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    let _ = server.kill();
    let _ = server.wait();
}
