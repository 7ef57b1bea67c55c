//! `clipsearch stats`: what an index holds, from its published view (so it answers while an
//! index run is going on, like every other reader).

use std::io::Write;

use anyhow::Result;
use clap::Args;

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
        stats.write_text(&mut out)?;
    }
    out.flush()?;
    Ok(exit::OK)
}
