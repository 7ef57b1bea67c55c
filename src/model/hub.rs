//! Where a model comes from: a local directory, or a Hugging Face hub repository fetched with
//! `hf-hub` into the standard cache (`HF_HOME`, default `~/.cache/huggingface`).
//!
//! `HF_HUB_OFFLINE=1` looks in the cache only. When neither the network nor the cache has the
//! model, the error spells out what to download and how to point `--model` at it.

use std::path::{Path, PathBuf};

use super::bundled;
use super::files::{ModelFiles, OPENCLIP_FILES, REQUIRED_FILES};
use crate::error::{Error, Result};

/// The checkpoint used when the user names none.
pub const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";

/// Whether `spec` reads as a hub id (`owner/name`, optionally `@revision`) rather than a path.
fn is_hub_id(spec: &str) -> bool {
    let id = spec.split('@').next().unwrap_or(spec);
    let mut parts = id.split('/');
    let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    ok(owner) && ok(name)
}

/// Resolves `--model`: an existing directory wins; otherwise a hub id is fetched (or found in
/// the cache); anything else is an error saying what was expected.
pub fn resolve(spec: &str) -> Result<ModelFiles> {
    let path = Path::new(spec);
    // The bundled model's name is also a common folder name (`clipsearch demo --dir demo`
    // makes one, and an index made with the demo model names it): such a folder shadows the
    // bundled model only if it holds a checkpoint. Hub ids always contain a slash, so the
    // name cannot shadow one.
    let checkpoint =
        path.join("config.json").is_file() || path.join("open_clip_config.json").is_file();
    if spec == bundled::DEMO && !checkpoint {
        return bundled::demo();
    }
    if path.is_dir() {
        return ModelFiles::local(path);
    }
    if !is_hub_id(spec) {
        return Err(Error::ModelUnavailable(format!(
            "--model {spec}: no such directory, and not a hub id of the form owner/name"
        )));
    }
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (spec.to_string(), "main".to_string()),
    };
    fetch(&id, &revision)
}

fn unavailable(id: &str, why: &str) -> Error {
    Error::ModelUnavailable(format!(
        "cannot get model {id}: {why}.\n\
         To use it without network access, download {files} (and preprocessor_config.json) \
         from https://huggingface.co/{id}/tree/main into a directory and pass it with \
         `--model DIR` (or CLIPSEARCH_MODEL=DIR); or fetch it once while online so that it is \
         in the Hugging Face cache ({cache}).\n\
         To try clipsearch offline now, `--model demo` selects the small model bundled with it: \
         it knows only a synthetic world of coloured shapes (circles, squares, stars... in 8 \
         colours; see `clipsearch demo`), not photographs of dogs and beaches.",
        files = REQUIRED_FILES.join(", "),
        cache = hf_hub::Cache::from_env().path().display(),
    ))
}

fn offline() -> bool {
    matches!(
        std::env::var("HF_HUB_OFFLINE").as_deref(),
        Ok("1") | Ok("true") | Ok("TRUE") | Ok("yes") | Ok("ON") | Ok("on")
    )
}

fn fetch(id: &str, revision: &str) -> Result<ModelFiles> {
    use hf_hub::{Repo, RepoType};
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
    let cached = hf_hub::Cache::from_env().repo(repo.clone());
    for layout in [REQUIRED_FILES, OPENCLIP_FILES] {
        let from_cache: Option<Vec<PathBuf>> = layout.iter().map(|f| cached.get(f)).collect();
        if let Some(paths) = from_cache {
            let dir = paths[0]
                .parent()
                .expect("cached file has a parent")
                .to_path_buf();
            return Ok(ModelFiles {
                dir,
                name: id.to_string(),
            });
        }
    }
    if offline() {
        return Err(unavailable(
            id,
            "HF_HUB_OFFLINE is set and it is not in the cache",
        ));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| unavailable(id, &e.to_string()))?;
    let remote = api.repo(repo);
    // transformers' layout first; a repository in OpenCLIP's layout alone has no config.json.
    let layout = match remote.get("config.json") {
        Ok(_) => REQUIRED_FILES,
        Err(e) => match remote.get(OPENCLIP_FILES[0]) {
            Ok(_) => OPENCLIP_FILES,
            Err(_) => {
                return Err(unavailable(
                    id,
                    &format!("downloading config.json failed: {e}"),
                ))
            }
        },
    };
    let mut dir = None;
    for f in layout {
        tracing::info!(file = f, model = id, "downloading");
        let p = remote
            .get(f)
            .map_err(|e| unavailable(id, &format!("downloading {f} failed: {e}")))?;
        dir = p.parent().map(Path::to_path_buf);
    }
    // Optional: the family's defaults apply without the first; SigLIP's pad token and side come
    // from the second; OpenCLIP checkpoints without the third use the built-in CLIP BPE.
    for f in [
        "preprocessor_config.json",
        "tokenizer_config.json",
        "tokenizer.json",
    ] {
        if let Err(e) = remote.get(f) {
            tracing::debug!("no {f} for {id} ({e})");
        }
    }
    Ok(ModelFiles {
        dir: dir.expect("at least one file"),
        name: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert!(is_hub_id("openai/clip-vit-base-patch32"));
        assert!(is_hub_id("openai/clip-vit-large-patch14@main"));
        assert!(!is_hub_id("./models/clip"));
        assert!(!is_hub_id("/abs/path"));
        assert!(!is_hub_id("a/b/c"));
        assert!(!is_hub_id("demo"));
    }

    #[test]
    fn offline_uncached_error_says_what_to_download() {
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var(
            "HF_HOME",
            std::env::temp_dir().join("clipsearch-empty-hf-home"),
        );
        let msg = resolve("openai/clip-vit-base-patch32")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("model.safetensors"), "{msg}");
        assert!(msg.contains("--model"), "{msg}");
        assert!(
            msg.contains("--model demo") && msg.contains("shapes"),
            "{msg}"
        );
        assert!(
            msg.contains("huggingface.co/openai/clip-vit-base-patch32"),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_in_local_dir_is_named() {
        let dir = std::env::temp_dir().join("clipsearch-test-incomplete-model");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        let msg = resolve(dir.to_str().unwrap()).unwrap_err().to_string();
        assert!(msg.contains("model.safetensors"), "{msg}");
    }
}
