//! End-to-end indexing throughput on real photos with a ViT-B/32-shaped model (random weights:
//! speed does not depend on their values): images/s, peak RSS of the `clipsearch index` process,
//! and where the time went (decode CPU, model, store, snapshot).
//!
//! Photos: `CLIPSEARCH_BENCH_PHOTOS=DIR`, or else the real photographs unpacked by
//! `../shared/tools/fetch-photos.sh` into `target/bench-photos`.
//! Run: `cargo bench -p clipsearch-cli --bench indexing` (`BATCH=16 DECODE_THREADS=1` to vary
//! the defaults, batch 8 and one decoding thread per core; `FAST=1` for `--fast` decoding).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clipsearch::model::{synthetic, ClipConfig};

fn photos() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLIPSEARCH_BENCH_PHOTOS") {
        return Some(dir.into());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("target/bench-photos");
    if dir.is_dir() && std::fs::read_dir(&dir).ok()?.next().is_some() {
        return Some(dir);
    }
    let script = root.join("../shared/tools/fetch-photos.sh");
    if !script.is_file() {
        return None;
    }
    let ok = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .status()
        .ok()?
        .success();
    ok.then_some(dir)
}

/// Peak resident set size of the largest child process waited for, in MB.
fn children_peak_rss_mb() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage struct into the pointer we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    // SAFETY: initialised by getrusage (zeroed before, in case of failure).
    unsafe { usage.assume_init() }.ru_maxrss as f64 / 1024.0
}

fn main() {
    let Some(photos) = photos() else {
        println!("no photos: set CLIPSEARCH_BENCH_PHOTOS=DIR (or provide ../shared/tools/fetch-photos.sh)");
        return;
    };
    let count = std::fs::read_dir(&photos).unwrap().count();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("vit-b32");
    let tokenizer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-clip/tokenizer.json");
    synthetic::write_random_checkpoint(&model, &ClipConfig::vit_b32(), &tokenizer).unwrap();
    let batch = std::env::var("BATCH").unwrap_or_else(|_| "8".into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipsearch"));
    cmd.arg("index")
        .arg(&photos)
        .arg("--index")
        .arg(tmp.path().join("index"))
        .arg("--model")
        .arg(&model)
        .args(["--json", "--batch-size", &batch]);
    let fast = std::env::var_os("FAST").is_some();
    if fast {
        cmd.arg("--fast");
    }
    if let Ok(n) = std::env::var("DECODE_THREADS") {
        cmd.args(["--decode-threads", &n]);
    }
    let t = Instant::now();
    let out = cmd.output().unwrap();
    let wall = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let embedded = s["embedded"].as_f64().unwrap();
    println!("photos: {count} files in {}", photos.display());
    println!(
        "indexed {} ({} embedded, {} failed) in {wall:.1} s wall: {:.2} images/s, peak RSS {:.0} MB (batch {batch}{})",
        s["indexed"],
        s["embedded"],
        s["failed"],
        embedded / wall,
        children_peak_rss_mb(),
        if fast { ", --fast" } else { "" }
    );
    println!("time split: {}", s["timings"]);
}
