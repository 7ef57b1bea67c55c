//! `clipsearch index`: the CLI face of clipsearch-indexer.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use clipsearch::model::{resolve, ModelIdentity};
use clipsearch_indexer::{Options, Summary};

use crate::args::{IndexArg, ModelArg};
use crate::exit;

/// Arguments of `clipsearch index`.
#[derive(Args)]
pub struct IndexArgs {
    /// Folders (or files) to index; run again to pick up changes.
    #[arg(required = true, value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    #[command(flatten)]
    pub index: IndexArg,
    #[command(flatten)]
    pub model: ModelArg,
    /// Also index hidden files and descend into hidden folders.
    #[arg(long)]
    pub hidden: bool,
    /// Forget everything indexed so far and start over (e.g. after changing --model).
    #[arg(long)]
    pub rebuild: bool,
    /// Images per model call.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Threads that decode images while the model runs (default: one per core).
    #[arg(long)]
    pub decode_threads: Option<usize>,
    /// Fast mode, about 1.8x the images per second (measured on real photos: see the README):
    /// large JPEGs decoded at reduced scale inside the IDCT (1/2 to 1/8, never below the
    /// model's input size), other large images reduced by block averaging before the resize,
    /// and the image tower's linear layers in int8. Embeddings differ slightly from the
    /// reference's (typically cosine 0.9999; tested to stay far closer to the exact embedding
    /// than to any other picture's). Recorded in the index: use it for every run on that index.
    #[arg(long)]
    pub fast: bool,
    /// While indexing, publish what is done so far for searches (which run beside an index
    /// run, reading the last published results) at most this many seconds apart. Publishing
    /// is also kept under about 5% of the run's time, whatever this says.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub publish_interval: f64,
    /// With a Milvus --index: compare the collection with this machine's record file by file
    /// (not only by count, as every run does), pushing again what it lacks and removing what
    /// this machine no longer has.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub shared: crate::args::SharedArgs,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: IndexArgs, verbose: bool) -> Result<i32> {
    // First, so that a Ctrl-C during start-up already stops cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // Second Ctrl-C: leave now. Committed batches are safe on disk.
                std::process::exit(130);
            }
            eprintln!("\nclipsearch: stopping after the current batch (Ctrl-C again to quit now)");
        });
    }
    // A shared collection is reached before any work (an unreachable server is said at
    // once), and fed from this machine's local catalog.
    let destination = crate::target::open(&args.index, &args.shared)?.destination();
    // Without --model, an existing index (or collection) keeps the model it was built with.
    let spec = destination.model_spec(args.model.model.as_deref(), args.model.spec(), args.rebuild);
    let files = resolve(&spec)?;
    let mut identity = ModelIdentity::of(&files)?;
    if args.fast {
        identity.set_fast_mode();
    }
    let writer = destination.writer(files, &identity, args.rebuild)?;
    let mut opts = Options::new(args.roots);
    opts.hidden = args.hidden;
    opts.batch_size = args.batch_size.max(1);
    if let Some(n) = args.decode_threads {
        opts.decode_threads = n.max(1);
    }
    opts.publish_interval =
        std::time::Duration::from_secs_f64(args.publish_interval.clamp(0.0, 1e9));
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:12} [{bar:30}] {pos}/{len} images  {per_sec}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let update = writer.update(&opts, args.verify, &progress, &stop)?;
    let (summary, pushed) = (update.summary, update.pushed.transpose()?);
    progress.finish_and_clear();
    if args.json {
        let mut v = serde_json::to_value(&summary)?;
        if let Some(p) = &pushed {
            v["push"] = serde_json::to_value(p)?;
        }
        println!("{v}");
    } else {
        print_summary(&summary, verbose, &destination.dir);
        if let (Some(p), Some(c)) = (&pushed, writer.collection()) {
            println!(
                "pushed {}{} and removed {} in {} ({} files from this machine there{})",
                p.pushed,
                match p.reason {
                    Some(why) if p.resent > 0 => format!(" ({} again: {why})", p.resent),
                    _ => String::new(),
                },
                p.removed,
                c.location(),
                p.held,
                if p.retries > 0 {
                    format!(", {} requests retried", p.retries)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(if summary.interrupted {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

fn print_summary(s: &Summary, verbose: bool, dir: &std::path::Path) {
    let rate = if s.seconds > 0.0 {
        s.embedded as f64 / s.seconds
    } else {
        0.0
    };
    println!(
        "indexed {}, unchanged {}, moved {}, removed {}, failed {} in {:.1} s ({} embedded, {:.1} images/s)",
        s.indexed, s.unchanged, s.moved, s.removed, s.failed, s.seconds, s.embedded, rate
    );
    if s.metadata_read > 0 {
        println!(
            "read the photo metadata of {} files indexed by an older clipsearch (nothing was \
             decoded or embedded again)",
            s.metadata_read
        );
    }
    if s.interrupted {
        println!("interrupted: what was committed is searchable; run the same command to finish");
    }
    const FIRST: usize = 5;
    let shown = if verbose {
        s.failures.len()
    } else {
        FIRST.min(s.failures.len())
    };
    for f in &s.failures[..shown] {
        println!("  failed: {}: {}", f.path.display(), f.reason);
    }
    if shown < s.failures.len() {
        println!(
            "  ... and {} more (--verbose lists all)",
            s.failures.len() - shown
        );
    }
    let shown = if verbose {
        s.warnings.len()
    } else {
        FIRST.min(s.warnings.len())
    };
    for w in &s.warnings[..shown] {
        println!(
            "  warning: {}: {} (the image is indexed)",
            w.path.display(),
            w.reason
        );
    }
    if shown < s.warnings.len() {
        println!(
            "  ... and {} more files with damaged metadata (--verbose lists all)",
            s.warnings.len() - shown
        );
    }
    tracing::info!("index at {}", dir.display());
}
