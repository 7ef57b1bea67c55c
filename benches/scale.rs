//! A million photos on one machine: what a user waits for, at 1,000,000 x 512 (ViT-B/32's
//! embedding width; the clustered synthetic vectors of `support::clustered`, built through the
//! store as an index run commits them, then published).
//!
//! Prints: the build (commits, first publication, a periodic republication, one after 1% more
//! files), bytes on disk by part, recall@10 of the search queries use against the exact f32
//! scan (200 held-out queries), the library's per-query search time, `clipsearch search` from
//! process start to results (new text queries, so the text tower loads and runs; page cache
//! warm, and dropped) with the peak RSS of those processes, a filtered query keeping 1%, and
//! `clipsearch serve`'s latency per query (new texts, and repeated ones, which the query cache
//! answers without the tower: the search's own share).
//!
//! With `SCALE_FILES=N` (e.g. 210000) it measures instead a real index run over N small JPEG
//! files in N/1000 folders, generated here, with the bundled demo model (64-dimensional: what
//! everything but the model costs): the run's time, publication share and peak RSS, the index
//! directory's size, and, after a sync and a pause, 3 queries run 3 times each from process
//! start.
//!
//! Run: `cargo bench -p clipsearch-cli --bench scale`. `SCALE_N` sets the size (default
//! 1,000,000), `SCALE_DIR` keeps the index (and the generated files) there and reuses them on
//! the next run. Dropping the
//! page cache needs root (`/proc/sys/vm/drop_caches`); otherwise the index's and the model's
//! files are evicted one by one (`posix_fadvise`), which the output says.

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clipsearch::index::SearchIndex;

mod support;

const QUERIES: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn du(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Empties the page cache (all of it as root, else the files under `dirs`); says which.
fn drop_page_cache(dirs: &[&Path]) -> &'static str {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    if std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok() {
        return "page cache dropped (drop_caches)";
    }
    for dir in dirs {
        for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
            if let Ok(f) = std::fs::File::open(e.path()) {
                // SAFETY: a valid descriptor; advice only.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
    }
    "the index's and model's pages evicted (posix_fadvise; not root)"
}

/// Runs `clipsearch ARGS`; returns its wall time from spawn to exit, its peak RSS (MB) and its
/// output lines. The child is started by a copy of this benchmark in spawner mode: a child's
/// peak RSS counts the memory of the process it was forked from until its exec (this one holds
/// gigabytes), so only a grandchild of a small process measures itself alone.
fn run(args: &[&str]) -> (f64, f64, Vec<String>) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env("SCALE_SPAWN", report.path())
        .arg(env!("CARGO_BIN_EXE_clipsearch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clipsearch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(report.path()).unwrap();
    let (secs, kb) = report.trim().split_once(' ').unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (
        secs.parse().unwrap(),
        kb.parse::<f64>().unwrap() / 1024.0,
        lines,
    )
}

/// Spawner mode: runs the command in our arguments with inherited output, then writes its wall
/// time and peak RSS (KB, from wait4) to `report`; exits with its status.
fn spawn(report: &Path) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = Instant::now();
    let child = Command::new(&args[0]).args(&args[1..]).spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; the pid is our unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as i32);
    std::fs::write(report, format!("{secs} {}", usage.ru_maxrss)).unwrap();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    std::process::exit(if ok { 0 } else { 1 })
}

fn main() {
    if let Some(report) = std::env::var_os("SCALE_SPAWN") {
        spawn(Path::new(&report));
    }
    let n = env_usize("SCALE_N", 1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("SCALE_DIR").map(PathBuf::from);
    let root = kept.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root).unwrap();
    println!("CPU: {}", cpu_name());
    if let Some(files) = std::env::var("SCALE_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return real_files(&root, files);
    }
    let model_dir = root.join("vit-b32");
    let model = if model_dir.join("config.json").exists() {
        clipsearch::model::ModelFiles::local(&model_dir).unwrap()
    } else {
        support::vit_b32(&root)
    };
    let index = root.join(format!("index-{n}"));
    let dim = 512;
    if !index.join("view.json").exists() {
        let t = Instant::now();
        support::build_index(&index, &model, n);
        println!(
            "built {n} x {dim} through the store (commits, a publication every 100,000, merges) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    publications(&index, n, dim);
    let view_bytes: u64 = std::fs::read_dir(&index)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("view-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let manifest = clipsearch::store::view::read_manifest(&index)
        .unwrap()
        .unwrap();
    println!(
        "on disk: {:.0} MB in all = catalog (sled) {:.0} MB + view {:.0} MB ({} segments of {:?} \
         rows); the f32 vectors alone are {:.0} MB",
        du(&index) as f64 / 1e6,
        du(&index.join("db")) as f64 / 1e6,
        view_bytes as f64 / 1e6,
        manifest.segments.len(),
        manifest.segments.iter().map(|s| s.rows).collect::<Vec<_>>(),
        (n * dim * 4) as f64 / 1e6
    );

    recall(&index, n, dim);

    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let idx = index.to_str().unwrap();
    let search = |text: &str, extra: &[&str]| {
        let mut args = vec!["search", text, "-n", "10", "--index", idx];
        args.extend_from_slice(extra);
        let (secs, rss, lines) = run(&args);
        assert_eq!(lines.len(), 10, "{lines:?}");
        (secs, rss)
    };
    // Warm-up: the binary, the model and the index into the page cache.
    search(&format!("warm-up {stamp}"), &[]);
    let mut peak: f64 = 0.0;
    let mut timed = |label: &str, extra: &[&str], drop: bool| {
        let mut times = Vec::new();
        let mut how = "page cache warm";
        for i in 0..5 {
            if drop {
                how = drop_page_cache(&[&index, &model_dir]);
            }
            let (secs, rss) = search(&format!("a new query {stamp} {i} {}", label.len()), extra);
            times.push(secs);
            peak = peak.max(rss);
        }
        println!(
            "`clipsearch search` {label}, new text query, {how}: median {:.3} s, slowest {:.3} s \
             {times:.3?}",
            median(times.clone()),
            times.iter().cloned().fold(0.0, f64::max)
        );
    };
    // What the same query costs over 1,000 photos: the part no index size changes (the
    // process, the tokenizer, the text tower's load and run).
    let small = root.join("index-1000");
    if !small.join("view.json").exists() {
        support::build_index(&small, &model, 1000);
    }
    let small_idx = small.to_str().unwrap();
    let base: Vec<f64> = (0..5)
        .map(|i| {
            let text = format!("a new query over 1000 {stamp} {i}");
            run(&["search", &text, "-n", "10", "--index", small_idx]).0
        })
        .collect();
    println!(
        "the same over a 1,000-photo index (what does not depend on size): median {:.3} s {base:.3?}",
        median(base.clone())
    );
    timed("unfiltered", &[], false);
    timed(
        "filtered (after:1950 before:1950, 1% kept)",
        &["after:1950", "before:1950"],
        false,
    );
    timed("unfiltered", &[], true);
    println!("peak RSS of those search processes: {peak:.0} MB");

    serve(&index, stamp);
}

fn cpu_name() -> String {
    format!(
        "{}, {} threads",
        support::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// What publishing costs at this size: again as it is (a periodic publication with nothing
/// new), and after 1% more files were committed.
fn publications(index: &Path, n: usize, dim: usize) {
    let store = clipsearch::store::Store::open(index, None).unwrap();
    let t = Instant::now();
    clipsearch::index::publish(&store).unwrap();
    println!(
        "publish again at {n} files (nothing new): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let more = n / 100;
    let entries: Vec<clipsearch::store::NewEntry> = (0..more)
        .map(|j| {
            let i = n + j;
            clipsearch::store::NewEntry {
                path: format!("/photos/new/{i:07}-{}.jpg", store.new_id().unwrap()).into(),
                record: clipsearch::store::FileRecord {
                    id: store.new_id().unwrap(),
                    size: 1,
                    mtime_ns: 0,
                    hash: clipsearch::store::content_hash(format!("new {i} {}", n).as_bytes()),
                    width: 1,
                    height: 1,
                    raw: None,
                    meta: Some(support::year_meta(i)),
                },
                embedding: Some(support::clustered(dim, i, 0)),
            }
        })
        .collect();
    let t = Instant::now();
    for chunk in entries.chunks(2000) {
        store.commit(chunk).unwrap();
    }
    let commit = t.elapsed().as_secs_f64();
    let t = Instant::now();
    clipsearch::index::publish(&store).unwrap();
    println!(
        "{more} more files: committed in {commit:.2} s, published in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // And out again, so that reruns measure the same index.
    for e in &entries {
        store.remove_file(&e.path).unwrap();
    }
    store.collect_garbage().unwrap();
    let t = Instant::now();
    clipsearch::index::publish_and_settle(&store).unwrap();
    println!(
        "the same {more} files removed: published (and merges settled) in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    store.flush().unwrap();
}

/// Recall@10 of the search queries use (the codes, rescored) against the exact f32 scan, and
/// the per-query time of each, in this process (page cache warm).
fn recall(index: &Path, n: usize, dim: usize) {
    let codes = SearchIndex::open(index).unwrap();
    let exact = SearchIndex::open(index).unwrap().with_scan(usize::MAX, 0);
    let held_out: Vec<Vec<f32>> = (0..QUERIES)
        .map(|q| support::clustered(dim, (q * 7919 + 13) % n, 1))
        .collect();
    let (mut found, mut total) = (0, 0);
    let (mut t_codes, mut t_exact) = (Vec::new(), Vec::new());
    for q in &held_out {
        let t = Instant::now();
        let truth: Vec<u64> = exact.search(q, 10).iter().map(|h| h.id).collect();
        t_exact.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let got = codes.search(q, 10);
        t_codes.push(t.elapsed().as_secs_f64() * 1e3);
        found += got.iter().filter(|h| truth.contains(&h.id)).count();
        total += truth.len();
    }
    println!(
        "recall@10 of the codes (rescoring at least {} candidates) against the exact f32 scan, \
         {QUERIES} held-out queries: {:.4}",
        clipsearch::index::RESCORE_MIN,
        found as f64 / total as f64
    );
    println!(
        "per query in one process, warm: codes + rescoring median {:.2} ms, exact f32 scan \
         median {:.2} ms",
        median(t_codes),
        median(t_exact)
    );
}

/// `clipsearch serve` over the index: latency of new text queries (tower included) and of
/// repeated ones (the query cache answers the text: what the search itself costs).
fn serve(index: &Path, stamp: u128) {
    let (mut server, base) = support::serve(index, &[]);
    let get = |q: &str| {
        let t = Instant::now();
        let body = ureq::get(&format!("{base}/api/search"))
            .query("q", q)
            .query("n", "10")
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let secs = t.elapsed().as_secs_f64() * 1e3;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["results"].as_array().map(Vec::len), Some(10), "{body}");
        secs
    };
    get("warm-up");
    let new: Vec<f64> = (0..50)
        .map(|i| get(&format!("serve query {stamp} {i}")))
        .collect();
    let repeated: Vec<f64> = (0..50)
        .map(|i| get(&format!("serve query {stamp} {}", i % 50)))
        .collect();
    println!(
        "`clipsearch serve`, 50 sequential queries each: new texts p50 {:.1} ms (text tower \
         included), repeated texts p50 {:.1} ms (the search and the reply alone)",
        median(new),
        median(repeated)
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// A small JPEG, different for every `i` (colour blocks), as thumbnails and icons are.
fn small_photo(i: usize) -> image::RgbImage {
    let (a, b) = ((i * 37 % 251) as u8, (i * 91 % 241) as u8);
    image::RgbImage::from_fn(64, 48, |x, y| {
        let c = ((x / 16 + y / 12) as usize + i) % 4;
        match c {
            0 => image::Rgb([a, b, 40]),
            1 => image::Rgb([b, 30, a]),
            2 => image::Rgb([200, a, b]),
            _ => image::Rgb([(x * 4) as u8, (y * 5) as u8, a ^ b]),
        }
    })
}

/// `clipsearch index` over `files` generated small JPEGs with the demo model, then searches.
fn real_files(root: &Path, files: usize) {
    let photos = root.join(format!("photos-{files}"));
    if !photos.join("done").exists() {
        let t = Instant::now();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for t in 0..threads {
                let photos = &photos;
                s.spawn(move || {
                    for i in (t..files).step_by(threads) {
                        let dir = photos.join(format!("{:03}", i / 1000));
                        std::fs::create_dir_all(&dir).unwrap();
                        small_photo(i)
                            .save(dir.join(format!("{i:06}.jpg")))
                            .unwrap();
                    }
                });
            }
        });
        std::fs::write(photos.join("done"), "").unwrap();
        println!(
            "generated {files} JPEGs of 64x48 in {} folders in {:.1} s ({:.0} MB)",
            files.div_ceil(1000),
            t.elapsed().as_secs_f64(),
            du(&photos) as f64 / 1e6
        );
    }
    let index = root.join(format!("index-files-{files}"));
    let _ = std::fs::remove_dir_all(&index);
    let (secs, rss, lines) = run(&[
        "index",
        photos.to_str().unwrap(),
        "--model",
        "demo",
        "--json",
        "--index",
        index.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let publish = summary["timings"]["publish_seconds"].as_f64().unwrap();
    let run_secs = summary["seconds"].as_f64().unwrap();
    let commits = summary["timings"]["store_seconds"].as_f64().unwrap();
    println!(
        "`clipsearch index` of {files} files, demo model: {secs:.1} s wall ({:.0} images/s), peak RSS {rss:.0} MB; publications {publish:.2} s of {run_secs:.1} s = {:.1}%; commits to the catalog {commits:.1} s = {:.1}%",
        summary["embedded"].as_f64().unwrap_or(0.0) / run_secs,
        100.0 * publish / run_secs,
        100.0 * commits / run_secs
    );
    let db = du(&index.join("db"));
    println!(
        "index directory: {:.0} MB (du: {:.0} MB) = catalog (sled) {:.0} MB + view {:.0} MB; its f32 vectors are {:.0} MB",
        du(&index) as f64 / 1e6,
        du_sm(&index),
        db as f64 / 1e6,
        (du(&index) - db) as f64 / 1e6,
        (files * 64 * 4) as f64 / 1e6
    );
    // As a user right after the run: the writes synced, a pause, then queries.
    // SAFETY: no arguments.
    unsafe { libc::sync() };
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut times = Vec::new();
    for q in [
        "a red square",
        "blue and green blocks",
        "a photo of a sunset",
    ] {
        for _ in 0..3 {
            let (secs, _, lines) =
                run(&["search", q, "-n", "10", "--index", index.to_str().unwrap()]);
            assert_eq!(lines.len(), 10);
            times.push(secs);
        }
    }
    println!(
        "`clipsearch search`, 3 queries x 3 runs from process start: median {:.3} s, slowest {:.3} s {times:.3?}",
        median(times.clone()),
        times.iter().cloned().fold(0.0, f64::max)
    );
}

/// `du -sm`: megabytes of blocks allocated.
fn du_sm(path: &Path) -> f64 {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum::<u64>() as f64
        / (1024.0 * 1024.0)
}
