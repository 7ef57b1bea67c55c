//! `clipsearch stats`: what an index holds, from its published view (so it answers while an
//! index run is going on, like every other reader).

use std::io::Write;

use anyhow::Result;
use clap::Args;

use crate::commands::IndexArg;
use crate::exit;

/// Arguments of `clipsearch stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// One JSON object: {index, files, failed, model, dim, decode, precision, generation,
    /// published_unix_ms, search ("codes" or "exact"), bytes, metadata: {dated, dated_by_camera, first_month,
    /// last_month, with_gps, with_place, with_camera, unread}}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexArg,
}

/// A shared collection: what it holds, from every machine.
fn remote(url: &str, json: bool) -> Result<i32> {
    use clipsearch::store::collection::Collection;
    let c = clipsearch_milvus::MilvusCollection::connect(url)?;
    let files = c.count()?;
    let model = c.model()?;
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::json!({
            "index": c.location(),
            "files": files,
            "model": model.as_ref().map(|m| &m.name),
            "dim": model.as_ref().map(|m| m.dim),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "index      {}", c.location())?;
        writeln!(
            out,
            "files      {files} (from every machine that pushes to it)"
        )?;
        match &model {
            Some(m) => writeln!(out, "model      {} ({} dimensions)", m.name, m.dim)?,
            None => writeln!(out, "model      none yet: nothing was indexed into it")?,
        }
    }
    Ok(exit::OK)
}

pub fn run(args: StatsArgs) -> Result<i32> {
    if let Some(url) = args.index.milvus_url() {
        return remote(&url, args.json);
    }
    let dir = args.index.path()?;
    let index = clipsearch_query::open_view(&dir)?;
    let view = index.view();
    let m = view.manifest();
    let bytes: u64 = m
        .files()
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|md| md.len())
        .sum();
    let age_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_millis() as u64).saturating_sub(m.published_unix_ms) / 1000)
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    if args.json {
        let line = serde_json::json!({
            "index": dir.to_string_lossy(),
            "files": view.len(),
            "failed": m.failed,
            "model": m.model.name,
            "family": m.model.family,
            "dim": m.dim,
            "decode": m.model.decode,
            "precision": m.model.precision,
            "generation": m.generation,
            "published_unix_ms": m.published_unix_ms,
            "search": if index.uses_codes(view.len()) { "codes" } else { "exact" },
            "bytes": bytes,
            "metadata": clipsearch_query::info::coverage(view),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "index      {}", dir.display())?;
        writeln!(
            out,
            "files      {} ({} could not be indexed)",
            view.len(),
            m.failed
        )?;
        writeln!(
            out,
            "model      {} ({}, {} dimensions, {} decoding, {} image tower)",
            m.model.name, m.model.family, m.dim, m.model.decode, m.model.precision
        )?;
        writeln!(
            out,
            "search     {} over {:.1} MB, published {age_s} s ago",
            if index.uses_codes(view.len()) {
                "binary codes, best candidates rescored exactly,"
            } else {
                "exact scan"
            },
            bytes as f64 / 1e6
        )?;
        let c = clipsearch_query::info::coverage(view);
        let span = match (&c.first_month, &c.last_month) {
            (Some(a), Some(b)) => format!(", {a} to {b}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "metadata   {} dated{span} ({} by the camera, {} by file date), {} placed, {} \
             with a camera",
            c.dated,
            c.dated_by_camera,
            c.dated - c.dated_by_camera,
            c.with_place,
            c.with_camera
        )?;
        if c.unread > 0 {
            writeln!(
                out,
                "           {} files without metadata yet (indexed by an older clipsearch): run \
                 `clipsearch index` on their folders to read it",
                c.unread
            )?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
