//! A checkpoint on disk: the directory that holds its files, in transformers' layout or
//! OpenCLIP's, and the name the user knows it by.
//!
//! Where the directory comes from is [`super::hub`]'s business (a path, the hub's cache, a
//! download) and [`super::bundled`]'s (the demo model, unpacked): both hand back a
//! [`ModelFiles`], which is all the loaders read.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Files a checkpoint directory in Hugging Face's layout must hold (`preprocessor_config.json`
/// and `tokenizer_config.json` are optional).
pub const REQUIRED_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

/// Files of a checkpoint in OpenCLIP's layout (`tokenizer.json` optional: CLIP's BPE is built in).
pub const OPENCLIP_FILES: &[&str] = &["open_clip_config.json", "open_clip_model.safetensors"];

/// A resolved checkpoint: a directory holding the files, and the name the user knows it by.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub dir: PathBuf,
    /// The hub id, or the canonical local path.
    pub name: String,
}

impl ModelFiles {
    /// Whether the directory holds OpenCLIP's layout rather than transformers'.
    pub fn is_openclip(&self) -> bool {
        !self.dir.join("config.json").is_file() && self.dir.join(OPENCLIP_FILES[0]).is_file()
    }
    /// `config.json`, or OpenCLIP's `open_clip_config.json`.
    pub fn config(&self) -> PathBuf {
        self.dir.join(if self.is_openclip() {
            OPENCLIP_FILES[0]
        } else {
            "config.json"
        })
    }
    /// `model.safetensors`, or OpenCLIP's `open_clip_model.safetensors`.
    pub fn weights(&self) -> PathBuf {
        self.dir.join(if self.is_openclip() {
            OPENCLIP_FILES[1]
        } else {
            "model.safetensors"
        })
    }
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
    /// The tokenizer's settings (SigLIP's pad token and side); optional.
    pub fn tokenizer_config(&self) -> PathBuf {
        self.dir.join("tokenizer_config.json")
    }
    pub fn preprocessor(&self) -> PathBuf {
        self.dir.join("preprocessor_config.json")
    }

    /// A local directory; every required file must be there.
    pub fn local(dir: &Path) -> Result<Self> {
        let openclip = !dir.join("config.json").is_file() && dir.join(OPENCLIP_FILES[0]).is_file();
        let required = if openclip {
            OPENCLIP_FILES
        } else {
            REQUIRED_FILES
        };
        for f in required {
            let p = dir.join(f);
            if !p.is_file() {
                let hint = if *f == "model.safetensors" && dir.join("pytorch_model.bin").is_file() {
                    " (only pytorch_model.bin is there: download the checkpoint's model.safetensors)"
                } else if *f == OPENCLIP_FILES[1]
                    && dir.join("open_clip_pytorch_model.bin").is_file()
                {
                    " (only open_clip_pytorch_model.bin is there: download the checkpoint's \
                     open_clip_model.safetensors)"
                } else {
                    ""
                };
                return Err(Error::ModelUnavailable(format!(
                    "model directory {} has no {f}{hint}; a checkpoint in Hugging Face format \
                     needs {}, one in OpenCLIP's format {}",
                    dir.display(),
                    REQUIRED_FILES.join(", "),
                    OPENCLIP_FILES.join(", ")
                )));
            }
        }
        let canonical = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        Ok(ModelFiles {
            name: canonical.display().to_string(),
            dir: canonical,
        })
    }
}
