//! Reading `tokenizer.json` in a fraction of the `tokenizers` crate's own time.
//!
//! A one-shot `clipsearch search` parses the tokenizer at every start. The crate reads a BPE
//! model's `merges` through an untagged enum (pairs or legacy `"a b"` strings), and serde
//! answers an untagged enum by first copying the whole list into its generic `Content` tree:
//! of the ~130 ms CLIP's 49,408-token file takes on a 2-vCPU Zen 4, most is that copy. Here the
//! model is parsed into typed fields instead (the other parts, which are small, by the crate's
//! own types) and put together with the crate's builders in the order its deserializer uses, so
//! the result is the same tokenizer: `the_fast_read_builds_the_tokenizer_the_crate_builds` below
//! compares the two serialisations whole.
//!
//! Anything this reader does not know (another model type, an unknown field, mixed merge
//! forms) is left to the crate's parser, so no file reads differently: only faster, or the same.

use std::fmt;

use ahash::AHashMap;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use tokenizers::models::bpe::BPE;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PaddingParams, PostProcessorWrapper,
    PreTokenizerWrapper, Tokenizer, TruncationParams,
};

/// Parses `json` as [`Tokenizer::from_bytes`] does, faster for BPE models.
pub fn read(json: &[u8]) -> tokenizers::Result<Tokenizer> {
    match read_bpe(json) {
        Some(t) => Ok(t),
        None => Tokenizer::from_bytes(json),
    }
}

/// The typed reading, or `None` where the file is not one it knows: then the crate decides,
/// errors included.
fn read_bpe(json: &[u8]) -> Option<Tokenizer> {
    let file: TokenizerFile = serde_json::from_slice(json).ok()?;
    if file.version.as_deref().is_some_and(|v| v != "1.0") {
        return None;
    }
    let model: BpeFile = serde_json::from_str(file.model.get()).ok()?;
    if model.kind.as_deref().is_some_and(|k| k != "BPE") {
        return None;
    }
    let merges = merges(model.merges)?;
    let mut b = BPE::builder().vocab_and_merges(model.vocab, merges);
    if let Some(p) = model.dropout {
        b = b.dropout(p);
    }
    if let Some(u) = model.unk_token {
        b = b.unk_token(u);
    }
    if let Some(p) = model.continuing_subword_prefix {
        b = b.continuing_subword_prefix(p);
    }
    if let Some(s) = model.end_of_word_suffix {
        b = b.end_of_word_suffix(s);
    }
    if let Some(f) = model.fuse_unk {
        b = b.fuse_unk(f);
    }
    if let Some(f) = model.byte_fallback {
        b = b.byte_fallback(f);
    }
    if let Some(f) = model.ignore_merges {
        b = b.ignore_merges(f);
    }
    let mut tokenizer = Tokenizer::new(b.build().ok()?);
    tokenizer.with_truncation(file.truncation).ok()?;
    tokenizer.with_padding(file.padding);
    tokenizer.with_normalizer(file.normalizer);
    tokenizer.with_pre_tokenizer(file.pre_tokenizer);
    tokenizer.with_post_processor(file.post_processor);
    tokenizer.with_decoder(file.decoder);
    // Last, as the crate's deserializer does: an added token is matched through the normalizer.
    let added: Vec<AddedToken> = file.added_tokens.into_iter().map(|t| t.token).collect();
    tokenizer.add_tokens(&added);
    Some(tokenizer)
}

#[derive(Deserialize)]
struct TokenizerFile<'a> {
    version: Option<String>,
    truncation: Option<TruncationParams>,
    padding: Option<PaddingParams>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenWithId>,
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    post_processor: Option<PostProcessorWrapper>,
    decoder: Option<DecoderWrapper>,
    #[serde(borrow)]
    model: &'a serde_json::value::RawValue,
}

/// The id is the crate's too: it only warns when the vocabulary disagrees, and keeps the
/// vocabulary's.
#[derive(Deserialize)]
struct AddedTokenWithId {
    #[serde(rename = "id")]
    _id: u32,
    #[serde(flatten)]
    token: AddedToken,
}

/// The fields the crate's BPE deserializer reads; any other makes this reader step aside.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BpeFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    dropout: Option<f32>,
    unk_token: Option<String>,
    continuing_subword_prefix: Option<String>,
    end_of_word_suffix: Option<String>,
    fuse_unk: Option<bool>,
    byte_fallback: Option<bool>,
    ignore_merges: Option<bool>,
    vocab: AHashMap<String, u32>,
    merges: Vec<Merge>,
}

/// One merge as written: `["a", "b"]`, or the legacy `"a b"`.
enum Merge {
    Pair(String, String),
    Legacy(String),
}

impl<'de> Deserialize<'de> for Merge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MergeVisitor;
        impl<'de> Visitor<'de> for MergeVisitor {
            type Value = Merge;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a merge: [\"a\", \"b\"] or \"a b\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Merge, E> {
                Ok(Merge::Legacy(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Merge, E> {
                Ok(Merge::Legacy(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merge, A::Error> {
                let a = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let b = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Merge::Pair(a, b))
            }
        }
        d.deserialize_any(MergeVisitor)
    }
}

/// The merges as the builder takes them. The crate reads a list of one form only, and legacy
/// lines as its `convert_merges_to_hashmap` does (a `#version` line skipped, exactly one space).
fn merges(list: Vec<Merge>) -> Option<Vec<(String, String)>> {
    let legacy = matches!(list.first(), Some(Merge::Legacy(_)));
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        match (m, legacy) {
            (Merge::Pair(a, b), false) => out.push((a, b)),
            (Merge::Legacy(line), true) => {
                if line.starts_with("#version") {
                    continue;
                }
                let (a, b) = line.split_once(' ')?;
                if b.contains(' ') {
                    return None;
                }
                out.push((a.to_owned(), b.to_owned()));
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/demo/tokenizer.json");
    const SIGLIP: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiny-siglip/tokenizer.json"
    );
    const XLMR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiny-xlmr-clip/tokenizer.json"
    );

    const TEXTS: &[&str] = &[
        "a photo of a dog",
        "  Two CATS on a   sofa!! ",
        "Zürich café, naïve résumé — 東京タワー 🐕‍🦺",
        "<|startoftext|>already wrapped<|endoftext|>",
        "it's they're we've I'm you'll he'd 1234567 3.14",
        "",
    ];

    /// Both readings serialise to the same JSON (vocabulary, merges by rank, added tokens and
    /// every component) and encode the same ids.
    fn assert_same(json: &[u8]) {
        let fast = read_bpe(json).expect("the typed reader took this file");
        let crate_read = Tokenizer::from_bytes(json).unwrap();
        assert_eq!(
            fast.to_string(false).unwrap(),
            crate_read.to_string(false).unwrap()
        );
        for text in TEXTS {
            let a = fast.encode(*text, true).unwrap();
            let b = crate_read.encode(*text, true).unwrap();
            assert_eq!(a.get_ids(), b.get_ids(), "{text:?}");
            assert!(!a.get_ids().is_empty() || text.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn the_fast_read_builds_the_tokenizer_the_crate_builds() {
        assert_same(&std::fs::read(CLIP).unwrap());
        assert_same(&std::fs::read(SIGLIP).unwrap());
    }

    #[test]
    fn legacy_string_merges_read_as_the_crate_reads_them() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(CLIP).unwrap()).unwrap();
        let merges = v["model"]["merges"].as_array_mut().unwrap();
        for m in merges.iter_mut() {
            *m = format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap()).into();
        }
        merges.insert(0, "#version: 0.2".into());
        assert_same(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn files_it_does_not_know_are_left_to_the_crate() {
        // A Unigram model: the crate's parser reads it.
        let xlmr = std::fs::read(XLMR).unwrap();
        assert!(read_bpe(&xlmr).is_none());
        let t = read(&xlmr).unwrap();
        assert!(!t.encode("a photo", true).unwrap().get_ids().is_empty());
        // An unknown model field, and mixed merge forms: stepped aside from, then the crate's
        // verdict (it ignores the field; it refuses the mixed list).
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(SIGLIP).unwrap()).unwrap();
        v["model"]["something_new"] = true.into();
        let unknown = serde_json::to_vec(&v).unwrap();
        assert!(read_bpe(&unknown).is_none());
        assert!(read(&unknown).is_ok());
        v["model"].as_object_mut().unwrap().remove("something_new");
        assert!(read_bpe(&serde_json::to_vec(&v).unwrap()).is_some());
        v["model"]["merges"]
            .as_array_mut()
            .unwrap()
            .push("x y".into());
        let mixed = serde_json::to_vec(&v).unwrap();
        assert!(read_bpe(&mixed).is_none());
        assert!(read(&mixed).is_err());
        // Not JSON at all: the crate's error.
        assert!(read(b"{\"model\": ").is_err());
    }
}
