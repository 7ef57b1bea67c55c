//! Search while indexing: readers (`search`, `similar`, `dupes`, `stats`) run beside an index run,
//! in any number of processes, reading the views it publishes; writers stay exclusive. The real
//! binary, temp directories, the tiny fixture model.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

/// `n` photo-like JPEGs; large enough that a run with batch 1 lasts a few seconds.
fn photos(dir: &Path, n: usize, seed: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let p = dir.join(format!("img{i:04}.jpg"));
            write_jpeg(&p, &photo(480, 360, seed + i as u32));
            p
        })
        .collect()
}

/// An index run slowed to one image per batch, publishing after every batch.
fn slow_index(photos: &Path, idx: &Path) -> Child {
    index_command(photos, idx)
        .args(["--batch-size", "1", "--decode-threads", "1"])
        .args(["--publish-interval", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn search(idx: &Path) -> Output {
    run(clipsearch()
        .args(["search", "a photo", "-n", "100000", "--json", "--index"])
        .arg(idx))
}

/// The generation of the view in force (0 before the first).
fn generation(idx: &Path) -> u64 {
    std::fs::read(idx.join("view.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["generation"].as_u64())
        .unwrap_or(0)
}

fn running(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

/// Waits until the run has published its first view (or ended).
fn wait_for_view(child: &mut Child, idx: &Path) {
    let t = Instant::now();
    while !idx.join("view.json").exists() && running(child) {
        assert!(t.elapsed() < Duration::from_secs(60), "no view published");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn search_similar_and_dupes_answer_during_an_index_run_and_never_lose_results() {
    let tmp = tempfile::tempdir().unwrap();
    const N: usize = 300;
    let files = photos(&tmp.path().join("photos"), N, 1000);
    let idx = tmp.path().join("idx");
    let mut child = slow_index(&tmp.path().join("photos"), &idx);
    wait_for_view(&mut child, &idx);
    let (mut last, mut partial, mut rounds) = (0usize, 0usize, 0usize);
    while running(&mut child) {
        let out = search(&idx);
        assert!(
            out.status.success(),
            "search during the run: {}",
            stderr(&out)
        );
        let n = json_lines(&out).len();
        assert!(n >= last, "results went from {last} down to {n}");
        if n > 0 && n < N {
            partial += 1;
        }
        last = n;
        let out = run(clipsearch()
            .arg("similar")
            .arg(&files[rounds % N])
            .args(["--json", "--index"])
            .arg(&idx));
        assert!(
            out.status.success(),
            "similar during the run: {}",
            stderr(&out)
        );
        // Answers, not just an exit status: a published view holds files to be near.
        let similar = json_lines(&out);
        assert!(!similar.is_empty(), "similar found nothing during the run");
        assert!(
            similar
                .iter()
                .all(|r| r["path"].is_string() && r["score"].as_f64().is_some_and(f64::is_finite)),
            "{similar:?}"
        );
        let out = run(clipsearch()
            .args(["dupes", "--json", "--threshold", "0.9999", "--index"])
            .arg(&idx));
        assert!(
            out.status.success(),
            "dupes during the run: {}",
            stderr(&out)
        );
        // Every line a group of two or more files (the photos are distinct: usually none).
        for group in json_lines(&out) {
            let n = group["files"].as_array().map_or(0, Vec::len);
            assert!(n >= 2, "a duplicate group of {n}: {group}");
        }
        rounds += 1;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &json_lines(&out)[0];
    assert_eq!(summary["indexed"], N, "{summary}");
    let publications = summary["timings"]["publications"].as_u64().unwrap();
    eprintln!("{rounds} rounds of queries, {partial} saw a partial index; {publications} views");
    assert!(
        partial > 0,
        "no search saw the index part-way: the run was too short to test"
    );
    assert!(
        publications > 2,
        "views were published during the run: {summary}"
    );
    // After the run every file is seen, once.
    let paths = paths_of(&json_lines(&search(&idx)));
    assert_eq!(paths.len(), N);
    let unique: std::collections::HashSet<_> = paths.iter().collect();
    assert_eq!(unique.len(), N);
}

#[test]
fn eight_reader_processes_never_fail_during_a_run_and_a_second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    const N: usize = 200;
    photos(&tmp.path().join("photos"), N, 5000);
    let idx = tmp.path().join("idx");
    let mut child = slow_index(&tmp.path().join("photos"), &idx);
    wait_for_view(&mut child, &idx);
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|r| {
            let (idx, done) = (idx.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, Vec::new());
                while !done.load(Ordering::Relaxed) {
                    // Half the readers search, half ask for the index's figures.
                    let out = if r % 2 == 0 {
                        search(&idx)
                    } else {
                        run(clipsearch().args(["stats", "--json", "--index"]).arg(&idx))
                    };
                    if out.status.success() {
                        ok += 1;
                    } else {
                        failed.push(stderr(&out));
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    // A second writer is refused while the first runs, with who holds the index.
    let second = run(&mut index_command(&tmp.path().join("photos"), &idx));
    let still_running = running(&mut child);
    while running(&mut child) {
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        let (ok, failed) = r.join().unwrap();
        assert!(failed.is_empty(), "reader failures: {failed:?}");
        total += ok;
    }
    eprintln!("{total} reader commands, 0 failed");
    assert!(total >= 8, "every reader ran");
    if still_running {
        assert_eq!(second.status.code(), Some(5), "{}", stderr(&second));
        assert!(
            stderr(&second).contains("in use by process"),
            "{}",
            stderr(&second)
        );
    }
    assert!(
        still_running,
        "the run ended before the second writer was tried"
    );
    assert!(child.wait().unwrap().success());
    let stats = run(clipsearch().args(["stats", "--json", "--index"]).arg(&idx));
    let stats = &json_lines(&stats)[0];
    assert_eq!(stats["files"], N, "{stats}");
}

#[test]
fn readers_keep_answering_through_kills_of_the_writer_and_the_next_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    const N: usize = 400;
    let dir = tmp.path().join("photos");
    photos(&dir, N, 9000);
    let idx = tmp.path().join("idx");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (idx, done) = (idx.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut seen, mut failures, mut max) = (0, Vec::new(), 0);
            while !done.load(Ordering::Relaxed) {
                // Before the first view, "not published yet" is the right answer: only a
                // failure while a view existed when the search began counts.
                let had_view = idx.join("view.json").exists();
                let out = search(&idx);
                if out.status.success() {
                    seen += 1;
                    let n = json_lines(&out).len();
                    // Killed runs publish nothing new, but never take anything away.
                    if n < max {
                        failures.push(format!("results went from {max} to {n}"));
                    }
                    max = max.max(n);
                } else if had_view {
                    failures.push(stderr(&out));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (seen, failures)
        })
    };
    // Each round is killed a moment after it has published a view of its own: mid-run, with
    // work committed both before and after that view.
    let mut killed = 0;
    for (round, delay) in [0u64, 40, 90, 150].into_iter().enumerate() {
        let before = generation(&idx);
        let mut child = slow_index(&dir, &idx);
        let t = Instant::now();
        while generation(&idx) == before && running(&mut child) {
            assert!(t.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        eprintln!("round {round}: killed {delay} ms after a publication ({status})");
        killed += usize::from(!status.success());
    }
    assert!(killed >= 3, "the kills landed mid-run");
    let s = index(&dir, &idx, &[]);
    assert_eq!(
        s["indexed"].as_u64().unwrap() + s["unchanged"].as_u64().unwrap(),
        N as u64,
        "{s}"
    );
    std::thread::sleep(Duration::from_millis(100));
    done.store(true, Ordering::Relaxed);
    let (seen, failures) = reader.join().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(seen > 0, "the reader got answers");
    let paths = paths_of(&json_lines(&search(&idx)));
    assert_eq!(
        paths.len(),
        N,
        "every file once after the run that completed"
    );
}

#[test]
fn before_the_first_view_a_reader_says_so_and_an_unpublished_index_is_published_on_first_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    photos(&dir, 6, 300);
    let idx = tmp.path().join("idx");
    index(&dir, &idx, &[]);
    // As an index written by a version without views (or a run killed before its first
    // publication) looks: the database alone, holding every vector itself.
    let vectors: Vec<([u8; 16], Vec<f32>)> = {
        let store = clipsearch::store::Store::open(&idx, None).unwrap();
        let files: Vec<_> = store.files().map(Result::unwrap).collect();
        files
            .iter()
            .map(|(_, r)| (r.hash, store.embedding(&r.hash).unwrap().unwrap()))
            .collect()
    };
    {
        let db = clipsearch::store::sled_config(&idx.join("db"))
            .open()
            .unwrap();
        let embeddings = db.open_tree("embeddings").unwrap();
        for (hash, v) in &vectors {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            embeddings.insert(hash, bytes).unwrap();
        }
        db.drop_tree("located").unwrap();
        db.flush().unwrap();
    }
    for e in std::fs::read_dir(&idx).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("view") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    // While a writer holds the database, the reader says the first results are not out yet.
    {
        let holder = clipsearch::store::Store::open(&idx, None).unwrap();
        let out = search(&idx);
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("has not published results yet; try again in a few seconds"),
            "{}",
            stderr(&out)
        );
        drop(holder);
    }
    // With the database free, the first reader publishes it (no model, no decoding).
    let out = search(&idx);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 6);
    assert!(idx.join("view.json").exists());
    // And an index with no files at all says it is empty, not busy.
    let empty = tmp.path().join("empty-photos");
    std::fs::create_dir_all(&empty).unwrap();
    let idx2 = tmp.path().join("idx2");
    index(&empty, &idx2, &[]);
    let out = search(&idx2);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
}
