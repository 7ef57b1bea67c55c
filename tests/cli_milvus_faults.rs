//! Shared collections survive what Milvus servers do, on the real binary and a milvus-lite
//! server of each test's own (its own loopback port and data directory, so that it can be
//! restarted and killed): a restart (the collection comes back released: every command and a
//! running `serve` load it and answer), a release, a drop (the next `index` pushes every file
//! again and says so), a restore that lost half the rows (the next run pushes them again),
//! rows that differ key by key (`--verify`), and a server killed mid-push (the error says so,
//! within the retry window; the next run completes). After each fault the collection holds
//! exactly the catalog's files, once each, as another machine's search sees them.
//!
//! Needs `CLIPSEARCH_TEST_MILVUS_LITE=PATH/bin/milvus-lite` (pymilvus from the python beside
//! it, or `CLIPSEARCH_TEST_MILVUS_PYTHON`), which `.ci/run` exports. The tests are
//! `#[ignore]`d (reported as ignored without a server); `.ci/run` runs them with `--ignored`.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A milvus-lite server of this test's own.
struct Lite {
    bin: PathBuf,
    python: PathBuf,
    data: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn lite(data: &Path) -> Option<Lite> {
    // The tests are `#[ignore]`d unless asked for: asked for, a missing server fails them.
    let Ok(bin) = std::env::var("CLIPSEARCH_TEST_MILVUS_LITE") else {
        panic!(
            "these tests start, restart and kill a milvus-lite server of their own. \
             Install it (`python3 -m venv V; V/bin/pip install milvus-lite==3.2.2 pymilvus`) \
             and set CLIPSEARCH_TEST_MILVUS_LITE=V/bin/milvus-lite (bash .ci/run does)"
        );
    };
    let bin = PathBuf::from(bin);
    let python = std::env::var_os("CLIPSEARCH_TEST_MILVUS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin.with_file_name("python"));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = Lite {
        bin,
        python,
        data: data.to_path_buf(),
        port,
        child: None,
    };
    server.start();
    Some(server)
}

impl Lite {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server on its data directory and waits until it accepts connections.
    fn start(&mut self) {
        let log = std::fs::File::create(self.data.with_extension("log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("server")
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: whatever it starts goes with it.
            .process_group(0)
            .spawn()
            .expect("start milvus-lite");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(self.addr()).is_err() {
            assert!(Instant::now() < deadline, "milvus-lite did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it with `signal` (TERM: a clean shutdown; KILL: a crash) and waits.
    fn stop(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop("TERM");
        self.start();
    }

    /// Runs a pymilvus script with `c` a client of this server.
    fn pymilvus(&self, script: &str) -> String {
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(format!(
                "from pymilvus import MilvusClient\nc = MilvusClient(uri='http://{}')\n{script}",
                self.addr()
            ))
            .output()
            .expect("run pymilvus");
        assert!(
            out.status.success(),
            "pymilvus: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        self.stop("KILL");
    }
}

/// `clipsearch index DIR --index URL --source alpha --catalog C --model tiny --json`.
fn indexer(dir: &Path, url: &str, catalog: &Path) -> Command {
    let mut cmd = clipsearch();
    cmd.arg("index")
        .arg(dir)
        .args(["--index", url, "--source", "alpha", "--catalog"])
        .arg(catalog)
        .arg("--model")
        .arg(tiny_model())
        .arg("--json")
        .env("CLIPSEARCH_MILVUS_RETRY_SECONDS", "3");
    cmd
}

/// Asserts that the collection holds exactly the files of `dir`, once each.
fn holds_exactly(url: &str, dir: &Path) {
    let seen = held(url);
    let dir = dir.canonicalize().unwrap();
    let want: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            ("alpha".to_string(), p.to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(seen.len(), want.len(), "{seen:?}");
    for w in &want {
        assert_eq!(seen.get(w), Some(&1), "{w:?} exactly once");
    }
}

fn index_ok(dir: &Path, url: &str, catalog: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let out = run(indexer(dir, url, catalog).args(extra));
    assert!(out.status.success(), "index: {}", stderr(&out));
    (json_lines(&out).remove(0), stderr(&out))
}

#[test]
#[ignore = "needs milvus-lite and pymilvus: CLIPSEARCH_TEST_MILVUS_LITE=VENV/bin/milvus-lite (bash .ci/run sets it and runs these)"]
fn restart_release_drop_and_restore_of_the_collection() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut server) = lite(&tmp.path().join("milvus")) else {
        return;
    };
    let dir = tmp.path().join("photos");
    photos(&dir, 20, 70);
    let catalog = tmp.path().join("catalog");
    let name = "faults";
    let url = format!("milvus://{}/{name}", server.addr());
    let (summary, _) = index_ok(&dir, &url, &catalog, &[]);
    assert_eq!(summary["push"]["pushed"], 20, "{summary}");
    holds_exactly(&url, &dir);
    let srv = serve(
        Path::new(&url),
        &["--source", "alpha", "--catalog", catalog.to_str().unwrap()],
    );
    let answers = |srv: &Server| {
        let (status, body) = api(&srv.addr, "/api/search?q=a%20photo&n=100");
        assert_eq!(status, 200, "{body}");
        body["results"].as_array().unwrap().len()
    };
    assert_eq!(answers(&srv), 20);

    // A restart on the same data: the collection comes back released. Every command loads
    // it, and the running server answers as before.
    server.restart();
    let released = server.pymilvus(&format!("print(c.get_load_state('{name}')['state'])"));
    assert!(released.contains("NotLoad"), "{released}");
    assert_eq!(answers(&srv), 20, "serve after the restart");
    let one = dir.canonicalize().unwrap().join("p003.jpg");
    for args in [
        vec!["similar", one.to_str().unwrap(), "--json"],
        vec!["dupes", "--json", "--threshold=-1"],
        vec!["search", "a photo", "--json"],
    ] {
        server.restart();
        let out = run(clipsearch().args(&args).args(["--index", &url]));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(!json_lines(&out).is_empty(), "{args:?} answers");
    }
    // Released by hand (as a cluster frees memory): the same.
    server.pymilvus(&format!("c.release_collection('{name}')"));
    holds_exactly(&url, &dir);
    assert_eq!(answers(&srv), 20, "serve after a release");

    // Dropped: queries say so and what to do; the next index run pushes every file again and
    // says so; the server answers again.
    server.pymilvus(&format!("c.drop_collection('{name}')"));
    let (status, body) = api(&srv.addr, "/api/search?q=a%20photo&n=100");
    assert_ne!(status, 200, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "the collection {url} no longer exists on the server"
        )) && message.contains(&format!("clipsearch index DIR... --index {url}")),
        "{message}"
    );
    let out = run(clipsearch().args(["search", "a photo", "--index", &url]));
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains(&format!(
            "the collection {url} is empty: index into it first"
        )),
        "{}",
        stderr(&out)
    );
    let (summary, err) = index_ok(&dir, &url, &catalog, &[]);
    assert!(
        err.contains(&format!(
            "the collection {url} is not the one this machine pushed its 20 files to"
        )) && err.contains("pushing every file again"),
        "{err}"
    );
    let push = &summary["push"];
    assert_eq!(
        (&push["pushed"], &push["resent"], &push["reason"]),
        (
            &serde_json::json!(20),
            &serde_json::json!(20),
            &serde_json::json!("new collection")
        ),
        "{summary}"
    );
    holds_exactly(&url, &dir);
    assert_eq!(answers(&srv), 20, "serve after the collection came back");

    // Restored from an older backup that has half the rows (same incarnation): the next run
    // counts, finds the other half missing and pushes it again.
    let gone: Vec<String> = (0..20)
        .step_by(2)
        .map(|i| {
            let p = dir.canonicalize().unwrap().join(format!("p{i:03}.jpg"));
            serde_json::to_string(p.to_str().unwrap()).unwrap()
        })
        .collect();
    server.pymilvus(&format!(
        "c.delete('{name}', filter='path in [{}]')\nc.flush('{name}')",
        gone.join(", ").replace('\'', "\\'")
    ));
    assert_eq!(held(&url).len(), 10);
    let (summary, err) = index_ok(&dir, &url, &catalog, &[]);
    assert!(
        err.contains(&format!(
            "the collection {url} lacks 10 of the 20 files this machine pushed"
        )),
        "{err}"
    );
    let push = &summary["push"];
    assert_eq!(
        (&push["pushed"], &push["resent"], &push["reason"]),
        (
            &serde_json::json!(10),
            &serde_json::json!(10),
            &serde_json::json!("missing rows")
        ),
        "{summary}"
    );
    holds_exactly(&url, &dir);

    // Same count, different keys: one row lost, one row this machine never had. A plain run
    // cannot tell (one count query); --verify compares key by key and mends both.
    let c = clipsearch_milvus::MilvusCollection::connect(&url).unwrap();
    use clipsearch::store::collection::{key_of, Collection};
    let first = dir.canonicalize().unwrap().join("p001.jpg");
    let first = first.to_str().unwrap();
    let mut stray = c.get(&[key_of("alpha", first)]).unwrap().remove(0);
    stray.path = "/elsewhere/stray.jpg".into();
    c.upsert(&[stray]).unwrap();
    c.remove(&[("alpha".into(), first.into())]).unwrap();
    c.flush().unwrap();
    let (summary, _) = index_ok(&dir, &url, &catalog, &[]);
    assert_eq!(summary["push"]["pushed"], 0, "{summary}");
    let (summary, err) = index_ok(&dir, &url, &catalog, &["--verify"]);
    let push = &summary["push"];
    assert_eq!(
        (&push["pushed"], &push["removed"], &push["verified"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(true)
        ),
        "{summary}"
    );
    assert!(err.contains("lacks 1 of the 20 files"), "{err}");
    assert!(err.contains("holds 1 files of alpha that this machine's catalog does not have"));
    holds_exactly(&url, &dir);
    drop(srv);
}

#[test]
#[ignore = "needs milvus-lite and pymilvus: CLIPSEARCH_TEST_MILVUS_LITE=VENV/bin/milvus-lite (bash .ci/run sets it and runs these)"]
fn server_killed_mid_push_then_back() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut server) = lite(&tmp.path().join("milvus")) else {
        return;
    };
    let dir = tmp.path().join("photos");
    photos(&dir, 40, 300);
    let catalog = tmp.path().join("catalog");
    let url = format!("milvus://{}/killed", server.addr());
    // Small batches with pauses: a push long enough to be interrupted.
    let mut child = indexer(&dir, &url, &catalog)
        .env("CLIPSEARCH_PUSH_BATCH", "2")
        .env("CLIPSEARCH_TEST_PUSH_PAUSE_MS", "150")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watcher = clipsearch_milvus::MilvusCollection::connect(&url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        use clipsearch::store::collection::Collection;
        if watcher.count().unwrap_or(0) >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "the push never started");
        assert!(child.try_wait().unwrap().is_none(), "the push ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop("KILL");
    let killed = Instant::now();
    let out = child.wait_with_output().unwrap();
    let waited = killed.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains(&format!("lost Milvus at {url} during upsert"))
            && err.contains("run the same command again")
            && err.contains("changes were pushed before that"),
        "{err}"
    );
    assert!(
        !err.contains("RPC retry exhausted after"),
        "our words: {err}"
    );
    // Bounded in time: retried for the retry window (3 s here), then said.
    assert!(err.contains("(retried for "), "{err}");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    eprintln!("the push reported the lost server after {waited:?}");

    // While it is down, a search says it cannot reach it, within seconds.
    let started = Instant::now();
    let out = run(clipsearch().args(["search", "a photo", "--index", &url]));
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains(&format!("cannot reach Milvus at {url}"))
            && stderr(&out).contains("is the server running"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // Back (after a crash: whatever it had not persisted is gone): the next run completes,
    // every file once, as another machine sees it.
    server.start();
    let (summary, _) = index_ok(&dir, &url, &catalog, &[]);
    assert_eq!(summary["embedded"], 0, "{summary}");
    holds_exactly(&url, &dir);
    let (summary, _) = index_ok(&dir, &url, &catalog, &[]);
    assert_eq!(
        summary["push"]["pushed"], 0,
        "nothing left to do: {summary}"
    );
}
