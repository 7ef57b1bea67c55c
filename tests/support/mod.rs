//! Helpers shared by the end-to-end tests: run the real binary, find the fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
