//! `clipsearch classify`: zero-shot classification of images against labels.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use clipsearch::model::{resolve, ClipModel, Towers};
use clipsearch_query::classify::{model_templates, Classifier, CLIP_TEMPLATES};

use crate::args::ModelArg;
use crate::exit;

/// Arguments of `clipsearch classify`.
#[derive(Args)]
#[command(
    after_help = "Each label is embedded in every prompt template; the normalised \
embeddings are averaged (prompt ensembling). Probabilities are, for CLIP, the softmax of the \
image's cosine similarities to the labels at the model's temperature (they sum to one); for \
SigLIP, each label's own sigmoid of its scaled similarity plus the learned bias (each label is \
judged alone: several can be likely, or none). Templates: --template, else those \
the model recommends (clipsearch.json), else the seven CLIP's authors chose for ImageNet."
)]
pub struct ClassifyArgs {
    /// Images (or folders of images) to classify.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Comma-separated labels, e.g. "cat,dog,car".
    #[arg(long, value_name = "LIST", required_unless_present = "labels_file")]
    pub labels: Option<String>,
    /// A file with one label per line.
    #[arg(long, value_name = "FILE", conflicts_with = "labels")]
    pub labels_file: Option<PathBuf>,
    /// A prompt template with `{}` where the label goes (repeatable).
    #[arg(long = "template", value_name = "TEMPLATE")]
    pub templates: Vec<String>,
    /// How many labels to print per image.
    #[arg(short = 'n', long = "top", default_value_t = 3)]
    pub top: usize,
    #[command(flatten)]
    pub model: ModelArg,
    /// JSON Lines: {"path":...,"labels":[{"label":...,"prob":...},...]}, most probable first.
    #[arg(long)]
    pub json: bool,
}

fn labels(args: &ClassifyArgs) -> Result<Vec<String>> {
    let text = match (&args.labels, &args.labels_file) {
        (Some(list), _) => list.split(',').map(str::to_string).collect::<Vec<_>>(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        (None, None) => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for l in text.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if !out.iter().any(|o| o == l) {
            out.push(l.to_string());
        }
    }
    if out.len() < 2 {
        bail!("classification needs at least two distinct labels (--labels \"cat,dog\" or --labels-file FILE)");
    }
    Ok(out)
}

/// Files named, and the images inside folders named (sorted, hidden entries skipped).
fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| {
                    e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.')
                })
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .filter(|p| clipsearch::preprocess::decode::has_image_extension(p))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    out
}

pub fn run(args: ClassifyArgs) -> Result<i32> {
    let labels = labels(&args)?;
    let files = resolve(args.model.spec())?;
    let templates: Vec<String> = if !args.templates.is_empty() {
        args.templates.clone()
    } else {
        model_templates(&files)
            .unwrap_or_else(|| CLIP_TEMPLATES.iter().map(|t| t.to_string()).collect())
    };
    let model = ClipModel::load(&files, Towers::Both)?;
    let classifier = Classifier::new(&model, &labels, &templates)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0;
    for path in expand(&args.paths) {
        let embedding = match model.image()?.embed_file(&path) {
            Ok(e) => e,
            Err(e) => {
                failed += 1;
                eprintln!("clipsearch: {e}");
                continue;
            }
        };
        let mut scored = classifier.classify(&embedding);
        scored.truncate(args.top.max(1));
        if args.json {
            let line = serde_json::json!({ "path": path, "labels": scored });
            writeln!(out, "{line}")?;
        } else {
            let shown: Vec<String> = scored
                .iter()
                .map(|s| format!("{} {:.1}%", s.label, 100.0 * s.prob))
                .collect();
            writeln!(out, "{}\t{}", path.display(), shown.join(", "))?;
        }
    }
    out.flush()?;
    Ok(if failed > 0 {
        exit::BAD_INPUT
    } else {
        exit::OK
    })
}
