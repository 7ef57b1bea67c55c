//! `clipsearch info`: what the index holds for some files (catalog record and metadata), read
//! from the published view like every other reader.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::args::{IndexArg, SharedArgs};
use crate::exit;

/// Arguments of `clipsearch info`.
#[derive(Args)]
pub struct InfoArgs {
    /// Indexed files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// One JSON object per file: {id, path, raw, size, modified, width, height, format,
    /// taken, taken_source, time_is_guess, gps, place, camera, make, model, lens, ...}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexArg,
    /// With a Milvus --index: the machine the files are on, as it indexed them (`index
    /// --source`) [default: this machine's host name].
    #[arg(long, value_name = "LABEL")]
    pub source: Option<String>,
}

pub fn run(args: InfoArgs) -> Result<i32> {
    let shared = SharedArgs {
        source: args.source.clone(),
        catalog: None,
    };
    let mut records = crate::target::open(&args.index, &shared)?.reader()?;
    let mut out = std::io::stdout().lock();
    let mut missing = 0;
    for path in &args.paths {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        let Some(info) = records.describe_path(&canonical)? else {
            eprintln!(
                "clipsearch: {} is not in the index at {} (run `clipsearch index` on its folder)",
                path.display(),
                records.files_location()
            );
            missing += 1;
            continue;
        };
        if args.json {
            writeln!(out, "{info}")?;
            continue;
        }
        let machine = info["source"]
            .as_str()
            .map(|s| format!("{s}:"))
            .unwrap_or_default();
        writeln!(
            out,
            "{machine}{}",
            info["path"].as_str().unwrap_or_default()
        )?;
        let field = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        };
        let taken = field(&info["taken"]).map(|t| {
            if info["time_is_guess"] == true {
                format!("{t} (file modification time: the photo records none)")
            } else {
                t
            }
        });
        let gps = info["gps"].as_object().map(|g| {
            let mut s = format!("{}, {}", g["lat"], g["lon"]);
            if let Some(alt) = g.get("alt") {
                s.push_str(&format!(", {alt} m"));
            }
            s
        });
        let rows = [
            ("taken", taken),
            ("place", field(&info["place"]["label"])),
            ("gps", gps),
            ("camera", field(&info["camera"])),
            ("lens", field(&info["lens"])),
            ("format", field(&info["format"])),
            (
                "pixels",
                info["width"]
                    .as_u64()
                    .map(|w| format!("{w} x {}", info["height"])),
            ),
            ("size", field(&info["size"]).map(|b| format!("{b} bytes"))),
            ("modified", field(&info["modified"])),
            ("orientation", field(&info["orientation"])),
            ("raw", field(&info["raw"])),
            ("id", field(&info["id"])),
        ];
        for (k, v) in rows {
            if let Some(v) = v {
                writeln!(out, "  {k:<12} {v}")?;
            }
        }
        if info["metadata_read"] == false {
            writeln!(
                out,
                "  (no metadata yet: this index was built by an older clipsearch; run \
                 `clipsearch index` on its folder)"
            )?;
        }
    }
    Ok(if missing > 0 {
        exit::BAD_INPUT
    } else {
        exit::OK
    })
}
