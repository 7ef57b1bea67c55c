//! End-to-end indexing throughput on real photos with a ViT-B/32-shaped model (random weights:
//! speed does not depend on their values): images/s, peak RSS of the `clipsearch index` process,
//! and where the time went (decode CPU, model, store, publishing views for readers).
//!
//! Photos: `CLIPSEARCH_BENCH_PHOTOS=DIR`, or else the real photographs unpacked by
//! `../shared/tools/fetch-photos.sh` into `target/bench-photos`.
//! Both modes run, exact (the reference's arithmetic) and fast (`--fast`: DCT-scaled decoding and
//! an int8 image tower), and the cosine between their embeddings of each photo is printed.
//!
//! Peer: when the rclip baseline is set up (`bash ../shared/tools/rclip-baseline/setup.sh`), rclip
//! indexes the same photos from scratch alternately with clipsearch, in the same run, and the
//! ratios of the medians are printed with the CPU model.
//!
//! Run: `cargo bench -p clipsearch-cli --bench indexing` (add `--features jpeg-simd` for
//! libjpeg's SIMD code). `RUNS=3` rounds (rclip, exact, fast each); `MODE=exact|fast` runs one mode;
//! `BATCH=16 DECODE_THREADS=1` vary the defaults, batch 8 and one decoding thread per core.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clipsearch::embedding::dot;
use clipsearch::store::Store;

mod support;

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

/// Waits for the child `pid`; returns whether it succeeded and its peak resident set size in MB.
fn wait_with_peak_rss(pid: u32) -> (bool, f64) {
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 writes the status and a rusage struct into memory we own; the pid is our
    // own child's, not yet waited for.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(r, pid as i32, "wait4 failed");
    // SAFETY: initialised by wait4 (zeroed before).
    let rss = unsafe { usage.assume_init() }.ru_maxrss as f64 / 1024.0;
    (
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        rss,
    )
}

/// One `clipsearch index` run from scratch; returns the index directory and images/s.
fn index_run(photos: &Path, model: &Path, index: &Path, fast: bool, batch: &str) -> f64 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipsearch"));
    cmd.arg("index")
        .arg(photos)
        .arg("--index")
        .arg(index)
        .arg("--model")
        .arg(model)
        .args(["--json", "--batch-size", batch]);
    if fast {
        cmd.arg("--fast");
    }
    if let Ok(n) = std::env::var("DECODE_THREADS") {
        cmd.args(["--decode-threads", &n]);
    }
    let t = Instant::now();
    // Reaped by wait4 below, which also returns the child's own peak RSS.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let (ok, peak_mb) = wait_with_peak_rss(child.id());
    let wall = t.elapsed().as_secs_f64();
    assert!(ok, "clipsearch index failed");
    let s: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let rate = s["embedded"].as_f64().unwrap() / wall;
    println!(
        "{:5}: indexed {} ({} embedded, {} failed) in {wall:.1} s wall: {rate:.2} images/s, \
         peak RSS {peak_mb:.0} MB, batch {batch}",
        if fast { "fast" } else { "exact" },
        s["indexed"],
        s["embedded"],
        s["failed"],
    );
    println!("       time split: {}", s["timings"]);
    let publish = s["timings"]["publish_seconds"].as_f64().unwrap_or(0.0);
    println!(
        "       publishing: {} views in {publish:.3} s, {:.2}% of the run",
        s["timings"]["publications"],
        100.0 * publish / wall
    );
    rate
}

/// The rclip baseline (`../shared/tools/rclip-baseline`), if `setup.sh` has installed it:
/// `RCLIP_BASELINE=DIR`, else its default place.
fn rclip() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/rclip-baseline");
    let script = root.join("run-rclip.sh");
    let dir = std::env::var_os("RCLIP_BASELINE")
        .map(PathBuf::from)
        .or_else(|| dirs_home().map(|h| h.join(".cache/rclip-baseline")))?;
    (script.is_file() && dir.join("venv/bin/rclip").exists()).then_some((script, dir))
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// One rclip run from scratch over `photos`: images/s.
fn rclip_run(photos: &Path, (script, dir): &(PathBuf, PathBuf)) -> f64 {
    let out = Command::new("bash")
        .arg(script)
        .arg(photos)
        .arg(dir)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rclip failed: {line}");
    // "rclip: N images in S s = R images/s"
    let rate: f64 = line
        .split('=')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("rclip printed {line:?}"));
    println!("rclip: {}", line.trim().trim_start_matches("rclip: "));
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(photos) = photos() else {
        println!("no photos: set CLIPSEARCH_BENCH_PHOTOS=DIR (or provide ../shared/tools/fetch-photos.sh)");
        return;
    };
    let count = std::fs::read_dir(&photos).unwrap().count();
    println!("photos: {count} files in {}", photos.display());
    let tmp = tempfile::tempdir().unwrap();
    let model = support::vit_b32(tmp.path()).dir;
    let batch = std::env::var("BATCH").unwrap_or_else(|_| "8".into());
    let modes: &[bool] = match std::env::var("MODE").as_deref() {
        Ok("exact") => &[false],
        Ok("fast") => &[true],
        _ => &[false, true],
    };
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let peer = rclip();
    if peer.is_none() {
        println!(
            "rclip baseline not set up (bash ../shared/tools/rclip-baseline/setup.sh): no ratios"
        );
    }
    // The model's identity hashes its weights once (then cached): not part of any timed run.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let warm = Command::new(env!("CARGO_BIN_EXE_clipsearch"))
        .arg("index")
        .arg(&empty)
        .arg("--index")
        .arg(tmp.path().join("warm"))
        .arg("--model")
        .arg(&model)
        .args(["--json"])
        .output()
        .unwrap();
    assert!(warm.status.success());
    println!(
        "CPU: {}, {} runs of each, alternating",
        support::cpu_model(),
        runs
    );
    let (mut rclip_rates, mut rates) = (Vec::new(), vec![Vec::new(); 2]);
    for round in 0..runs {
        if let Some(p) = &peer {
            rclip_rates.push(rclip_run(&photos, p));
        }
        for &fast in modes {
            let dir = tmp
                .path()
                .join(format!("{}-{round}", if fast { "fast" } else { "exact" }));
            rates[fast as usize].push(index_run(&photos, &model, &dir, fast, &batch));
        }
    }
    let rclip_median = (!rclip_rates.is_empty()).then(|| median(rclip_rates.clone()));
    if let Some(r) = rclip_median {
        println!("rclip median: {r:.2} images/s");
    }
    for &fast in modes {
        let m = median(rates[fast as usize].clone());
        let ratio = rclip_median
            .map(|r| format!(", {:.2}x rclip's median", m / r))
            .unwrap_or_default();
        println!(
            "clipsearch {} median: {m:.2} images/s{ratio}",
            if fast { "fast" } else { "exact" }
        );
    }
    if modes.len() == 2 {
        // How far fast mode's embeddings are from exact mode's, photo by photo.
        let exact = Store::open_existing(&tmp.path().join("exact-0")).unwrap();
        let fast = Store::open_existing(&tmp.path().join("fast-0")).unwrap();
        let mut cosines: Vec<f32> = exact
            .files()
            .filter_map(|r| {
                let (path, _) = r.unwrap();
                let a = exact.embedding_of(&path).unwrap()?;
                let b = fast.embedding_of(&path).unwrap()?;
                Some(dot(&a, &b))
            })
            .collect();
        cosines.sort_by(f32::total_cmp);
        let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
        println!(
            "fast vs exact embeddings over {} photos: cosine min {:.4}, median {:.4}, mean {mean:.4}",
            cosines.len(),
            cosines[0],
            cosines[cosines.len() / 2]
        );
    }
}
