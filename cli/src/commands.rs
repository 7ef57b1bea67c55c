//! Subcommands and their arguments. Each command is a thin call into a library crate.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use clipsearch::model::{resolve, ClipModel, Towers, DEFAULT_MODEL};

use crate::exit;

/// Semantic image search with CLIP: index photo folders, then find images by describing them
/// or by showing a similar one.
#[derive(Parser)]
#[command(name = "clipsearch", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct Global {
    /// More logging (-v info, -vv debug); CLIPSEARCH_LOG=filter overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Args, Clone)]
pub struct ModelArg {
    /// CLIP checkpoint: a local directory in Hugging Face format (config.json,
    /// model.safetensors, tokenizer.json) or a hub id such as openai/clip-vit-base-patch32,
    /// downloaded once into the Hugging Face cache (HF_HOME; HF_HUB_OFFLINE=1 stays offline).
    /// [default: openai/clip-vit-base-patch32 for `index` and `embed`; for queries, the
    /// model the index was built with]
    #[arg(long, env = "CLIPSEARCH_MODEL")]
    pub model: Option<String>,
}

impl ModelArg {
    /// The model named, or the default checkpoint.
    pub fn spec(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }
}

/// Where the index lives.
#[derive(Args, Clone)]
pub struct IndexArg {
    /// Index directory (default: $XDG_DATA_HOME/clipsearch/index, i.e.
    /// ~/.local/share/clipsearch/index), or a shared Milvus collection:
    /// milvus://HOST:PORT/COLLECTION (milvus+https:// for TLS; token in
    /// CLIPSEARCH_MILVUS_TOKEN) for `index`, `search`, `similar`, `dupes`, `stats`, `info`
    /// and `serve`.
    #[arg(long = "index", env = "CLIPSEARCH_INDEX", value_name = "DIR|URL")]
    pub index: Option<PathBuf>,
}

impl IndexArg {
    /// The local index directory; a Milvus URL is refused with what it supports.
    pub fn path(&self) -> Result<PathBuf> {
        if let Some(url) = self.milvus_url() {
            return Err(clipsearch::Error::Index(format!(
                "this command works on a local index; the shared collection {url} is for \
                 `index`, `search`, `similar`, `dupes`, `stats`, `info` and `serve`: pass a \
                 local --index DIR"
            ))
            .into());
        }
        match &self.index {
            Some(p) => Ok(p.clone()),
            None => dirs::data_dir()
                .map(|d| d.join("clipsearch").join("index"))
                .ok_or_else(|| anyhow::anyhow!("no home directory: pass --index DIR")),
        }
    }

    /// The Milvus collection URL, when --index names one.
    pub fn milvus_url(&self) -> Option<String> {
        let s = self.index.as_ref()?.to_str()?;
        clipsearch_milvus::is_url(s).then(|| s.to_string())
    }
}

/// How this machine takes part in a shared collection (`index` and `serve` with a Milvus
/// --index).
#[derive(Args, Clone, Default)]
pub struct SharedArgs {
    /// With a Milvus --index: the label this machine's files carry in the shared collection
    /// (results show it with each path) [default: this machine's host name].
    #[arg(long, value_name = "LABEL")]
    pub source: Option<String>,
    /// With a Milvus --index: this machine's local catalog of what it indexed and pushed
    /// (incremental state: reruns cost a stat per unchanged file) [default:
    /// $XDG_DATA_HOME/clipsearch/catalogs/HOST_PORT_COLLECTION].
    #[arg(long, value_name = "DIR")]
    pub catalog: Option<PathBuf>,
}

impl SharedArgs {
    /// This machine's label.
    pub fn source(&self) -> String {
        self.source.clone().unwrap_or_else(host_name)
    }

    /// This machine's catalog for `collection`.
    pub fn catalog(&self, collection: &clipsearch_milvus::MilvusCollection) -> Result<PathBuf> {
        if let Some(d) = &self.catalog {
            return Ok(d.clone());
        }
        let l = collection.location_of();
        Ok(dirs::data_dir()
            .ok_or_else(|| anyhow::anyhow!("no home directory: pass --catalog DIR"))?
            .join("clipsearch/catalogs")
            .join(format!("{}_{}_{}", l.host, l.port, l.collection)))
    }
}

/// This machine's name, the default label of its files in a shared collection.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[derive(Subcommand)]
pub enum Command {
    /// Index photo folders (incremental: unchanged files cost a stat).
    Index(crate::index_cmd::IndexArgs),
    /// Find images by text, by example image, or by a combination of both.
    Search(crate::search_cmd::SearchArgs),
    /// Reverse image lookup: the indexed images most similar to an image.
    Similar(crate::search_cmd::SimilarArgs),
    /// Groups of near-duplicate images in the index (resized, re-encoded copies).
    Dupes(crate::search_cmd::DupesArgs),
    /// What the index holds: files, failures, model, size (answers while indexing, too).
    Stats(crate::stats_cmd::StatsArgs),
    /// What the index holds for some files: when, where and with what they were taken.
    Info(crate::info_cmd::InfoArgs),
    /// Print the embeddings of texts and images (one line per input).
    Embed(EmbedArgs),
    /// Serve the index over HTTP: a search page and a JSON API.
    Serve(crate::serve_cmd::ServeArgs),
    /// Run the whole pipeline offline on generated images with the bundled demo model.
    Demo(crate::demo_cmd::DemoArgs),
    /// Zero-shot classification: the most likely of some labels for each image.
    Classify(crate::classify_cmd::ClassifyArgs),
    /// Train or fine-tune CLIP on image-caption pairs with the contrastive objective.
    Train(crate::train_cmd::TrainArgs),
    /// Generate the synthetic world of captioned shapes the demo model knows.
    DemoData(crate::train_cmd::DemoDataArgs),
    /// The model checkpoints this build loads (CLIP, OpenCLIP, SigLIP 2), to choose a --model.
    Models(crate::models_cmd::ModelsArgs),
}

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

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Embed(args) => embed(args),
        Command::Index(args) => crate::index_cmd::run(args, cli.global.verbose > 0),
        Command::Search(args) => crate::search_cmd::search(args),
        Command::Similar(args) => crate::search_cmd::similar(args),
        Command::Dupes(args) => crate::search_cmd::dupes(args),
        Command::Stats(args) => crate::stats_cmd::run(args),
        Command::Info(args) => crate::info_cmd::run(args),
        Command::Serve(args) => crate::serve_cmd::run(args),
        Command::Demo(args) => crate::demo_cmd::run(args),
        Command::Classify(args) => crate::classify_cmd::run(args),
        Command::Train(args) => crate::train_cmd::run(args),
        Command::DemoData(args) => crate::train_cmd::demo_data(args),
        Command::Models(args) => crate::models_cmd::run(args),
    }
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

fn embed(args: EmbedArgs) -> Result<i32> {
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
