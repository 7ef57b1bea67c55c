//! `clipsearch search`, `similar` and `dupes`: the CLI face of clipsearch-query.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use clipsearch_query::{dupes, expr, Match, SearchOptions, Searcher};

use crate::commands::{IndexArg, ModelArg};
use crate::exit;

/// Output and filter flags shared by `search` and `similar`.
#[derive(Args)]
pub struct ResultArgs {
    /// Number of results.
    #[arg(short = 'n', long = "top", default_value_t = 10)]
    pub top: usize,
    /// Only results with at least this cosine similarity (-1..1).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f32>,
    /// Only results inside this folder.
    #[arg(long, value_name = "DIR")]
    pub under: Option<PathBuf>,
    /// JSON Lines: {"path":...,"score":...} per result, best first (with "raw":... when a
    /// camera RAW of the same shot lies beside the file).
    #[arg(long, conflicts_with = "paths")]
    pub json: bool,
    /// Paths only, one per line (for xargs and image viewers).
    #[arg(long)]
    pub paths: bool,
    /// Show a thumbnail above each result (kitty, iTerm2 and sixel terminals; coloured
    /// blocks elsewhere).
    #[arg(long, conflicts_with_all = ["json", "paths"])]
    pub preview: bool,
    /// With --paths: separate paths with NUL instead of newline (xargs -0).
    #[arg(short = '0', long = "null", requires = "paths")]
    pub null: bool,
    #[command(flatten)]
    pub index: IndexArg,
    #[command(flatten)]
    pub model: ModelArg,
}

/// Arguments of `clipsearch search`.
#[derive(Args)]
#[command(after_long_help = QUERY_HELP)]
pub struct SearchArgs {
    /// The query: text, image paths, or a combination (see below).
    #[arg(required = true, num_args = 1.., value_name = "QUERY")]
    pub query: Vec<String>,
    #[command(flatten)]
    pub results: ResultArgs,
}

const QUERY_HELP: &str = "\
QUERY EXPRESSIONS:
    A query is one or more terms joined by `+` or `-`, each term and operator one argument
    (write `- people`, not `-people`, which reads as an option):
        clipsearch search \"dog on a beach\"
        clipsearch search beach + dog - people
        clipsearch search 2:sunset + ./ref.jpg          (weight 2 for `sunset`)
        clipsearch search ./ref.jpg + \"in winter\"       (an image as a term)
    A term is `[WEIGHT:]ITEM`. ITEM is an image if it names an existing image file, else text;
    force either with `image:PATH` or `text:TEXT`. The query vector is the weighted sum of the
    terms' normalised embeddings, renormalised; `-` subtracts.";

/// Arguments of `clipsearch similar`.
#[derive(Args)]
pub struct SimilarArgs {
    /// An image: an indexed file uses its stored embedding; any other is embedded now.
    pub path: PathBuf,
    #[command(flatten)]
    pub results: ResultArgs,
}

/// Arguments of `clipsearch dupes`.
#[derive(Args)]
pub struct DupesArgs {
    /// Cosine similarity at or above which two images are duplicates.
    #[arg(long, default_value_t = dupes::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// JSON Lines: one group per line, {"size":N,"files":[{"path":...,"score":...}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexArg,
}

fn print_matches(matches: &[Match], r: &ResultArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for m in matches {
        if r.json {
            writeln!(out, "{}", serde_json::to_string(m)?)?;
        } else if r.paths {
            use std::os::unix::ffi::OsStrExt;
            out.write_all(m.path.as_os_str().as_bytes())?;
            out.write_all(if r.null { b"\0" } else { b"\n" })?;
        } else {
            if r.preview {
                out.flush()?;
                preview(&m.path);
            }
            match &m.raw {
                Some(raw) => writeln!(
                    out,
                    "{:.4}  {}  (RAW: {})",
                    m.score,
                    m.path.display(),
                    raw.display()
                )?,
                None => writeln!(out, "{:.4}  {}", m.score, m.path.display())?,
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Prints a small thumbnail of `path` in the terminal; a file that cannot be shown is skipped.
fn preview(path: &std::path::Path) {
    let Ok(rgb) = clipsearch::preprocess::decode::decode_file(path) else {
        return;
    };
    let thumb = image::DynamicImage::ImageRgb8(rgb).thumbnail(320, 320);
    let config = viuer::Config {
        width: Some(24),
        absolute_offset: false,
        ..Default::default()
    };
    if let Err(e) = viuer::print(&thumb, &config) {
        tracing::debug!("no preview for {}: {e}", path.display());
    }
}

fn options(r: &ResultArgs) -> SearchOptions {
    SearchOptions {
        top: r.top,
        threshold: r.threshold,
        under: r.under.clone(),
    }
}

pub fn search(args: SearchArgs) -> Result<i32> {
    let terms = match expr::parse(&args.query) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("clipsearch: {e} (see `clipsearch search --help`)");
            return Ok(exit::USAGE);
        }
    };
    let mut searcher = Searcher::open(
        &args.results.index.path()?,
        args.results.model.model.as_deref(),
    )?;
    let query = searcher.embed_terms(&terms)?;
    let matches = searcher.search(&query, &options(&args.results))?;
    print_matches(&matches, &args.results)?;
    Ok(exit::OK)
}

pub fn similar(args: SimilarArgs) -> Result<i32> {
    let mut searcher = Searcher::open(
        &args.results.index.path()?,
        args.results.model.model.as_deref(),
    )?;
    let query = searcher.embed_image(&args.path)?;
    let matches = searcher.search(&query, &options(&args.results))?;
    print_matches(&matches, &args.results)?;
    Ok(exit::OK)
}

pub fn dupes(args: DupesArgs) -> Result<i32> {
    let searcher = Searcher::open(&args.index.path()?, None)?;
    let groups = dupes::groups(&searcher, args.threshold)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for g in &groups {
        if args.json {
            let line = serde_json::json!({"size": g.len(), "files": g});
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{} near-duplicates:", g.len())?;
            for m in g {
                writeln!(out, "  {}", m.path.display())?;
            }
        }
    }
    if groups.is_empty() && !args.json {
        writeln!(out, "no near-duplicates at cosine >= {}", args.threshold)?;
    }
    out.flush()?;
    Ok(exit::OK)
}
