//! Shared by the benchmarks: a synthetic index of N clustered unit vectors under fake paths,
//! as large as wanted without embedding anything.
#![allow(dead_code)]

use std::path::Path;

use clipsearch::embedding::normalize;
use clipsearch::model::{synthetic, ClipConfig, ModelFiles, ModelIdentity};

/// A ViT-B/32-shaped checkpoint with random weights (speed does not depend on their values),
/// written under `dir`.
pub fn vit_b32(dir: &Path) -> ModelFiles {
    let model_dir = dir.join("vit-b32");
    let tokenizer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-clip/tokenizer.json");
    synthetic::write_random_checkpoint(&model_dir, &ClipConfig::vit_b32(), &tokenizer).unwrap();
    ModelFiles::local(&model_dir).unwrap()
}
use clipsearch::store::{content_hash, FileRecord, NewEntry, Store};

/// The unit vector of file `i` of a synthetic collection: 1,000 clusters (file `i` in cluster
/// `i % 1000`), each member its centre plus uniform noise of about the centre's norm, so that
/// neighbours are members of one cluster whose order is decided by the noise (what makes
/// recall hard), as in `benches/index.rs`. `salt` other than 0 gives held-out points: near the
/// data, not in it.
pub fn clustered(dim: usize, i: usize, salt: u64) -> Vec<f32> {
    let mut centre = xorshift(0x2545_f491_4f6c_dd1d ^ (i % 1000) as u64);
    let mut noise = xorshift(0x9e37_79b9_7f4a_7c15 ^ (i as u64) ^ (salt << 40));
    let mut c: Vec<f32> = (0..dim).map(|_| centre()).collect();
    normalize(&mut c);
    let mut v: Vec<f32> = c.iter().map(|x| x + 0.08 * noise()).collect();
    normalize(&mut v);
    v
}

/// Uniform in [-1, 1), from a seed.
fn xorshift(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Metadata of file `i`: taken on June 1st of year 1925 + i % 100, so that `after:Y before:Y`
/// keeps 1% of the files.
pub fn year_meta(i: usize) -> clipsearch::metadata::PhotoMeta {
    use clipsearch::metadata::{PhotoMeta, Taken, TimeSource};
    let local = chrono::NaiveDate::from_ymd_opt(1925 + (i % 100) as i32, 6, 1)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    PhotoMeta {
        taken: Some(Taken {
            local,
            offset_minutes: None,
            source: TimeSource::DateTimeOriginal,
        }),
        make: Some("Canon".into()),
        model: Some("Canon EOS R5".into()),
        format: Some("JPEG".into()),
        ..Default::default()
    }
}

/// Fills a new index at `dir` with `n` vectors ([`clustered`]; paths
/// `/photos/DDD/NNNNNN.jpg`, which do not exist) for `model`, and publishes it.
pub fn build_index(dir: &Path, model: &ModelFiles, n: usize) {
    let identity = ModelIdentity::of(model).unwrap();
    let store = Store::open(dir, Some(&identity)).unwrap();
    let mut entries = Vec::with_capacity(2000);
    for i in 0..n {
        entries.push(NewEntry {
            path: format!("/photos/{:03}/{i:07}.jpg", i % 997).into(),
            record: FileRecord {
                id: store.new_id().unwrap(),
                size: 1,
                mtime_ns: 0,
                hash: content_hash(&i.to_le_bytes()),
                width: 1,
                height: 1,
                raw: None,
                meta: Some(year_meta(i)),
            },
            embedding: Some(clustered(identity.dim, i, 0)),
        });
        if entries.len() == 2000 {
            store.commit(&entries).unwrap();
            entries.clear();
        }
        // Published as an index run publishes: periodically (segments, background merges),
        // and at the end waiting for merges.
        if (i + 1) % 100_000 == 0 {
            clipsearch::index::publish(&store).unwrap();
        }
    }
    store.commit(&entries).unwrap();
    clipsearch::index::publish_and_settle(&store).unwrap();
}

/// Starts `clipsearch serve --index INDEX --bind 127.0.0.1:0 EXTRA...`; returns the process and
/// the base URL it printed (`http://127.0.0.1:PORT`).
pub fn serve(index: &Path, extra: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_clipsearch"))
        .arg("serve")
        .arg("--index")
        .arg(index)
        .args(["--bind", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    (server, base)
}

/// The CPU's model name from /proc/cpuinfo, to print beside every figure.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
