//! CLIP (Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
//! Supervision", <https://arxiv.org/abs/2103.00020>) and the families that share its two-tower
//! design ([`family`]): SigLIP and SigLIP 2, OpenCLIP's CLIPs (LAION, DataComp, MobileCLIP,
//! multilingual XLM-RoBERTa ones).
//!
//! Loads checkpoints such as
//! [openai/clip-vit-base-patch32](https://huggingface.co/openai/clip-vit-base-patch32) in
//! transformers' layout or OpenCLIP's ([`openclip`]): every dimension comes from the
//! configuration ([`config`]), every tensor is checked against it before use ([`weights`]). The
//! two towers load separately ([`Towers`]) so that a text query never maps the vision weights.
//!
//! CLIP's towers are our own ([`clip_tower`]: candle-transformers' hard-codes quick-GELU);
//! SigLIP's, FastViT and XLM-RoBERTa are candle-transformers'. Departures from calling them as
//! they are, all for faithfulness:
//! - CLIP's text tower is pooled at the first end token, as transformers does (candle pools at
//!   `argmax(ids)`), and each batch runs at the length of its own texts, unpadded (the tower is
//!   causal); MobileCLIP's non-causal one reads its padding, as it was trained.
//! - FastViT runs one image at a time around a batched-matmul bug of candle's CPU backend.
//! - Our API returns L2-normalised embeddings; candle returns raw projections.

pub mod activation;
pub mod bundled;
pub mod clip_tower;
pub mod config;
pub mod config_json;
pub mod family;
pub mod files;
pub mod fingerprint;
pub mod hf_text;
pub mod hub;
pub mod identity;
pub mod int8;
pub mod layout;
pub mod openclip;
pub mod synthetic;
pub mod token_table;
pub mod vision;
pub mod weights;

use candle_core::{safetensors::MmapedSafetensors, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::siglip;

use clip_tower::{ClipTextTower, ClipVisionTower};

pub use config::ClipConfig;
pub use family::Family;
pub use files::ModelFiles;
pub use hub::{resolve, DEFAULT_MODEL};
pub use identity::{ModelIdentity, Precision, SCALED_DECODE};
pub use weights::Towers;

use crate::embedding::normalize;
use crate::error::{Error, Result};
use crate::preprocess::{PreprocessConfig, Preprocessor, PREPROCESS_VERSION};
use crate::tokenizer::{ClipTokenizer, PaddedTokenizer};

/// The text tower with its projection and tokenizer.
pub struct TextEncoder {
    tower: TextTower,
    device: Device,
}

enum TextTower {
    /// CLIP's text transformer ([`clip_tower`]), pooled at the first end token.
    Clip {
        transformer: Box<ClipTextTower>,
        projection: Linear,
        tokenizer: ClipTokenizer,
    },
    /// A Hugging Face text tower (XLM-RoBERTa) with OpenCLIP's pooling and projection, over
    /// unpadded sequences.
    Hf {
        tower: Box<hf_text::HfTextTower>,
        tokenizer: PaddedTokenizer,
    },
    /// candle-transformers' SigLIP text model (its head included), over padded sequences.
    Siglip {
        model: Box<siglip::TextModel>,
        tokenizer: PaddedTokenizer,
    },
}

/// The vision tower with its projection and preprocessing.
pub struct ImageEncoder {
    tower: VisionTower,
    preprocessor: Preprocessor,
    device: Device,
}

enum VisionTower {
    /// CLIP's tower with its projection ([`clip_tower`]): the reference's arithmetic.
    F32(Box<ClipVisionTower>),
    Int8(Box<vision::Int8VisionTower>),
    /// candle-transformers' SigLIP vision model with its attention-pooling head.
    Siglip(Box<siglip::VisionModel>),
    /// candle-transformers' FastViT with its head (MobileCLIP).
    FastVit(candle_nn::Func<'static>),
}

/// A loaded CLIP model (one or both towers).
pub struct ClipModel {
    pub config: ClipConfig,
    pub identity: ModelIdentity,
    text: Option<TextEncoder>,
    image: Option<ImageEncoder>,
    logit_scale: f32,
    /// SigLIP's learned bias, added to every scaled image-text similarity.
    logit_bias: Option<f32>,
}

/// The checkpoint's `tokenizer.json`; OpenCLIP checkpoints that ship none use CLIP's BPE
/// (`open_clip.SimpleTokenizer` is it, with the same table), which the binary carries.
fn clip_tokenizer(files: &ModelFiles, config: &ClipConfig) -> Result<ClipTokenizer> {
    let len = config.text.max_position_embeddings;
    let path = files.tokenizer();
    if !path.exists() && config.preprocess.is_some() && config.text.vocab_size == 49408 {
        return ClipTokenizer::from_bytes(bundled::clip_tokenizer_json(), &path, len);
    }
    ClipTokenizer::from_file(&path, len)
}

/// Runs `batch` once per distinct sequence length (texts are never padded to each other) with
/// those sequences as a `[n, len]` tensor, and puts each output row back in input order.
fn by_length(
    ids: &[Vec<u32>],
    device: &Device,
    mut batch: impl FnMut(&Tensor, &[&[u32]]) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); ids.len()];
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, seq) in ids.iter().enumerate() {
        groups.entry(seq.len()).or_default().push(i);
    }
    for (len, members) in groups {
        let seqs: Vec<&[u32]> = members.iter().map(|&i| ids[i].as_slice()).collect();
        let flat: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        let input = Tensor::from_vec(flat, (members.len(), len), device)?;
        for (&i, row) in members.iter().zip(batch(&input, &seqs)?) {
            out[i] = row;
        }
    }
    Ok(out)
}

fn clip_params(config: &ClipConfig) -> Result<family::ClipParams> {
    match config.family {
        Family::Clip(p) => Ok(p),
        _ => Err(Error::Misuse("not a CLIP configuration".into())),
    }
}

fn linear_no_bias(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Linear> {
    Ok(candle_nn::linear_no_bias(in_dim, out_dim, vb)?)
}

fn identity_of(
    files: &ModelFiles,
    config: &ClipConfig,
    pre: &PreprocessConfig,
) -> Result<ModelIdentity> {
    Ok(ModelIdentity {
        name: files.name.clone(),
        fingerprint: fingerprint::fingerprint(files, pre)?,
        legacy_fingerprint: Some(fingerprint::legacy_fingerprint(files, pre)?),
        dim: config.projection_dim,
        preprocess_version: PREPROCESS_VERSION,
        decode: identity::exact_decode(),
        precision: identity::f32_precision(),
        family: config.family.name().into(),
    })
}

impl ModelIdentity {
    /// The identity of a checkpoint without loading its weights (milliseconds): enough to open
    /// an index and find that nothing needs embedding.
    pub fn of(files: &ModelFiles) -> Result<Self> {
        let config = ClipConfig::from_file(&files.config())?;
        let pre =
            PreprocessConfig::from_file_or(&files.preprocessor(), config.default_preprocess())?;
        identity_of(files, &config, &pre)
    }
}

/// Loads every tensor the towers need, in parallel, as f32 on `device`, under transformers'
/// names (OpenCLIP's are renamed, then checked as the others are before loading).
fn load_tensors(
    path: &std::path::Path,
    st: &MmapedSafetensors,
    config: &ClipConfig,
    towers: Towers,
    precision: Precision,
    device: &Device,
    mapped: Option<&str>,
) -> Result<std::collections::HashMap<String, Tensor>> {
    use rayon::prelude::*;
    // The int8 tower quantizes the image tower's weights from the checkpoint's layout: laying
    // them out for f32 products first would be a copy of every weight for nothing.
    let quantized = |key: &str| {
        precision == Precision::Int8
            && (key.starts_with("vision_model.") || key.starts_with("visual_projection."))
    };
    let for_matmul = |key: &str, t: Tensor| -> candle_core::Result<Tensor> {
        if quantized(key) {
            Ok(t)
        } else {
            layout::for_matmul(key, t)
        }
    };
    if openclip::is_openclip(st) {
        let tensors = openclip::tensors(st, config, towers, device)?;
        weights::check_loaded(path, &tensors, config, towers)?;
        return tensors
            .into_par_iter()
            .map(|(key, t)| {
                let t = for_matmul(&key, t)?;
                Ok((key, t))
            })
            .collect();
    }
    weights::expected_tensors(config, towers)
        .into_par_iter()
        .filter(|(key, _)| Some(key.as_str()) != mapped)
        .map(|(key, _)| {
            let relaid = match quantized(&key) {
                false => layout::load_linear_weight(st, &key, device)?,
                true => None,
            };
            let t = match relaid {
                Some(t) => t,
                None => for_matmul(&key, st.load(&key, device)?.to_dtype(DType::F32)?)?,
            };
            if device.is_cpu() {
                release_pages(st, &key);
            }
            Ok((key, t))
        })
        .collect()
}

/// Drops the mapped checkpoint pages of a tensor that was just copied out of them: without
/// it, a process holds every weight twice at its peak (the copy, and the file's pages mapped
/// while reading it), which for ViT-B/32's text tower would be 150 MB more for a query. The pages stay
/// in the page cache; were they read again, they would fault back in from the unchanged,
/// read-only file, so nothing can observe the difference but the resident set.
fn release_pages(st: &MmapedSafetensors, key: &str) {
    let Ok(view) = st.get(key) else {
        return;
    };
    let data = view.data();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    // Only pages wholly inside this tensor: a neighbour's bytes may still be being read.
    let start = (data.as_ptr() as usize).next_multiple_of(page);
    let end = (data.as_ptr() as usize + data.len()) / page * page;
    if end > start {
        // SAFETY: the range lies inside a live read-only private file mapping (candle's), and
        // MADV_DONTNEED on such a mapping only unmaps pages that re-fault with the same bytes.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// The HF CLIP text tower's token embedding table.
const TOKEN_TABLE: &str = "text_model.embeddings.token_embedding.weight";

/// Maps the checkpoint's weights file.
fn map_checkpoint(weights: &std::path::Path) -> Result<MmapedSafetensors> {
    // SAFETY: the file is mapped read-only; as with every mmap-based loader, a checkpoint
    // modified while we run is undefined behaviour, which is why we never write to one.
    unsafe { MmapedSafetensors::new(weights) }.map_err(|e| {
        Error::ModelUnavailable(format!(
            "{}: not a readable safetensors file: {e}",
            weights.display()
        ))
    })
}

/// Fast mode's int8 image tower is CLIP's ViT written out ([`vision`]): for any other tower
/// `--fast` is refused, saying what to do instead, before a tensor is copied.
fn refuse_int8_where_unsupported(config: &ClipConfig, precision: Precision) -> Result<()> {
    if precision == Precision::Int8 && config.timm_vision.is_some() {
        return Err(Error::Unsupported {
            key: "--fast".into(),
            value: "the int8 image tower is implemented for ViTs, not MobileCLIP's FastViT \
                    (index without --fast: FastViT is the fast tower)"
                .into(),
        });
    }
    if precision == Precision::Int8 && !config.family.is_clip() {
        return Err(Error::Unsupported {
            key: "--fast".into(),
            value: format!(
                "the int8 image tower is implemented for CLIP only, not {} (index without \
                 --fast)",
                config.family.name()
            ),
        });
    }
    Ok(())
}

/// The learned temperature (the configuration's initial value when the checkpoint has none)
/// and SigLIP's learned bias, which a SigLIP checkpoint must have.
fn logit_parameters(
    st: &MmapedSafetensors,
    config: &ClipConfig,
    weights: &std::path::Path,
) -> Result<(f32, Option<f32>)> {
    let scalar = |key: &str| -> Result<Option<f32>> {
        if st.get(key).is_err() {
            return Ok(None);
        }
        let v = st.load(key, &Device::Cpu)?.to_dtype(DType::F32)?;
        Ok(v.flatten_all()?.to_vec1::<f32>()?.first().copied())
    };
    let logit_scale = scalar("logit_scale")?.unwrap_or(config.logit_scale_init_value);
    let logit_bias = match config.family {
        Family::Clip(_) => None,
        Family::Siglip(_) => Some(scalar("logit_bias")?.ok_or_else(|| Error::MissingTensor {
            path: weights.to_path_buf(),
            key: "logit_bias".into(),
        })?),
    };
    Ok((logit_scale, logit_bias))
}

/// The tokenizer the family reads text with: CLIP's BPE, or a padded one (SigLIP's, and the
/// Hugging Face text towers').
fn read_tokenizer(files: &ModelFiles, config: &ClipConfig) -> Result<Tokenizer> {
    let len = config.text.max_position_embeddings;
    if config.hf_text.is_some() {
        return Ok(Tokenizer::Padded(PaddedTokenizer::from_file(
            &files.tokenizer(),
            &files.tokenizer_config(),
            len,
        )?));
    }
    Ok(match config.family {
        Family::Clip(_) => Tokenizer::Clip(clip_tokenizer(files, config)?),
        Family::Siglip(_) => Tokenizer::Padded(PaddedTokenizer::from_file(
            &files.tokenizer(),
            &files.tokenizer_config(),
            len,
        )?),
    })
}

/// The tokenizer (when the text tower is wanted) and the towers' tensors, side by side.
///
/// Start-up latency matters for one-shot CLI queries: tokenizer.json is parsed on another
/// thread while `tensors` copies the weights out of the mapping in parallel (CLIP's token
/// table stays in it: [`token_table`]).
fn read_tokenizer_and_tensors(
    files: &ModelFiles,
    config: &ClipConfig,
    towers: Towers,
    tensors: impl FnOnce() -> Result<std::collections::HashMap<String, Tensor>>,
) -> (
    Result<Option<Tokenizer>>,
    Result<std::collections::HashMap<String, Tensor>>,
) {
    std::thread::scope(|s| {
        let start = std::time::Instant::now();
        let tokenizer = towers.text().then(|| {
            s.spawn(move || {
                let t = read_tokenizer(files, config);
                tracing::debug!(ms = start.elapsed().as_millis() as u64, "tokenizer read");
                t
            })
        });
        let tensors = tensors();
        tracing::debug!(ms = start.elapsed().as_millis() as u64, "weights read");
        let tokenizer = tokenizer.map(|h| h.join().expect("tokenizer thread panicked"));
        (tokenizer.transpose(), tensors)
    })
}

impl ClipModel {
    /// Loads the requested towers of a checkpoint onto [`crate::device::select`]'s device.
    pub fn load(files: &ModelFiles, towers: Towers) -> Result<Self> {
        Self::load_with(files, towers, Precision::F32)
    }

    /// As [`ClipModel::load`], with the image tower computing at `precision`.
    pub fn load_with(files: &ModelFiles, towers: Towers, precision: Precision) -> Result<Self> {
        let config = ClipConfig::from_file(&files.config())?;
        let weights = files.weights();
        let st = std::sync::Arc::new(map_checkpoint(&weights)?);
        if !openclip::is_openclip(&st) {
            weights::check(&weights, &st, &config, towers)?;
        }
        refuse_int8_where_unsupported(&config, precision)?;
        let (logit_scale, logit_bias) = logit_parameters(&st, &config, &weights)?;
        let pre_config =
            PreprocessConfig::from_file_or(&files.preprocessor(), config.default_preprocess())?;
        let mut identity = identity_of(files, &config, &pre_config)?;
        identity.precision = precision.as_str().into();
        let device = crate::device::select();
        // CLIP's token table stays in the mapping on the CPU (see [`token_table`]).
        let mapped = (towers.text()
            && device.is_cpu()
            && matches!(config.family, Family::Clip(_))
            && config.hf_text.is_none()
            && !openclip::is_openclip(&st))
        .then_some(TOKEN_TABLE);
        let (tokenizer, tensors) = read_tokenizer_and_tensors(files, &config, towers, || {
            load_tensors(&weights, &st, &config, towers, precision, &device, mapped)
        });
        let vb = VarBuilder::from_tensors(tensors?, DType::F32, &device);
        let table = match mapped {
            Some(key) => Some(token_table::TokenTable::Mapped(
                token_table::MappedRows::new(
                    st.clone(),
                    key,
                    config.text.vocab_size,
                    config.text.hidden_size,
                    device.clone(),
                )?,
            )),
            None => None,
        };
        let text = match tokenizer? {
            Some(tokenizer) => Some(TextEncoder::build(
                &vb,
                &config,
                tokenizer,
                table,
                device.clone(),
            )?),
            None => None,
        };
        let image = if towers.image() {
            Some(ImageEncoder::build(
                &vb, &config, precision, pre_config, device,
            )?)
        } else {
            None
        };
        Ok(ClipModel {
            config,
            identity,
            text,
            image,
            logit_scale,
            logit_bias,
        })
    }

    /// Width of the embedding space.
    pub fn dim(&self) -> usize {
        self.config.projection_dim
    }

    /// The learned temperature, exponentiated and clamped at 100 as in training.
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale.exp().min(100.0)
    }

    /// The raw `logit_scale` parameter.
    pub fn logit_scale_raw(&self) -> f32 {
        self.logit_scale
    }

    /// SigLIP's learned bias (none for CLIP).
    pub fn logit_bias(&self) -> Option<f32> {
        self.logit_bias
    }

    /// How `classify` turns an image's cosine similarities to labels into probabilities.
    pub fn scoring(&self) -> LabelScoring {
        LabelScoring {
            scale: match self.config.family {
                Family::Clip(_) => self.logit_scale(),
                Family::Siglip(_) => self.logit_scale.exp(),
            },
            bias: self.logit_bias.unwrap_or(0.0),
            sigmoid: self.config.family.sigmoid_scores(),
        }
    }

    pub fn text(&self) -> Result<&TextEncoder> {
        self.text
            .as_ref()
            .ok_or_else(|| Error::Misuse("the text tower was not loaded".into()))
    }

    pub fn image_mut(&mut self) -> Result<&mut ImageEncoder> {
        self.image
            .as_mut()
            .ok_or_else(|| Error::Misuse("the image tower was not loaded".into()))
    }

    pub fn image(&self) -> Result<&ImageEncoder> {
        self.image
            .as_ref()
            .ok_or_else(|| Error::Misuse("the image tower was not loaded".into()))
    }
}

/// A family's zero-shot scoring: logits `scale * cos + bias`, then a softmax over the labels
/// (CLIP: the temperature clamped at 100 as in training) or an independent sigmoid per label
/// (SigLIP: probabilities need not sum to one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelScoring {
    pub scale: f32,
    pub bias: f32,
    pub sigmoid: bool,
}

impl LabelScoring {
    pub fn logits(&self, cosines: &[f32]) -> Vec<f32> {
        cosines.iter().map(|c| self.scale * c + self.bias).collect()
    }

    pub fn probabilities(&self, cosines: &[f32]) -> Vec<f32> {
        let logits = self.logits(cosines);
        if self.sigmoid {
            return logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect();
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exps.iter().sum();
        exps.iter().map(|e| e / sum).collect()
    }
}

/// The tokenizer a family reads text with.
enum Tokenizer {
    Clip(ClipTokenizer),
    Padded(PaddedTokenizer),
}

impl TextEncoder {
    /// The text tower the tokenizer goes with, from the loaded tensors.
    fn build(
        vb: &VarBuilder,
        config: &ClipConfig,
        tokenizer: Tokenizer,
        table: Option<token_table::TokenTable>,
        device: Device,
    ) -> Result<Self> {
        let tower = match tokenizer {
            Tokenizer::Clip(tokenizer) => TextTower::Clip {
                transformer: Box::new(ClipTextTower::with_table(
                    vb.pp("text_model"),
                    &config.text,
                    clip_params(config)?,
                    table,
                )?),
                projection: linear_no_bias(
                    vb.pp("text_projection"),
                    config.text.hidden_size,
                    config.projection_dim,
                )?,
                tokenizer,
            },
            Tokenizer::Padded(tokenizer) if config.hf_text.is_some() => {
                let hf = config.hf_text.as_ref().expect("checked");
                TextTower::Hf {
                    tower: Box::new(hf_text::HfTextTower::new(
                        vb.pp("text"),
                        hf,
                        config.projection_dim,
                    )?),
                    tokenizer,
                }
            }
            Tokenizer::Padded(tokenizer) => TextTower::Siglip {
                model: Box::new(siglip::TextModel::new(
                    &config.candle_siglip_text()?,
                    vb.pp("text_model"),
                )?),
                tokenizer,
            },
        };
        Ok(TextEncoder { tower, device })
    }

    /// CLIP's tokenizer (none for other families: see [`TextEncoder::encode_checked`]).
    pub fn clip_tokenizer(&self) -> Option<&ClipTokenizer> {
        match &self.tower {
            TextTower::Clip { tokenizer, .. } => Some(tokenizer),
            TextTower::Siglip { .. } | TextTower::Hf { .. } => None,
        }
    }

    /// The token ids the tower reads for `text`, and whether it had to be truncated.
    pub fn encode_checked(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        match &self.tower {
            TextTower::Clip { tokenizer, .. } => tokenizer.encode_checked(text),
            TextTower::Siglip { tokenizer, .. } => tokenizer.encode_checked(text),
            TextTower::Hf { tokenizer, .. } => tokenizer.encode_unpadded(text),
        }
    }

    /// The token ids the tower reads for `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_checked(text)?.0)
    }

    /// The longest text, in tokens, the tower reads.
    pub fn context_length(&self) -> usize {
        match &self.tower {
            TextTower::Clip { tokenizer, .. } => tokenizer.context_length(),
            TextTower::Siglip { tokenizer, .. } | TextTower::Hf { tokenizer, .. } => {
                tokenizer.context_length()
            }
        }
    }

    /// Unnormalised text features (`get_text_features`), one row per id sequence. Sequences of
    /// equal length share a batch; none is padded.
    pub fn features_from_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let (transformer, projection, tokenizer) = match &self.tower {
            TextTower::Clip {
                transformer,
                projection,
                tokenizer,
            } => (transformer, projection, tokenizer),
            TextTower::Siglip { model, .. } => {
                // Every sequence is padded to the same length: one batch.
                return by_length(ids, &self.device, |input, _| {
                    Ok(model.forward(input)?.to_vec2::<f32>()?)
                });
            }
            TextTower::Hf { tower, .. } => {
                // Unpadded, each length its own batch (see [`hf_text`]).
                return by_length(ids, &self.device, |input, _| {
                    Ok(tower.forward(input)?.to_vec2::<f32>()?)
                });
            }
        };
        // A non-causal tower (MobileCLIP's) reads the padding too: pad with 0 to the context, as
        // open_clip's tokenizer does.
        let padded: Vec<Vec<u32>>;
        let ids = if transformer.causal() {
            ids
        } else {
            padded = ids
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s.resize(tokenizer.context_length().max(s.len()), 0);
                    s
                })
                .collect();
            &padded
        };
        by_length(ids, &self.device, |input, members| {
            let hidden = transformer.forward(input)?;
            let len = input.dim(1)?;
            let mut pooled = Vec::with_capacity(members.len());
            for (row, seq) in members.iter().enumerate() {
                let end = seq
                    .iter()
                    .position(|&t| t == tokenizer.end_id())
                    .unwrap_or(len - 1);
                pooled.push(hidden.i((row, end))?.unsqueeze(0)?);
            }
            Ok(projection
                .forward(&Tensor::cat(&pooled, 0)?)?
                .to_vec2::<f32>()?)
        })
    }

    /// L2-normalised embeddings of `texts`; a text longer than the context is truncated, with
    /// a warning.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut ids = Vec::with_capacity(texts.len());
        for t in texts {
            let (seq, truncated) = self.encode_checked(t)?;
            if truncated {
                tracing::warn!(
                    "text longer than the model's {} tokens, truncated: {:?}",
                    self.context_length(),
                    t.chars().take(60).collect::<String>()
                );
            }
            ids.push(seq);
        }
        let mut feats = self.features_from_ids(&ids)?;
        feats.iter_mut().for_each(|v| normalize(v));
        Ok(feats)
    }
}

impl ImageEncoder {
    /// The family's image tower at `precision`, from the loaded tensors.
    fn build(
        vb: &VarBuilder,
        config: &ClipConfig,
        precision: Precision,
        pre_config: PreprocessConfig,
        device: Device,
    ) -> Result<Self> {
        let tower =
            match (precision, config.family) {
                _ if config.timm_vision.is_some() => {
                    VisionTower::FastVit(openclip::fastvit(config, vb)?)
                }
                (_, Family::Siglip(_)) => VisionTower::Siglip(Box::new(siglip::VisionModel::new(
                    &config.candle_siglip_vision()?,
                    true,
                    vb.pp("vision_model"),
                )?)),
                (Precision::F32, Family::Clip(p)) => VisionTower::F32(Box::new(
                    ClipVisionTower::new(vb.clone(), config, p.vision_act, p.vision_eps)?,
                )),
                (Precision::Int8, Family::Clip(p)) => {
                    VisionTower::Int8(Box::new(vision::Int8VisionTower::load(
                        vb.clone(),
                        &config.vision,
                        config.projection_dim,
                        &p,
                    )?))
                }
            };
        Ok(ImageEncoder {
            tower,
            preprocessor: Preprocessor::new(pre_config),
            device,
        })
    }

    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The arithmetic of this tower.
    pub fn precision(&self) -> Precision {
        match self.tower {
            VisionTower::F32(_) | VisionTower::Siglip(_) | VisionTower::FastVit(_) => {
                Precision::F32
            }
            VisionTower::Int8(_) => Precision::Int8,
        }
    }

    /// The integer product an int8 tower runs (`None` for the others): ours where the CPU
    /// has AVX-512 VNNI, candle's elsewhere.
    pub fn int8_product(&self) -> Option<vision::Int8Product> {
        match &self.tower {
            VisionTower::Int8(t) => Some(t.product()),
            _ => None,
        }
    }

    /// Unnormalised image features (`get_image_features`) of preprocessed images laid end to end.
    pub fn features_from_pixels(&self, pixels: &[f32]) -> Result<Vec<Vec<f32>>> {
        let c = &self.preprocessor.config;
        let n = pixels.len() / self.preprocessor.len();
        if n == 0 || n * self.preprocessor.len() != pixels.len() {
            return Err(Error::Misuse(format!(
                "pixel buffer of {} values is not a whole number of {}x{} images",
                pixels.len(),
                c.crop_width,
                c.crop_height
            )));
        }
        let input = Tensor::from_slice(pixels, (n, 3, c.crop_height, c.crop_width), &self.device)?;
        let feats = match &self.tower {
            VisionTower::F32(tower) => tower.forward(&input)?,
            VisionTower::Int8(tower) => tower.forward(&input)?,
            VisionTower::Siglip(model) => model.forward(&input)?,
            VisionTower::FastVit(model) => {
                // One image at a time: candle 0.11's CPU matmul folds a batched product whose
                // lhs is a transposed view into one GEMM as if its rows were adjacent, which
                // mixes the images of a batch in FastViT's attention stage
                // (huggingface/candle#3744, fix proposed in #3758). MobileCLIP is built for
                // batches of one; a batch of one is exact.
                let rows = (0..n)
                    .map(|i| model.forward(&input.narrow(0, i, 1)?))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&rows, 0)?
            }
        };
        Ok(feats.to_vec2::<f32>()?)
    }

    /// L2-normalised embeddings of preprocessed images laid end to end.
    pub fn embed_pixels(&self, pixels: &[f32]) -> Result<Vec<Vec<f32>>> {
        let mut feats = self.features_from_pixels(pixels)?;
        feats.iter_mut().for_each(|v| normalize(v));
        Ok(feats)
    }

    /// Decodes JPEGs exactly or DCT-scaled (to match an index built with `--fast`).
    pub fn set_decode(&mut self, mode: crate::preprocess::decode::DecodeMode) {
        self.preprocessor.decode = mode;
    }

    /// Decodes, preprocesses and embeds one file.
    pub fn embed_file(&self, path: &std::path::Path) -> Result<Vec<f32>> {
        let pixels = self.preprocessor.load_file(path)?;
        Ok(self.embed_pixels(&pixels)?.remove(0))
    }
}
