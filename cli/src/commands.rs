//! The command line: global flags and the subcommands, each in its own `*_cmd.rs`, a thin
//! call into a library crate. Arguments several commands share are in `args.rs`.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

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
    Embed(crate::embed_cmd::EmbedArgs),
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

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Embed(args) => crate::embed_cmd::run(args),
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
