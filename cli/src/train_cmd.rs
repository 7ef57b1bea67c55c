//! `clipsearch train` and `clipsearch demo-data`: the CLI face of clipsearch-train.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use clipsearch::model::{resolve, ClipConfig, ModelFiles};
use clipsearch::preprocess::PreprocessConfig;
use clipsearch_train::data::{read_pairs, Dataset};
use clipsearch_train::model::TrainableClip;
use clipsearch_train::optim::AdamWConfig;
use clipsearch_train::trainer::{saved_parameters, state_dir, train, Run, TrainOptions};
use clipsearch_train::world::{generate, Split};

use crate::exit;

/// Arguments of `clipsearch train`.
#[derive(Args)]
#[command(
    after_help = "The objective is CLIP's: for a batch of N pairs, the N x N cosine \
similarities scaled by exp(logit_scale) (clamped at 100), symmetric cross-entropy with the \
diagonal as targets. The output directory is a Hugging Face-format checkpoint any clipsearch \
command takes with --model DIR; its training-state/ subfolder lets --resume continue."
)]
pub struct TrainArgs {
    /// Training pairs: a folder of images each with a sidecar .txt (one caption per line; one
    /// is drawn per step), or a .jsonl ({"image": path, "caption": text}) or .csv (columns
    /// image/path and caption/text) manifest.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// Output directory for the trained checkpoint.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Fine-tune this checkpoint (local directory or hub id).
    #[arg(long, value_name = "MODEL", conflicts_with = "config")]
    pub init: Option<String>,
    /// Train from scratch with the dimensions of this config.json (Hugging Face CLIP layout).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// tokenizer.json for --config (default: the one beside the config file).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Continue the run saved in --out (same data and options).
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Pairs per step: the N of the N x N similarity matrix.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Linear warm-up steps before the cosine decay.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// AdamW weight decay (weight matrices only).
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    /// Learning-rate multiplier for the temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature_lr_mult: f64,
    /// Clip the global gradient norm to this (0: off).
    #[arg(long, default_value_t = 1.0)]
    pub clip_grad_norm: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Save a checkpoint every N steps (and always at the end or on Ctrl-C).
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: usize,
    /// Store the weights as f16 (half the size; loading converts to f32).
    #[arg(long)]
    pub half: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn load_run(args: &TrainArgs) -> Result<Run> {
    let device = clipsearch::device::select();
    if args.resume {
        let files = ModelFiles::local(&args.out)
            .with_context(|| format!("--resume: {} holds no checkpoint", args.out.display()))?;
        let model = TrainableClip::load(&files, &device)?;
        model.set(&saved_parameters(&args.out, &device)?)?;
        let preprocess = PreprocessConfig::from_file_or_default(
            &files.preprocessor(),
            model.config.vision.image_size,
        )?;
        return Ok(Run {
            model,
            tokenizer_path: files.tokenizer(),
            preprocess,
        });
    }
    if args.out.join("config.json").exists() || state_dir(&args.out).exists() {
        bail!(
            "{} already holds a model: pass --resume to continue that run, or choose another --out",
            args.out.display()
        );
    }
    match (&args.init, &args.config) {
        (Some(spec), _) => {
            let files = resolve(spec)?;
            let model = TrainableClip::load(&files, &device)?;
            let preprocess = PreprocessConfig::from_file_or_default(
                &files.preprocessor(),
                model.config.vision.image_size,
            )?;
            Ok(Run {
                model,
                tokenizer_path: files.tokenizer(),
                preprocess,
            })
        }
        (None, Some(config_path)) => {
            let config = ClipConfig::from_file(config_path)?;
            let tokenizer_path = match &args.tokenizer {
                Some(t) => t.clone(),
                None => {
                    let beside = config_path
                        .parent()
                        .unwrap_or(Path::new("."))
                        .join("tokenizer.json");
                    if !beside.exists() {
                        bail!("--config {}: no tokenizer.json beside it: pass --tokenizer FILE (CLIP's BPE tokenizer.json)", config_path.display());
                    }
                    beside
                }
            };
            Ok(Run {
                preprocess: PreprocessConfig::clip_default(config.vision.image_size),
                model: TrainableClip::init(&config, args.seed, &device)?,
                tokenizer_path,
            })
        }
        (None, None) => bail!(
            "say where the weights start: --init MODEL to fine-tune a checkpoint, or --config FILE to train from scratch"
        ),
    }
}

pub fn run(args: TrainArgs) -> Result<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\nclipsearch: saving a checkpoint after this step (Ctrl-C again to quit now)"
            );
        });
    }
    // The data first: reading the list is cheap, and a mistake there is the likeliest.
    let pairs = read_pairs(&args.data)?;
    let run = load_run(&args)?;
    let started = std::time::Instant::now();
    let data = Dataset::load(&pairs, &run.preprocessor(), &run.tokenizer()?)?;
    for (path, why) in data.skipped.iter().take(5) {
        eprintln!("clipsearch: skipped {}: {why}", path.display());
    }
    tracing::info!(
        "{} pairs loaded in {:.1}s; model of {} parameters",
        data.len(),
        started.elapsed().as_secs_f64(),
        run.model.num_parameters()
    );
    let opts = TrainOptions {
        out: args.out.clone(),
        steps: args.steps,
        batch_size: args.batch_size,
        warmup: args.warmup,
        optimizer: AdamWConfig {
            lr: args.lr,
            weight_decay: args.weight_decay,
            logit_scale_lr_mult: args.temperature_lr_mult,
            ..Default::default()
        },
        clip_grad_norm: args.clip_grad_norm,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        save_dtype: if args.half {
            candle_core::DType::F16
        } else {
            candle_core::DType::F32
        },
    };
    let bar = crate::progress::bar(args.steps as u64, "{msg}");
    let log_every = (args.steps / 50).max(1);
    let summary = train(&run, &data, &opts, args.resume, &stop, &mut |r| {
        bar.set_position(r.step as u64);
        let line = format!(
            "loss {:.4}  acc {:.2}  lr {:.2e}  T {:.1}  |g| {:.2}",
            r.loss, r.accuracy, r.lr, r.temperature, r.grad_norm
        );
        bar.set_message(line.clone());
        // Without a terminal (a background run's log), a line every 2% of the run.
        if bar.is_hidden() && (r.step % log_every == 0 || r.step == r.steps) {
            eprintln!("step {}/{}  {line}", r.step, r.steps);
        }
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} steps in {:.0}s, loss {:.3} -> {:.3}; checkpoint in {}{}",
            summary.steps_done,
            summary.seconds,
            summary.first_loss.unwrap_or(f32::NAN),
            summary.last_loss.unwrap_or(f32::NAN),
            summary.out.display(),
            if summary.interrupted {
                " (interrupted: --resume continues)"
            } else {
                ""
            }
        );
    }
    Ok(if summary.interrupted {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

/// Arguments of `clipsearch demo-data`.
#[derive(Args)]
pub struct DemoDataArgs {
    /// Folder to write NNNNN.png images, NNNNN.txt captions and scenes.jsonl labels into.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 300)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Leave out the held-out colour-shape combinations (for a training set).
    #[arg(long)]
    pub training: bool,
    /// Image side in pixels.
    #[arg(long, default_value_t = 128)]
    pub size: u32,
}

pub fn demo_data(args: DemoDataArgs) -> Result<i32> {
    let split = if args.training {
        Split::Train
    } else {
        Split::Test
    };
    let made = generate(&args.dir, args.count, args.seed, split, args.size)?;
    println!(
        "{} images with captions in {}",
        made.len(),
        args.dir.display()
    );
    Ok(exit::OK)
}
