//! `clipsearch search`, `similar` and `dupes`: the CLI face of clipsearch-query.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use clipsearch::metadata::{Filter, SortOrder};
use clipsearch_query::{dupes, expr, Match, SearchOptions};

use crate::args::{IndexArg, ModelArg, SharedArgs};
use crate::exit;

/// Metadata filters, shared by `search`, `similar` and `dupes`.
#[derive(Args, Clone, Default)]
pub struct FilterArgs {
    /// Only photos taken on or after the start of this year, month or day (2023, 2023-06,
    /// 2023-06-14), in the photo's own local time.
    #[arg(long, value_name = "DATE")]
    pub after: Option<String>,
    /// Only photos taken on or before the end of this year, month or day (`--after 2023
    /// --before 2023`: all of 2023).
    #[arg(long, value_name = "DATE")]
    pub before: Option<String>,
    /// Only photos from a camera whose make and model contain these words ("canon",
    /// "iphone 15"), case-insensitive.
    #[arg(long, value_name = "TEXT")]
    pub camera: Option<String>,
    /// Only photos taken in this city, region or country (from their GPS position, placed
    /// offline); "Lisbon, Portugal" needs both. Case- and accent-insensitive.
    #[arg(long, value_name = "NAME")]
    pub place: Option<String>,
    /// Only photos taken within KM kilometres of LAT,LON (e.g. 38.72,-9.14,25).
    #[arg(long, value_name = "LAT,LON,KM", allow_hyphen_values = true)]
    pub near: Option<String>,
    /// Only files of these formats, comma-separated: jpeg, png, heic, avif, webp, dng, ...;
    /// `raw` for every camera RAW.
    #[arg(long, value_name = "FORMATS")]
    pub format: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<Filter, clipsearch::metadata::filter::FilterError> {
        let mut f = Filter::default();
        for (key, value) in [
            ("after", &self.after),
            ("before", &self.before),
            ("camera", &self.camera),
            ("place", &self.place),
            ("near", &self.near),
            ("format", &self.format),
        ] {
            if let Some(v) = value {
                f.set(key, v)?;
            }
        }
        Ok(f)
    }
}

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
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Order of the results: score (best first), date (oldest first) or -date (newest
    /// first). The best --top by score are ordered; a query of filters alone lists by date.
    #[arg(long, value_name = "ORDER", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// JSON Lines: {"path":...,"score":...} per result, best first, with "taken", "place",
    /// "camera" when the photo records them, and "raw" when a camera RAW of the same shot
    /// lies beside the file.
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
    /// The query: text, image paths, or a combination, with filters inline (see below); or
    /// filters alone, to list the matching photos by date.
    #[arg(num_args = 0.., value_name = "QUERY")]
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
    terms' normalised embeddings, renormalised; `-` subtracts.

FILTERS AND ORDER:
    The options --after, --before, --camera, --place, --near, --format and --sort may also be
    written inline, as KEY:VALUE words anywhere in the query (quote a value with spaces):
        clipsearch search \"dog on a beach after:2023-06 place:Lisbon\"
        clipsearch search 'mountains place:\"New Zealand\" sort:-date'
        clipsearch search after:2019-07 before:2019-08           (no text: listed by date)
    Dates are a year, a month or a day, in the photo's own local time; --after and --before
    include the period they name. Places come from the photos' GPS positions, placed offline
    with GeoNames' gazetteer. A filter that keeps no file says so (exit code 1).";

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
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Only files inside this folder.
    #[arg(long, value_name = "DIR")]
    pub under: Option<PathBuf>,
    /// Cosine similarity at or above which two images are duplicates.
    #[arg(long, default_value_t = dupes::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// JSON Lines: one group per line, {"size":N,"files":[{"path":...,"score":...}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexArg,
}

fn print_matches(matches: &[Match], r: &ResultArgs, dated: bool) -> Result<()> {
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
            let mut line = String::new();
            if let Some(score) = m.score {
                line.push_str(&format!("{score:.4}  "));
            }
            if dated {
                // Date and time to the minute, then where, when known.
                let when = m.taken.as_deref().map_or("-".to_string(), |t| {
                    t.get(..16).unwrap_or(t).replace('T', " ")
                });
                line.push_str(&format!("{when:<16}  "));
            }
            line.push_str(&location(m));
            if dated {
                if let Some(place) = &m.place {
                    line.push_str(&format!("  ({place})"));
                }
            }
            if let Some(raw) = &m.raw {
                line.push_str(&format!("  (RAW: {})", raw.display()));
            }
            writeln!(out, "{line}")?;
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

/// The options, with filters from the flags and from the query text (inline ones win).
fn options(r: &ResultArgs, inline: &expr::ParsedQuery) -> Result<SearchOptions, String> {
    let mut filter = r.filters.filter().map_err(|e| e.to_string())?;
    filter.merge(&inline.filter).map_err(|e| e.to_string())?;
    let sort = match (&inline.sort, &r.sort) {
        (Some(s), _) => *s,
        (None, Some(s)) => s.parse::<SortOrder>().map_err(|e| e.to_string())?,
        (None, None) => SortOrder::Score,
    };
    Ok(SearchOptions {
        top: r.top,
        threshold: r.threshold,
        under: r.under.clone(),
        filter,
        sort,
    })
}

/// Where a result lives: its path, after its machine for a shared collection's.
fn location(m: &Match) -> String {
    match &m.source {
        Some(source) => format!("{source}:{}", m.path.display()),
        None => m.path.display().to_string(),
    }
}

fn usage(e: impl std::fmt::Display, command: &str) -> Result<i32> {
    eprintln!("clipsearch: {e} (see `clipsearch {command} --help`)");
    Ok(exit::USAGE)
}

pub fn search(args: SearchArgs) -> Result<i32> {
    let parsed = match expr::parse_query(&args.query) {
        Ok(q) => q,
        // Filters given as options are a query too.
        Err(expr::ParseError::Empty)
            if args.results.filters.filter().is_ok_and(|f| !f.is_empty()) =>
        {
            expr::ParsedQuery::default()
        }
        Err(e) => return usage(e, "search"),
    };
    let opts = match options(&args.results, &parsed) {
        Ok(o) => o,
        Err(e) => return usage(e, "search"),
    };
    let dated = parsed.terms.is_empty() || opts.sort != SortOrder::Score;
    let target = crate::target::open(&args.results.index, &SharedArgs::default())?;
    let mut searcher = target.searcher(args.results.model.model.as_deref())?;
    let matches = if parsed.terms.is_empty() {
        searcher.list(&opts)?
    } else {
        let query = searcher.embed_terms(&parsed.terms)?;
        searcher.search(&query, &opts)?
    };
    print_matches(&matches, &args.results, dated)?;
    // The process ends here: freeing a loaded text tower (hundreds of MB, page by page) would
    // add ~20 ms to a one-shot query for nothing.
    std::mem::forget(searcher);
    Ok(exit::OK)
}

pub fn similar(args: SimilarArgs) -> Result<i32> {
    let opts = match options(&args.results, &expr::ParsedQuery::default()) {
        Ok(o) => o,
        Err(e) => return usage(e, "similar"),
    };
    let target = crate::target::open(&args.results.index, &SharedArgs::default())?;
    let mut searcher = target.searcher(args.results.model.model.as_deref())?;
    let query = searcher.embed_image(&args.path)?;
    let matches = searcher.search(&query, &opts)?;
    print_matches(&matches, &args.results, opts.sort != SortOrder::Score)?;
    Ok(exit::OK)
}

pub fn dupes(args: DupesArgs) -> Result<i32> {
    let filter = match args.filters.filter() {
        Ok(f) => f,
        Err(e) => return usage(e, "dupes"),
    };
    let opts = SearchOptions {
        filter,
        under: args.under.clone(),
        ..Default::default()
    };
    let target = crate::target::open(&args.index, &SharedArgs::default())?;
    let groups = target.searcher(None)?.groups(args.threshold, &opts)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for g in &groups {
        if args.json {
            let line = serde_json::json!({"size": g.len(), "files": g});
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{} near-duplicates:", g.len())?;
            for m in g {
                writeln!(out, "  {}", location(m))?;
            }
        }
    }
    if groups.is_empty() && !args.json {
        writeln!(out, "no near-duplicates at cosine >= {}", args.threshold)?;
    }
    out.flush()?;
    Ok(exit::OK)
}
