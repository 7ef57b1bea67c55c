//! Tokenizers, loaded from the checkpoint's `tokenizer.json` through the `tokenizers` crate:
//! CLIP's byte-level BPE ([`ClipTokenizer`]) and SigLIP's fixed-length sequences
//! ([`PaddedTokenizer`]); the file is read by `tokenizer/json.rs`, the same tokenizer built faster.
//!
//! CLIP:
//! Sequences are never padded: candle's text tower is ~5x slower on 77 padded positions than on
//! a typical 5-10 token query, and because the text transformer is causal, the hidden state at
//! the end token does not depend on what follows it. Over-long texts are cut at the model's
//! context length with the end token kept last, exactly as the reference truncates.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod json;

const START: &str = "<|startoftext|>";
const END: &str = "<|endoftext|>";

/// Turns text into the token ids the text tower reads.
#[derive(Clone)]
pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
    context_length: usize,
    start_id: u32,
    end_id: u32,
}

impl ClipTokenizer {
    /// Loads `tokenizer.json`; `context_length` is the text tower's `max_position_embeddings`.
    pub fn from_file(path: &Path, context_length: usize) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Tokenizer {
                path: PathBuf::from(path),
                reason: "file not found (the checkpoint must ship tokenizer.json)".into(),
            });
        }
        let json = std::fs::read(path).map_err(|e| Error::Tokenizer {
            path: PathBuf::from(path),
            reason: e.to_string(),
        })?;
        Self::from_bytes(&json, path, context_length)
    }

    /// A `tokenizer.json` held in memory; `path` names it in errors.
    pub fn from_bytes(json: &[u8], path: &Path, context_length: usize) -> Result<Self> {
        let inner = json::read(json).map_err(|e| Error::Tokenizer {
            path: PathBuf::from(path),
            reason: e.to_string(),
        })?;
        Self::new(inner, path, context_length)
    }

    fn new(mut inner: tokenizers::Tokenizer, path: &Path, context_length: usize) -> Result<Self> {
        let err = |reason: String| Error::Tokenizer {
            path: PathBuf::from(path),
            reason,
        };
        // Some exported tokenizer.json files pad to 77: we truncate ourselves and never pad.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        let id = |tok: &str| {
            inner
                .token_to_id(tok)
                .ok_or_else(|| err(format!("has no `{tok}` token: not a CLIP tokenizer")))
        };
        let start_id = id(START)?;
        let end_id = id(END)?;
        if context_length < 2 {
            return Err(err(format!("context length {context_length} is too short")));
        }
        Ok(ClipTokenizer {
            inner,
            context_length,
            start_id,
            end_id,
        })
    }

    /// The id of `<|endoftext|>`: the text embedding is read at its first occurrence.
    pub fn end_id(&self) -> u32 {
        self.end_id
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Token ids with start and end tokens, truncated to the context length (end token kept).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_checked(text)?.0)
    }

    /// Like [`ClipTokenizer::encode`], also saying whether the text had to be truncated.
    pub fn encode_checked(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Tokenizer {
                path: PathBuf::from("tokenizer.json"),
                reason: e.to_string(),
            })?;
        let mut ids = enc.get_ids().to_vec();
        // A tokenizer.json without CLIP's post-processor would omit the special tokens.
        if ids.first() != Some(&self.start_id) {
            ids.insert(0, self.start_id);
        }
        if ids.last() != Some(&self.end_id) {
            ids.push(self.end_id);
        }
        let truncated = ids.len() > self.context_length;
        if truncated {
            ids.truncate(self.context_length);
            ids[self.context_length - 1] = self.end_id;
        }
        Ok((ids, truncated))
    }
}

/// SigLIP's text input: the tokenizer's own special tokens (its `tokenizer.json` post-processor:
/// SigLIP 2's Gemma tokenizer appends `<eos>`), truncated to the context length keeping them, then
/// padded to exactly the context length. SigLIP was trained on padded text with no attention mask
/// and reads the last position, so, unlike CLIP's, these sequences must be padded.
#[derive(Clone)]
pub struct PaddedTokenizer {
    inner: tokenizers::Tokenizer,
    context_length: usize,
    pad_id: u32,
    pad_left: bool,
}

impl PaddedTokenizer {
    /// Loads `tokenizer.json`; the pad token and padding side come from `tokenizer_config.json`
    /// beside it when it names them (else `<pad>`, or `</s>` as SigLIP's own tokenizer pads, on
    /// the right).
    pub fn from_file(path: &Path, config: &Path, context_length: usize) -> Result<Self> {
        let err = |reason: String| Error::Tokenizer {
            path: PathBuf::from(path),
            reason,
        };
        if !path.exists() {
            return Err(err(
                "file not found (the checkpoint must ship tokenizer.json; \
                 SigLIP checkpoints that ship only spiece.model can be converted with \
                 transformers: `AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR)`)"
                    .into(),
            ));
        }
        let json = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let mut inner = json::read(&json).map_err(|e| err(e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: context_length,
                ..Default::default()
            }))
            .map_err(|e| err(e.to_string()))?;
        let settings: serde_json::Value = match std::fs::read_to_string(config) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Tokenizer {
                path: config.to_path_buf(),
                reason: format!("not valid JSON: {e}"),
            })?,
            Err(_) => serde_json::Value::Null,
        };
        // `pad_token` is a string or an AddedToken object with `content`.
        let named = settings.get("pad_token").and_then(|v| {
            v.as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))
                .map(str::to_string)
        });
        let pad = named
            .into_iter()
            .chain(["<pad>".to_string(), "</s>".to_string()])
            .find_map(|t| inner.token_to_id(&t))
            .ok_or_else(|| err("has no padding token (`<pad>` or `</s>`)".into()))?;
        let pad_left = settings.get("padding_side").and_then(|v| v.as_str()) == Some("left");
        Ok(PaddedTokenizer {
            inner,
            context_length,
            pad_id: pad,
            pad_left,
        })
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The ids with the tokenizer's special tokens, truncated to `context_length` (keeping
    /// them) but not padded, and whether the text had to be truncated: for towers whose result
    /// does not depend on padding (OpenCLIP's XLM-RoBERTa masks it out).
    pub fn encode_unpadded(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Tokenizer {
                path: PathBuf::from("tokenizer.json"),
                reason: e.to_string(),
            })?;
        Ok((enc.get_ids().to_vec(), !enc.get_overflowing().is_empty()))
    }

    /// Exactly `context_length` ids, and whether the text had to be truncated.
    pub fn encode_checked(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let (ids, truncated) = self.encode_unpadded(text)?;
        let mut out = Vec::with_capacity(self.context_length);
        let fill = self.context_length.saturating_sub(ids.len());
        if self.pad_left {
            out.extend(std::iter::repeat_n(self.pad_id, fill));
        }
        out.extend_from_slice(&ids[..ids.len().min(self.context_length)]);
        if !self.pad_left {
            out.extend(std::iter::repeat_n(self.pad_id, fill));
        }
        Ok((out, truncated))
    }
}
