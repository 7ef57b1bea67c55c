//! The demo model bundled in the binary: a small CLIP trained by `clipsearch train` on the
//! synthetic world of coloured shapes (`clipsearch demo-data`), so that clipsearch runs with no
//! download and tests can check real semantics. It knows shapes and colours, not photographs;
//! it is chosen only by name (`--model demo`), never as a fallback.
//!
//! The files are compiled in (about 11 MB: f16 weights plus CLIP's tokenizer) and written out
//! once to the user's cache directory, under a name that changes with their content, so that
//! the engine loads them like any local checkpoint.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::files::ModelFiles;
use crate::error::{Error, Result};

/// The name that selects the bundled model.
pub const DEMO: &str = "demo";

const FILES: &[(&str, &[u8])] = &[
    (
        "config.json",
        include_bytes!("../../models/demo/config.json"),
    ),
    (
        "model.safetensors",
        include_bytes!("../../models/demo/model.safetensors"),
    ),
    (
        "tokenizer.json",
        include_bytes!("../../models/demo/tokenizer.json"),
    ),
    (
        "preprocessor_config.json",
        include_bytes!("../../models/demo/preprocessor_config.json"),
    ),
    (
        "clipsearch.json",
        include_bytes!("../../models/demo/clipsearch.json"),
    ),
];

/// CLIP's BPE tokenizer (OpenAI's table, as `tokenizer.json`): the demo model's, and the one
/// OpenCLIP checkpoints without a `tokenizer.json` use.
pub fn clip_tokenizer_json() -> &'static [u8] {
    include_bytes!("../../models/demo/tokenizer.json")
}

fn content_id() -> String {
    let mut h = Sha256::new();
    for (name, bytes) in FILES {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the files are unpacked: `$CLIPSEARCH_CACHE`, else `$XDG_CACHE_HOME/clipsearch`, else
/// the system temporary directory.
pub(crate) fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLIPSEARCH_CACHE") {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("clipsearch")
}

/// The bundled model's files, unpacked on first use.
pub fn demo() -> Result<ModelFiles> {
    let dir = cache_root()
        .join("models")
        .join(format!("demo-{}", content_id()));
    if !dir.join("model.safetensors").is_file() {
        unpack(&dir)?;
    }
    Ok(ModelFiles {
        dir,
        name: DEMO.to_string(),
    })
}

/// Writes the files into a fresh sibling folder and renames it into place, so that concurrent
/// first uses and interrupted ones never leave a partial model behind.
fn unpack(dir: &Path) -> Result<()> {
    let parent = dir.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".demo-")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    for (name, bytes) in FILES {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
    }
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process unpacked it first: theirs is identical.
        if !dir.join("model.safetensors").is_file() {
            return Err(Error::io(dir, e));
        }
    }
    Ok(())
}
