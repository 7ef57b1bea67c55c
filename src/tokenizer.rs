//! CLIP's byte-level BPE tokenizer, loaded from the checkpoint's `tokenizer.json` through the
//! `tokenizers` crate.
//!
//! Sequences are never padded: candle's text tower is ~5x slower on 77 padded positions than on
//! a typical 5-10 token query, and because the text transformer is causal, the hidden state at
//! the end token does not depend on what follows it. Over-long texts are cut at the model's
//! context length with the end token kept last, exactly as the reference truncates.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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
        let err = |reason: String| Error::Tokenizer {
            path: PathBuf::from(path),
            reason,
        };
        if !path.exists() {
            return Err(err(
                "file not found (the checkpoint must ship tokenizer.json)".into(),
            ));
        }
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
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
