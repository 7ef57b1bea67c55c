//! Many machines, one Milvus collection, on the real binary: two indexers with their own local
//! catalogs index disjoint folders at the same time; a third process sees the union, each file
//! with the machine it lives on; renames and deletions on one machine propagate; an indexer
//! that dies mid-push (after Milvus acknowledged a batch it had not yet recorded) and one killed
//! at random moments are repaired by their next runs, every file present exactly once.
//!
//! Needs a Milvus server: `.ci/run` starts milvus-lite and sets `CLIPSEARCH_TEST_MILVUS`;
//! without it the tests say how to run them and do nothing (and fail under
//! `CLIPSEARCH_REQUIRE_MILVUS=1`, as in CI).

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use support::*;

fn server() -> Option<String> {
    match std::env::var("CLIPSEARCH_TEST_MILVUS") {
        Ok(addr) => Some(addr),
        Err(_) => {
            if std::env::var("CLIPSEARCH_REQUIRE_MILVUS").as_deref() == Ok("1") {
                panic!("CLIPSEARCH_REQUIRE_MILVUS=1 but CLIPSEARCH_TEST_MILVUS is not set");
            }
            eprintln!(
                "SKIPPED: no Milvus server. Start one (`pip install milvus-lite==3.2.2 pymilvus; \
                 milvus-lite server --data-dir /tmp/milvus --host 127.0.0.1 --port 19531`) and \
                 set CLIPSEARCH_TEST_MILVUS=127.0.0.1:19531 (bash .ci/run does)"
            );
            None
        }
    }
}

fn collection_url(addr: &str, tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("milvus://{addr}/c_{tag}_{}_{nanos}", std::process::id())
}

fn photos(dir: &Path, n: usize, seed: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        write_jpeg(
            &dir.join(format!("p{i:03}.jpg")),
            &photo(96, 72, seed + i as u32),
        );
    }
}

/// `clipsearch index DIR --index URL --source S --catalog C --model tiny --json`.
fn indexer(dir: &Path, url: &str, source: &str, catalog: &Path) -> Command {
    let mut cmd = clipsearch();
    cmd.arg("index")
        .arg(dir)
        .args(["--index", url, "--source", source, "--catalog"])
        .arg(catalog)
        .arg("--model")
        .arg(tiny_model())
        .arg("--json");
    cmd
}

/// Every (source, path) the collection returns for a broad query, with how often.
fn held(url: &str) -> HashMap<(String, String), usize> {
    let out = run(clipsearch().args(["search", "a photo", "-n", "1000", "--json", "--index", url]));
    assert!(out.status.success(), "search: {}", stderr(&out));
    let mut seen = HashMap::new();
    for r in json_lines(&out) {
        let key = (
            r["source"].as_str().unwrap().to_string(),
            r["path"].as_str().unwrap().to_string(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

fn expected(source: &str, dir: &Path) -> Vec<(String, String)> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            (
                source.to_string(),
                e.unwrap().path().to_string_lossy().into_owned(),
            )
        })
        .collect()
}

#[test]
fn two_machines_one_collection_renames_deletes_and_crashes() {
    let Some(addr) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    photos(&a, 20, 10);
    photos(&b, 16, 500);
    let url = collection_url(&addr, "two");
    let (cat_a, cat_b) = (tmp.path().join("cat_a"), tmp.path().join("cat_b"));

    // Both machines at once, each with its own catalog.
    let ta = indexer(&a, &url, "alpha", &cat_a).spawn().unwrap();
    let tb = indexer(&b, &url, "beta", &cat_b).spawn().unwrap();
    for mut child in [ta, tb] {
        assert!(child.wait().unwrap().success());
    }
    let seen = held(&url);
    let mut want = expected("alpha", &a);
    want.extend(expected("beta", &b));
    assert_eq!(seen.len(), 36, "the union: {seen:?}");
    for w in &want {
        assert_eq!(seen.get(w), Some(&1), "{w:?} exactly once");
    }

    // stats counts every machine's files.
    let out = run(clipsearch().args(["stats", "--json", "--index", &url]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["files"], 36);
    // Commands that need a local index say so.
    let out = run(clipsearch().args(["dupes", "--index", &url]));
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains("works on a local index"),
        "{}",
        stderr(&out)
    );

    // A rerun with nothing changed pushes nothing.
    let out = run(&mut indexer(&a, &url, "alpha", &cat_a));
    let summary = &json_lines(&out)[0];
    assert_eq!(
        (
            summary["embedded"].as_u64(),
            summary["push"]["pushed"].as_u64()
        ),
        (Some(0), Some(0))
    );

    // A rename and a deletion on machine alpha reach the collection; beta's files stay.
    std::fs::rename(a.join("p000.jpg"), a.join("renamed.jpg")).unwrap();
    std::fs::remove_file(a.join("p001.jpg")).unwrap();
    let out = run(&mut indexer(&a, &url, "alpha", &cat_a));
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &json_lines(&out)[0];
    assert_eq!(summary["push"]["removed"], 2, "{summary}");
    assert_eq!(summary["push"]["pushed"], 1, "{summary}");
    let seen = held(&url);
    assert_eq!(seen.len(), 35);
    let a_path = |name: &str| {
        a.canonicalize()
            .unwrap()
            .join(name)
            .to_string_lossy()
            .into_owned()
    };
    assert!(seen.contains_key(&("alpha".into(), a_path("renamed.jpg"))));
    assert!(!seen.contains_key(&("alpha".into(), a_path("p000.jpg"))));
    assert!(!seen.contains_key(&("alpha".into(), a_path("p001.jpg"))));
    assert!(seen.values().all(|&n| n == 1));

    // Death mid-push, at the worst moment: Milvus acknowledged the 2nd batch, the catalog did
    // not record it. The next run repairs it: nothing lost, nothing twice.
    let c = tmp.path().join("c");
    photos(&c, 12, 900);
    let cat_c = tmp.path().join("cat_c");
    let out = run(indexer(&c, &url, "gamma", &cat_c)
        .env("CLIPSEARCH_PUSH_BATCH", "3")
        .env("CLIPSEARCH_TEST_ABORT_PUSH", "2"));
    assert!(!out.status.success(), "the hook aborts the process");
    let partial = held(&url).keys().filter(|k| k.0 == "gamma").count();
    assert_eq!(partial, 6, "two batches of three reached the collection");
    let out = run(indexer(&c, &url, "gamma", &cat_c).env("CLIPSEARCH_PUSH_BATCH", "3"));
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &json_lines(&out)[0];
    assert_eq!(
        summary["embedded"], 0,
        "the catalog had everything: {summary}"
    );
    assert_eq!(
        summary["push"]["pushed"], 9,
        "the unrecorded batch again, and the rest"
    );
    let seen = held(&url);
    for w in expected("gamma", &c) {
        assert_eq!(seen.get(&w), Some(&1), "{w:?} exactly once");
    }

    // kill -9 at moments spread over indexing and pushing, then a clean run.
    let d = tmp.path().join("d");
    photos(&d, 30, 1300);
    let cat_d = tmp.path().join("cat_d");
    for delay in [150u64, 400, 700, 1000] {
        let mut child = indexer(&d, &url, "delta", &cat_d)
            .env("CLIPSEARCH_PUSH_BATCH", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(run(&mut indexer(&d, &url, "delta", &cat_d))
        .status
        .success());
    let seen = held(&url);
    for w in expected("delta", &d) {
        assert_eq!(seen.get(&w), Some(&1), "{w:?} exactly once");
    }
    assert_eq!(seen.len(), 35 + 12 + 30);
    assert!(seen.values().all(|&n| n == 1));

    // Another model is refused with the local index's words; an unreachable server is named.
    let other = tmp.path().join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for f in std::fs::read_dir(tiny_model()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, other.join(f.file_name().unwrap())).unwrap();
    }
    // A different checkpoint: one byte of the weights changed.
    let w = other.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let out = run(clipsearch()
        .arg("index")
        .arg(&a)
        .args(["--index", &url, "--source", "alpha", "--catalog"])
        .arg(tmp.path().join("cat_other"))
        .arg("--model")
        .arg(&other));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("not comparable"), "{}", stderr(&out));
    let out = run(clipsearch().args(["search", "x", "--index", "milvus://127.0.0.1:1/nothing"]));
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("cannot reach Milvus at milvus://127.0.0.1:1/nothing"));
    if let Ok(c) = clipsearch_milvus::MilvusCollection::connect(&url) {
        let _ = c.drop_collection();
    }
}
