//! `clipsearch stats`: what an index holds, from its published view (so it answers while an
//! index run is going on, like every other reader).

use std::io::Write;

use anyhow::Result;
use clap::Args;

use clipsearch_query::Stats;

use crate::args::{IndexArg, SharedArgs};
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

pub fn run(args: StatsArgs) -> Result<i32> {
    let stats = crate::target::open(&args.index, &SharedArgs::default())?.stats()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&stats)?)?;
    } else {
        print(&mut out, &stats)?;
    }
    out.flush()?;
    Ok(exit::OK)
}

fn print(out: &mut impl Write, s: &Stats) -> std::io::Result<()> {
    writeln!(out, "index      {}", s.index)?;
    let Some(l) = &s.local else {
        // A shared collection records no more than this.
        writeln!(
            out,
            "files      {} (from every machine that pushes to it)",
            s.files
        )?;
        return match (&s.model, s.dim) {
            (Some(m), Some(dim)) => writeln!(out, "model      {m} ({dim} dimensions)"),
            _ => writeln!(out, "model      none yet: nothing was indexed into it"),
        };
    };
    writeln!(
        out,
        "files      {} ({} could not be indexed)",
        s.files, l.failed
    )?;
    writeln!(
        out,
        "model      {} ({}, {} dimensions, {} decoding, {} image tower)",
        s.model.as_deref().unwrap_or_default(),
        l.family,
        s.dim.unwrap_or_default(),
        l.decode,
        l.precision
    )?;
    let age_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_millis() as u64).saturating_sub(l.published_unix_ms) / 1000)
        .unwrap_or(0);
    writeln!(
        out,
        "search     {} over {:.1} MB, published {age_s} s ago",
        if l.search == "codes" {
            "binary codes, best candidates rescored exactly,"
        } else {
            "exact scan"
        },
        l.bytes as f64 / 1e6
    )?;
    let c = &l.metadata;
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
    Ok(())
}
