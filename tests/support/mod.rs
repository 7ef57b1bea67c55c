//! Helpers shared by the end-to-end tests: run the real binary, find the fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod http;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn tiny_model() -> PathBuf {
    fixtures().join("tiny-clip")
}

pub fn reference_images() -> PathBuf {
    fixtures().join("reference/images")
}

/// The `clipsearch` binary with a clean environment: no user model, index or logging settings.
pub fn clipsearch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipsearch"));
    for var in ["CLIPSEARCH_MODEL", "CLIPSEARCH_INDEX", "CLIPSEARCH_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HUB_OFFLINE", "1");
    // The bundled demo model unpacks into a cache: keep it out of the user's.
    cmd.env(
        "CLIPSEARCH_CACHE",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache"),
    );
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run clipsearch");
    if std::env::var_os("CLIPSEARCH_TEST_ECHO").is_some() {
        eprintln!("stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses JSON Lines output.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// A photo-like test image: smooth colour fields with a per-seed pattern, so that images of
/// different seeds embed differently and a resized copy embeds almost the same.
pub fn photo(w: u32, h: u32, seed: u32) -> image::RgbImage {
    let s = seed.wrapping_mul(2654435761);
    image::RgbImage::from_fn(w, h, |x, y| {
        let fx = x as f32 / w as f32;
        let fy = y as f32 / h as f32;
        let a = ((s & 0xff) as f32 / 255.0) * 6.0;
        let b = (((s >> 8) & 0xff) as f32 / 255.0) * 6.0;
        let r = (127.0 + 120.0 * (a * fx + b * fy).sin()) as u8;
        let g = (127.0 + 120.0 * (b * fx * 3.0 - a * fy).cos()) as u8;
        let bl = (((s >> 16) & 0xff) as f32 * (1.0 - fx * fy)) as u8;
        image::Rgb([r, g, bl])
    })
}

pub fn write_jpeg(path: &Path, img: &image::RgbImage) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90)
        .encode_image(img)
        .unwrap();
}

/// A `clipsearch serve` process on a free loopback port, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    /// `127.0.0.1:PORT` (after `http://` or, with `--tls-cert`, `https://`)
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `clipsearch serve --index INDEX --bind 127.0.0.1:0 EXTRA...` and waits until it
/// says where it listens.
pub fn serve(index: &Path, extra: &[&str]) -> Server {
    use std::io::BufRead;
    let mut child = clipsearch()
        .arg("serve")
        .arg("--index")
        .arg(index)
        .args(["--bind", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { child, addr }
}

/// `clipsearch index DIR --index INDEX --model tiny --json`, not yet run.
pub fn index_command(dir: &Path, index: &Path) -> Command {
    let mut cmd = clipsearch();
    cmd.arg("index")
        .arg(dir)
        .arg("--index")
        .arg(index)
        .arg("--model")
        .arg(tiny_model())
        .arg("--json");
    cmd
}

/// Indexes `dir` into `index` with the tiny model; returns the summary JSON.
pub fn index(dir: &Path, index: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run(index_command(dir, index).args(extra));
    assert!(out.status.success(), "index failed: {}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "one JSON object: {}", stdout(&out));
    lines[0].clone()
}

/// `clipsearch search QUERY... --json` against `index`.
pub fn search_json(index: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = run(clipsearch()
        .arg("search")
        .args(args)
        .arg("--index")
        .arg(index)
        .arg("--json"));
    assert!(out.status.success(), "search failed: {}", stderr(&out));
    json_lines(&out)
}

pub fn paths_of(results: &[serde_json::Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

/// Every (source, path) that a search of `index` (a shared collection's URL) finds for a broad
/// query, with how often: what another machine sees, once each when nothing is lost or doubled.
pub fn held(index: &str) -> std::collections::HashMap<(String, String), usize> {
    let out = run(clipsearch().args([
        "search", "a photo", "-n", "1000", "--json", "--index", index,
    ]));
    assert!(out.status.success(), "search: {}", stderr(&out));
    let mut seen = std::collections::HashMap::new();
    for r in json_lines(&out) {
        let key = (
            r["source"].as_str().unwrap().to_string(),
            r["path"].as_str().unwrap().to_string(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

/// `n` small distinct JPEGs `p000.jpg`, ... in `dir` (seeds from `seed` on).
pub fn photos(dir: &Path, n: usize, seed: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        write_jpeg(
            &dir.join(format!("p{i:03}.jpg")),
            &photo(96, 72, seed + i as u32),
        );
    }
}

/// GET on a test server: status and JSON body.
pub fn api(addr: &str, target: &str) -> (u16, serde_json::Value) {
    let url = format!("http://{addr}{target}");
    match ureq::get(&url).call() {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{target}: {e}"),
    }
}
