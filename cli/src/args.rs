//! Arguments several commands share: the model, the index, and this machine's part in a
//! shared collection.

use std::path::PathBuf;

use clap::Args;
use clipsearch::model::DEFAULT_MODEL;

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

/// This machine's name, the default label of its files in a shared collection.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
