//! What sled costs on disk per catalogued file, tree by tree: the catalog's write pattern (a
//! multi-tree transaction and a flush per model batch, `SLED_BATCH` files, default 8 as
//! `clipsearch index --batch-size`; a publication moving the pending
//! content entries to `located` every 100,000), on keys and values of the sizes the catalog
//! writes (`benches/support`'s paths and metadata), for the whole catalog and for each tree
//! alone, then the same database rewritten whole (`export`/`import`) to show how much of it is
//! sled's garbage rather than data.
//!
//! Run: `cargo bench -p clipsearch --bench sled_space` (`SLED_N` files, default 200,000).
//! sled's sizes vary from run to run by some 10% (its background flusher decides when a
//! segment is written), so rows are compared within one run.

use std::path::Path;
use std::time::Instant;

use sled::Transactional;

fn du(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

const META: &[u8] = br#"{"taken":{"local":"2019-05-04T10:11:12","source":"date_time_original"},"make":"Canon","model":"Canon EOS R5","format":"JPEG"}"#;

/// Writes `n` files' catalog entries into the trees `keep` names; returns bytes on disk.
fn build(dir: &Path, n: usize, batch: usize, keep: &[&str], config: sled::Config) -> (u64, f64) {
    let db = config.path(dir).open().unwrap();
    let tree = |name: &str| db.open_tree(name).unwrap();
    let (files, ids, pending, located, refs) = (
        tree("files"),
        tree("ids"),
        tree("embeddings"),
        tree("located"),
        tree("refs"),
    );
    let on = |t: &str| keep.contains(&t);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let (start, end) = (i, (i + batch).min(n));
        (&files, &ids, &pending, &refs)
            .transaction(|(f, d, e, r)| {
                for j in i..end {
                    let path = format!("/photos/{:03}/{j:07}.jpg", j % 997);
                    // The record's fixed fields (61 bytes), then the metadata.
                    let mut rec = vec![1u8; 61];
                    rec[1..9].copy_from_slice(&(j as u64).to_le_bytes());
                    rec.extend_from_slice(META);
                    let mut hash = [0u8; 16];
                    hash[..8].copy_from_slice(
                        &(j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes(),
                    );
                    if on("files") {
                        f.insert(path.as_bytes(), rec)?;
                    }
                    if on("ids") {
                        d.insert(&(j as u64).to_be_bytes(), path.as_bytes())?;
                    }
                    if on("content") {
                        e.insert(&hash, &[0u8; 21])?;
                        r.insert(&hash, &1u32.to_be_bytes())?;
                    }
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .unwrap();
        db.flush().unwrap();
        i = end;
        // A publication every 100,000 files.
        if end / 100_000 > start / 100_000 && on("content") {
            let (mut gone, mut found) = (sled::Batch::default(), sled::Batch::default());
            for kv in pending.iter() {
                let (k, _) = kv.unwrap();
                gone.remove(k.clone());
                found.insert(k, &[0u8; 8]);
            }
            pending.apply_batch(gone).unwrap();
            located.apply_batch(found).unwrap();
            db.flush().unwrap();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    drop((files, ids, pending, located, refs));
    drop(db);
    (du(dir), secs)
}

fn main() {
    let n: usize = std::env::var("SLED_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let batch: usize = std::env::var("SLED_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let tmp = tempfile::tempdir().unwrap();
    println!("sled 0.34 on disk per catalogued file, {n} files, a commit per {batch}:");
    // clipsearch's own configuration for a new index, and sled's defaults.
    let ours = || clipsearch::store::sled_config(&tmp.path().join("none"));
    let with = |segment: usize, compressed: bool| {
        sled::Config::new()
            .cache_capacity(64 << 20)
            .segment_size(segment)
            .use_compression(compressed)
    };
    const ALL: &[&str] = &["files", "ids", "content"];
    for (i, (label, keep, config)) in [
        (
            "the whole catalog, sled's defaults (512 KiB segments, no compression)",
            ALL,
            with(512 << 10, false),
        ),
        (
            "the whole catalog, 8 MiB segments, no compression",
            ALL,
            with(8 << 20, false),
        ),
        (
            "the whole catalog, clipsearch's (8 MiB segments, zstd)",
            ALL,
            ours(),
        ),
        (
            "  files alone (path -> record, ~195 bytes)",
            &["files"][..],
            ours(),
        ),
        ("  ids alone (id -> path, ~33 bytes)", &["ids"][..], ours()),
        (
            "  content trees alone (pending, located, refs: ~56 bytes)",
            &["content"][..],
            ours(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(i.to_string());
        let (bytes, secs) = build(&dir, n, batch, keep, config);
        println!(
            "  {label}: {:.0} B/file ({:.1} MB, written in {secs:.1} s)",
            bytes as f64 / n as f64,
            bytes as f64 / 1e6
        );
    }
    let src = tmp.path().join("2");
    let t = Instant::now();
    let db = clipsearch::store::sled_config(&src).open().unwrap();
    let dst = tmp.path().join("rewritten");
    let out = clipsearch::store::sled_config(&dst).open().unwrap();
    out.import(db.export());
    out.flush().unwrap();
    drop(out);
    println!(
        "  the whole catalog (clipsearch's) rewritten by export/import: {:.0} B/file, in {:.1} s",
        du(&dst) as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
}
