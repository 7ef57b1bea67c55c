//! Many machines, one Milvus collection, on the real binary: two indexers with their own local
//! catalogs index disjoint folders at the same time; a third process sees the union, each file
//! with the machine it lives on; renames and deletions on one machine propagate; an indexer
//! that dies mid-push (after Milvus acknowledged a batch it had not yet recorded) and one killed
//! at random moments are repaired by their next runs, every file present exactly once.
//!
//! Needs a Milvus server: `.ci/run` starts milvus-lite and sets `CLIPSEARCH_TEST_MILVUS`;
//! the tests are `#[ignore]`d, so that a run without a server reports them as ignored (not
//! passed); `.ci/run` runs them with `--ignored`, where a missing server fails them.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use support::*;

fn server() -> Option<String> {
    match std::env::var("CLIPSEARCH_TEST_MILVUS") {
        Ok(addr) => Some(addr),
        // The tests are `#[ignore]`d unless asked for: asked for, a missing server fails them.
        Err(_) => panic!(
            "no Milvus server. Start one (`pip install milvus-lite==3.2.2 pymilvus; \
             milvus-lite server --data-dir /tmp/milvus --host 127.0.0.1 --port 19531`) and \
             set CLIPSEARCH_TEST_MILVUS=127.0.0.1:19531 (bash .ci/run does)"
        ),
    }
}

fn collection_url(addr: &str, tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("milvus://{addr}/c_{tag}_{}_{nanos}", std::process::id())
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
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
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
    // A file the collection does not hold is named, with the collection.
    let out = run(clipsearch().args(["info", "x.jpg", "--source", "alpha", "--index", &url]));
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains(&format!("x.jpg is not in the index at {url}")),
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

/// GET on a test server: status and JSON body.
fn api(addr: &str, target: &str) -> (u16, serde_json::Value) {
    let url = format!("http://{addr}{target}");
    match ureq::get(&url).call() {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{target}: {e}"),
    }
}

/// (source, path) of each member of each group, groups and members sorted.
fn groups_of(lines: &[serde_json::Value], default_source: &str) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = lines
        .iter()
        .map(|g| {
            let mut members: Vec<(String, String)> = g["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["source"].as_str().unwrap_or(default_source).to_string(),
                        m["path"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            members.sort();
            members
        })
        .collect();
    groups.sort();
    groups
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn dupes_and_serve_with_watch_on_a_shared_collection() {
    let Some(addr) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    photos(&a, 8, 40);
    photos(&b, 6, 700);
    // The same photo on both machines: only the shared collection sees the pair.
    std::fs::copy(a.join("p003.jpg"), b.join("copy.jpg")).unwrap();
    let url = collection_url(&addr, "serve");
    let (cat_a, cat_b) = (tmp.path().join("cat_a"), tmp.path().join("cat_b"));
    for (dir, source, cat) in [(&a, "alpha", &cat_a), (&b, "beta", &cat_b)] {
        let out = run(&mut indexer(dir, &url, source, cat));
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // dupes over every machine's files equals dupes over one local index of both folders.
    let threshold = "0.99999";
    let out =
        run(clipsearch().args(["dupes", "--json", "--threshold", threshold, "--index", &url]));
    assert!(out.status.success(), "{}", stderr(&out));
    let shared = groups_of(&json_lines(&out), "");
    let both = tmp.path().join("both");
    for dir in [&a, &b] {
        support::index(dir, &both, &[]);
    }
    let out = run(clipsearch()
        .args(["dupes", "--json", "--threshold", threshold, "--index"])
        .arg(&both));
    assert!(out.status.success(), "{}", stderr(&out));
    let local: Vec<Vec<String>> = groups_of(&json_lines(&out), "")
        .into_iter()
        .map(|g| g.into_iter().map(|m| m.1).collect())
        .collect();
    let a_path = |n: &str| {
        a.canonicalize()
            .unwrap()
            .join(n)
            .to_string_lossy()
            .into_owned()
    };
    let b_path = |n: &str| {
        b.canonicalize()
            .unwrap()
            .join(n)
            .to_string_lossy()
            .into_owned()
    };
    let pair = vec![
        ("alpha".to_string(), a_path("p003.jpg")),
        ("beta".to_string(), b_path("copy.jpg")),
    ];
    assert!(
        shared.contains(&pair),
        "the copy across machines: {shared:?}"
    );
    let shared_paths: Vec<Vec<String>> = shared
        .iter()
        .map(|g| g.iter().map(|m| m.1.clone()).collect())
        .collect();
    assert_eq!(shared_paths, local, "the same groups as a local index");
    let out = run(clipsearch().args(["dupes", "--threshold", threshold, "--index", &url]));
    assert!(
        stdout(&out).contains(&format!("  beta:{}", b_path("copy.jpg"))),
        "{}",
        stdout(&out)
    );

    // A server on machine alpha, keeping alpha's folder indexed and pushed.
    let srv = serve(
        Path::new(&url),
        &[
            "--source",
            "alpha",
            "--catalog",
            cat_a.to_str().unwrap(),
            "--watch",
            a.to_str().unwrap(),
        ],
    );
    let (status, body) = api(&srv.addr, "/api/search?q=a%20photo&n=100");
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 15, "every machine's files: {body}");
    let by = |source: &str, path: &str| {
        results
            .iter()
            .find(|r| r["source"] == source && r["path"] == path)
            .unwrap_or_else(|| panic!("{source}:{path} in {body}"))
            .clone()
    };
    let mine = by("alpha", &a_path("p003.jpg"));
    let theirs = by("beta", &b_path("copy.jpg"));
    for r in results {
        // Only this machine's files have a thumbnail and an image here.
        assert_eq!(r["thumbnail"].is_string(), r["source"] == "alpha", "{r}");
        assert_eq!(r["image"].is_string(), r["source"] == "alpha", "{r}");
    }
    let thumb = ureq::get(&format!(
        "http://{}{}",
        srv.addr,
        mine["thumbnail"].as_str().unwrap()
    ))
    .call()
    .unwrap();
    assert_eq!(thumb.content_type(), "image/jpeg");
    let (status, body) = api(&srv.addr, &format!("/thumb/{}", theirs["id"]));
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("lives on another machine"),
        "{body}"
    );
    // Similar to the other machine's file: its copy here, first.
    let (status, body) = api(&srv.addr, &format!("/api/similar/{}?n=3", theirs["id"]));
    assert_eq!(status, 200, "{body}");
    let first = &body["results"][0];
    assert_eq!(
        (&first["source"], &first["path"]),
        (&mine["source"], &mine["path"]),
        "{body}"
    );
    assert!(first["score"].as_f64().unwrap() > 0.9999);
    let (_, info) = api(&srv.addr, &format!("/api/info/{}", mine["id"]));
    assert_eq!(
        (info["source"].as_str(), info["width"].as_u64()),
        (Some("alpha"), Some(96)),
        "{info}"
    );
    let (_, info) = api(&srv.addr, &format!("/api/info/{}", theirs["id"]));
    assert_eq!(info["source"], "beta", "{info}");
    let (_, stats) = api(&srv.addr, "/api/stats");
    assert_eq!(
        (stats["files"].as_u64(), stats["source"].as_str()),
        (Some(15), Some("alpha"))
    );
    let (_, d) = api(&srv.addr, &format!("/api/dupes?threshold={threshold}"));
    assert!(
        d["groups"].as_array().unwrap().iter().any(|g| g
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["source"] == "beta" && m["path"] == b_path("copy.jpg").as_str())),
        "{d}"
    );

    // Filters and orders as on a local index: filters alone list by date.
    let (status, body) = api(&srv.addr, "/api/search?q=after:2000%20sort:-date&n=100");
    assert_eq!(status, 200, "{body}");
    let taken: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["taken"].as_str().unwrap())
        .collect();
    assert_eq!(taken.len(), 15, "{body}");
    assert!(
        taken.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {taken:?}"
    );
    let (status, body) = api(&srv.addr, "/api/search?q=photo&place=Atlantis");
    assert_eq!(status, 200);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("no indexed file matches place Atlantis"),
        "{body}"
    );

    // --watch: a new photo on alpha reaches the collection; another process sees it.
    write_jpeg(&a.join("new.jpg"), &photo(96, 72, 4242));
    let wanted = ("alpha".to_string(), a_path("new.jpg"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !held(&url).contains_key(&wanted) {
        assert!(std::time::Instant::now() < deadline, "new.jpg never pushed");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let (_, body) = api(&srv.addr, "/api/search?q=a%20photo&n=100");
    assert_eq!(body["results"].as_array().unwrap().len(), 16, "{body}");
    drop(srv);
    if let Ok(c) = clipsearch_milvus::MilvusCollection::connect(&url) {
        let _ = c.drop_collection();
    }
}

/// The photos with metadata (EXIF, XMP, GPS in JPEG, PNG and WebP) of `tests/fixtures/exif`.
fn photos_with_metadata(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(fixtures().join("exif")).unwrap() {
        let p = e.unwrap().path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ["jpg", "png", "webp"].contains(&ext) {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
#[ignore = "needs a Milvus server: CLIPSEARCH_TEST_MILVUS=HOST:PORT (bash .ci/run starts one and runs these)"]
fn filters_and_date_order_on_a_shared_collection_equal_the_local_index() {
    let Some(addr) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    photos_with_metadata(&dir);
    // FLAT: exact search, so that rankings compare exactly.
    let url = format!("{}?index=flat", collection_url(&addr, "meta"));
    let catalog = tmp.path().join("catalog");
    let out = run(&mut indexer(&dir, &url, "alpha", &catalog));
    assert!(out.status.success(), "{}", stderr(&out));

    // The catalog is a local index of the same photos: each query must answer the same.
    let ask = |index: &str, args: &[&str]| {
        let out = run(clipsearch()
            .args(["search", "--json", "-n", "50", "--index", index])
            .args(args));
        (out.status.code(), json_lines(&out), stderr(&out))
    };
    let local = catalog.to_str().unwrap();
    let queries: &[&[&str]] = &[
        &["photo", "--after", "2021"],
        &["photo", "--before", "2018"],
        &["photo", "--after", "2020-07", "--before", "2021-03"],
        &["photo", "--camera", "nikon d850"],
        &["photo", "--place", "tokyo, japan"],
        &["photo", "--place", "BRA"],
        &["photo", "--near", "38.72,-9.14,25"],
        &["photo", "--format", "png,webp"],
        &["a photo after:2019 camera:apple"],
        &["photo", "--sort", "-date"],
        &["photo", "--format", "jpg", "--sort", "date"],
        // Filters alone: listed by date (all of them, and some of them).
        &["after:2015"],
        &["after:2021"],
        &["--place", "portugal", "--sort", "-date"],
    ];
    let everything = ask(local, &["after:2015"]).1.len();
    let fewer = ask(local, &["after:2021"]).1.len();
    assert!(
        fewer > 0 && fewer < everything,
        "a filter that removes files is among the queries: {fewer} of {everything}"
    );
    for q in queries {
        let (code_l, want, err_l) = ask(local, q);
        let (code_r, got, err_r) = ask(&url, q);
        assert_eq!(code_l, Some(0), "{q:?}: {err_l}");
        assert_eq!(code_r, Some(0), "{q:?}: {err_r}");
        assert!(!want.is_empty(), "{q:?} keeps something");
        assert_eq!(got.len(), want.len(), "{q:?}: {got:?} vs {want:?}");
        // The same files with the same records...
        let by_path = |v: &[serde_json::Value]| -> HashMap<String, serde_json::Value> {
            v.iter()
                .map(|r| (r["path"].as_str().unwrap().to_string(), r.clone()))
                .collect()
        };
        let (g, w) = (by_path(&got), by_path(&want));
        for (path, w) in &w {
            let g = g
                .get(path)
                .unwrap_or_else(|| panic!("{q:?}: {path} missing: {got:?}"));
            assert_eq!(g["source"], "alpha");
            for k in ["taken", "place", "camera"] {
                assert_eq!(g[k], w[k], "{q:?}: {k} of {g} vs {w}");
            }
            match (g["score"].as_f64(), w["score"].as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-5, "{q:?}: {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "{q:?}: listed without scores"),
            }
        }
        // ... in the same order (files that tie may trade places).
        let order = |v: &[serde_json::Value]| -> Vec<String> {
            v.iter()
                .map(|r| match r["score"].as_f64() {
                    Some(s) if !q.iter().any(|a| a.contains("date")) => format!("{s:.4}"),
                    _ => r["taken"].to_string(),
                })
                .collect()
        };
        assert_eq!(order(&got), order(&want), "{q:?}");
    }
    // `info` on the collection: the metadata the local catalog has, with the machine.
    let info = |index: &str| {
        let out = run(clipsearch()
            .args(["info", "--json", "--source", "alpha", "--index", index])
            .arg(dir.join("lisbon.jpg")));
        assert!(out.status.success(), "{}", stderr(&out));
        json_lines(&out).remove(0)
    };
    let (shared, local) = (info(&url), info(local));
    assert_eq!(shared["source"], "alpha");
    assert_eq!(shared["place"]["label"], "Lisbon, Portugal", "{shared}");
    for k in [
        "path",
        "taken",
        "taken_source",
        "gps",
        "place",
        "camera",
        "lens",
        "format",
    ] {
        assert_eq!(shared[k], local[k], "{k}");
    }
    let out = run(clipsearch()
        .args(["info", "--source", "beta", "--index", &url])
        .arg(dir.join("lisbon.jpg")));
    assert_eq!(out.status.code(), Some(4), "not a file of beta");
    assert!(
        stderr(&out).contains("as a file of beta"),
        "{}",
        stderr(&out)
    );

    // A filter that keeps nothing says so, with what the collection holds (exit 1).
    let (code, _, err) = ask(&url, &["photo", "--place", "Atlantis"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no indexed file matches place Atlantis (of 8 files in the collection)"),
        "{err}"
    );
    // Near-duplicates within a filter: at a threshold every pair passes, the kept files
    // make one group.
    let out = run(clipsearch().args([
        "dupes",
        "--json",
        "--threshold=-1",
        "--format",
        "jpg",
        "--index",
        &url,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let groups = json_lines(&out);
    assert_eq!(groups.len(), 1, "{groups:?}");
    let members = groups[0]["files"].as_array().unwrap();
    assert_eq!(members.len(), 6, "the six JPEGs: {members:?}");
    assert!(members
        .iter()
        .all(|m| m["path"].as_str().unwrap().ends_with(".jpg")));
    if let Ok(c) = clipsearch_milvus::MilvusCollection::connect(&url) {
        let _ = c.drop_collection();
    }
}
