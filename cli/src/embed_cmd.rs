//! `clipsearch embed`: the embeddings of texts and images, one line each.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use clipsearch::model::{resolve, ClipModel, Towers};

use crate::args::ModelArg;
use crate::exit;

#[derive(Args)]
pub struct EmbedArgs {
    /// A text to embed (repeatable).
    #[arg(long = "text", value_name = "TEXT")]
    pub texts: Vec<String>,
    /// An image file to embed (repeatable).
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArg,
    /// JSON Lines: {"kind":"text"|"image","input":...,"embedding":[...]}.
    #[arg(long)]
    pub json: bool,
}

fn print_embedding(
    out: &mut impl Write,
    json: bool,
    kind: &str,
    input: &str,
    v: &[f32],
) -> Result<()> {
    if json {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            kind: &'a str,
            input: &'a str,
            embedding: &'a [f32],
        }
        let line = serde_json::to_string(&Line {
            kind,
            input,
            embedding: v,
        })?;
        writeln!(out, "{line}")?;
    } else {
        let nums: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        writeln!(out, "{kind}\t{input}\t{}", nums.join(" "))?;
    }
    Ok(())
}

pub fn run(args: EmbedArgs) -> Result<i32> {
    if args.texts.is_empty() && args.images.is_empty() {
        eprintln!("clipsearch: nothing to embed: give --text and/or --image (see --help)");
        return Ok(exit::USAGE);
    }
    let towers = match (args.texts.is_empty(), args.images.is_empty()) {
        (false, true) => Towers::Text,
        (true, false) => Towers::Image,
        _ => Towers::Both,
    };
    let files = resolve(args.model.spec())?;
    let model = ClipModel::load(&files, towers)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.texts.is_empty() {
        let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
        for (t, v) in texts.iter().zip(model.text()?.embed(&texts)?) {
            print_embedding(&mut out, args.json, "text", t, &v)?;
        }
    }
    let mut failed = 0;
    for path in &args.images {
        match model.image()?.embed_file(path) {
            Ok(v) => print_embedding(&mut out, args.json, "image", &path.to_string_lossy(), &v)?,
            Err(e) => {
                failed += 1;
                eprintln!("clipsearch: {e}");
            }
        }
    }
    out.flush()?;
    Ok(if failed > 0 {
        exit::BAD_INPUT
    } else {
        exit::OK
    })
}
