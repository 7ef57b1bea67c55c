//! Cold-start latency of `clipsearch search`: wall time from process start to printed results,
//! on a synthetic 100k-image index with a ViT-B/32-shaped model (random weights; speed does not
//! depend on their values). "cold" = a query text never seen (text tower loaded and run);
//! "warm" = a repeated query (answered from the index's query cache, no model loaded).
//! The OS page cache is warm in both: this measures our start-up, not the disk.
//! Run: `cargo bench -p clipsearch-cli --bench query_latency`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod support;

const N: usize = 100_000;

fn time_search(index: &Path, query: &str) -> f64 {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_clipsearch"))
        .args(["search", query, "-n", "10", "--index"])
        .arg(index)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 10);
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let model = support::vit_b32(tmp.path());
    let kind = "view";
    {
        let index = tmp.path().join("index");
        let t = Instant::now();
        support::build_index(&index, &model, N);
        println!(
            "{kind}: built a {N}-image index in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        time_search(&index, "warm-up: page cache");
        let cold: Vec<f64> = (0..5)
            .map(|i| time_search(&index, &format!("a dog on a beach {i}")))
            .collect();
        let warm: Vec<f64> = (0..5)
            .map(|_| time_search(&index, "a dog on a beach 0"))
            .collect();
        println!(
            "{kind}: search wall time at {N} vectors, ViT-B/32 text tower: cold median {:.3} s {cold:.3?}, warm (cached query) median {:.3} s {warm:.3?}",
            median(cold.clone()),
            median(warm.clone())
        );
    }
}
