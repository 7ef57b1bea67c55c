//! The training loop: batches of pairs through [`TrainableClip`], the contrastive loss,
//! clipped AdamW updates on a warm-up + cosine schedule, periodic checkpoints and resumption.
//!
//! Determinism: the batch order of each epoch and the caption drawn for each example come
//! from generators seeded by (`seed`, epoch) and (`seed`, step), so a run resumed at step k
//! sees exactly the batches the uninterrupted run would have.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use clipsearch::preprocess::{PreprocessConfig, Preprocessor};
use clipsearch::tokenizer::ClipTokenizer;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::loss::{contrastive_loss, in_batch_accuracy, MAX_SCALE};
use crate::model::TrainableClip;
use crate::optim::{grad_norm, learning_rate, AdamW, AdamWConfig};
use crate::{Error, Result};

/// Everything a run needs besides the model and the data.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub out: PathBuf,
    pub steps: usize,
    pub batch_size: usize,
    pub warmup: usize,
    pub optimizer: AdamWConfig,
    /// Global gradient-norm limit (0: no clipping).
    pub clip_grad_norm: f64,
    pub seed: u64,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Storage type of the saved weights (f32, or f16 to halve the size).
    pub save_dtype: DType,
}

/// What one step did, for progress display.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub accuracy: f32,
    pub lr: f64,
    /// `exp(logit_scale)`.
    pub temperature: f32,
    pub grad_norm: f64,
}

/// The result of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainSummary {
    pub steps_done: usize,
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
    pub seconds: f64,
    pub interrupted: bool,
    pub out: PathBuf,
}

/// Where the optimizer state and step count live, inside the output directory.
pub fn state_dir(out: &Path) -> PathBuf {
    out.join("training-state")
}

/// The model being trained with the files it is saved with.
pub struct Run {
    pub model: TrainableClip,
    pub tokenizer_path: PathBuf,
    pub preprocess: PreprocessConfig,
}

impl Run {
    pub fn preprocessor(&self) -> Preprocessor {
        Preprocessor::new(self.preprocess.clone())
    }

    pub fn tokenizer(&self) -> Result<ClipTokenizer> {
        Ok(ClipTokenizer::from_file(
            &self.tokenizer_path,
            self.model.config.text.max_position_embeddings,
        )?)
    }
}

fn assemble(
    data: &Dataset,
    pre: &Preprocessor,
    members: &[usize],
    step_rng: &mut ChaCha8Rng,
    end_id: u32,
    device: &Device,
) -> Result<(Tensor, Tensor, Vec<usize>)> {
    let c = &pre.config;
    let mut pixels = Vec::with_capacity(members.len() * pre.len());
    let mut ids = Vec::with_capacity(members.len());
    for &i in members {
        pixels.extend(pre.normalise(data.crop(i)));
        let options = &data.captions[i];
        ids.push(options[step_rng.random_range(0..options.len())].clone());
    }
    let pixels = Tensor::from_vec(
        pixels,
        (members.len(), 3, c.crop_height, c.crop_width),
        device,
    )?;
    // Pad with the end token after each text's own end: the causal mask keeps it unseen.
    let len = ids.iter().map(Vec::len).max().unwrap_or(1);
    let ends: Vec<usize> = ids
        .iter()
        .map(|s| s.iter().position(|&t| t == end_id).unwrap_or(s.len() - 1))
        .collect();
    let flat: Vec<u32> = ids
        .iter()
        .flat_map(|s| s.iter().copied().chain(std::iter::repeat(end_id)).take(len))
        .collect();
    let ids = Tensor::from_vec(flat, (members.len(), len), device)?;
    Ok((pixels, ids, ends))
}

/// Trains `run.model` on `data`. `progress` sees every step; `stop` ends the run after the
/// current step, with a checkpoint. With `resume`, the optimizer state and step count saved
/// in `out` are restored first (the weights must already be loaded from `out`).
pub fn train(
    run: &Run,
    data: &Dataset,
    opts: &TrainOptions,
    resume: bool,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<TrainSummary> {
    let started = std::time::Instant::now();
    let model = &run.model;
    let pre = run.preprocessor();
    let tokenizer = run.tokenizer()?;
    let device = model.device().clone();
    let mut opt = AdamW::new(model.vars(), opts.optimizer.clone())?;
    let mut step = 0;
    if resume {
        step = restore_state(&opts.out, &mut opt, &device)?;
        tracing::info!("resuming at step {step} of {}", opts.steps);
    }
    let batch = opts.batch_size.min(data.len());
    if batch < 2 {
        return Err(Error::Data(
            "contrastive training needs at least 2 pairs per batch".into(),
        ));
    }
    let per_epoch = data.len() / batch;
    let vars: Vec<_> = model.vars().map(|(_, v)| v.clone()).collect();
    let max_log_scale = MAX_SCALE.ln();
    let (mut first, mut last) = (None, None);
    let mut interrupted = false;
    let mut order: Option<(usize, Vec<usize>)> = None;
    while step < opts.steps {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let epoch = step / per_epoch;
        if order.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut idx: Vec<usize> = (0..data.len()).collect();
            idx.shuffle(&mut ChaCha8Rng::seed_from_u64(
                opts.seed ^ (epoch as u64) << 32,
            ));
            order = Some((epoch, idx));
        }
        let idx = &order.as_ref().expect("set above").1;
        let at = (step % per_epoch) * batch;
        let members = &idx[at..at + batch];
        let mut step_rng = ChaCha8Rng::seed_from_u64(opts.seed.rotate_left(17) ^ step as u64);
        let (pixels, ids, ends) = assemble(
            data,
            &pre,
            members,
            &mut step_rng,
            tokenizer.end_id(),
            &device,
        )?;
        let images = model.image_features(&pixels)?;
        let texts = model.text_features(&ids, &ends)?;
        let out = contrastive_loss(&images, &texts, model.logit_scale())?;
        let grads = out.loss.backward()?;
        let norm = grad_norm(&grads, vars.iter())?;
        let scale = if opts.clip_grad_norm > 0.0 && norm > opts.clip_grad_norm {
            opts.clip_grad_norm / norm
        } else {
            1.0
        };
        let lr = learning_rate(step, opts.warmup, opts.steps, opts.optimizer.lr);
        opt.step(&grads, lr, scale)?;
        let clamped = model.clamp_logit_scale(max_log_scale)?;
        let loss = out.loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if !loss.is_finite() {
            return Err(Error::Data(format!(
                "the loss became {loss} at step {step}: lower --lr or raise --warmup"
            )));
        }
        first.get_or_insert(loss);
        last = Some(loss);
        step += 1;
        progress(&StepReport {
            step,
            steps: opts.steps,
            loss,
            accuracy: in_batch_accuracy(&out.logits)?,
            lr,
            temperature: clamped.exp()?.flatten_all()?.to_vec1::<f32>()?[0],
            grad_norm: norm,
        });
        if opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0 && step < opts.steps {
            checkpoint(run, &opt, opts, step)?;
        }
    }
    checkpoint(run, &opt, opts, step)?;
    Ok(TrainSummary {
        steps_done: step,
        first_loss: first,
        last_loss: last,
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
        out: opts.out.clone(),
    })
}

/// Saves the model (loadable by the engine) and, beside it, the optimizer state and step.
fn checkpoint(run: &Run, opt: &AdamW, opts: &TrainOptions, step: usize) -> Result<()> {
    // The full-precision weights live in the training state, so resuming from an f16 model
    // loses nothing.
    let dir = state_dir(&opts.out);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut tensors: HashMap<String, Tensor> = opt.state();
    for (k, v) in run.model.tensors() {
        tensors.insert(format!("p.{k}"), v);
    }
    let tmp = dir.join(".state.safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)?;
    let json = serde_json::json!({ "step": step, "steps": opts.steps, "seed": opts.seed });
    let tmp_json = dir.join(".state.json.tmp");
    std::fs::write(&tmp_json, json.to_string()).map_err(|e| Error::io(&tmp_json, e))?;
    run.model.save(
        &opts.out,
        &run.tokenizer_path,
        &run.preprocess,
        opts.save_dtype,
    )?;
    // The step count is renamed last: a crash before it leaves the previous, consistent state.
    std::fs::rename(&tmp, dir.join("state.safetensors"))
        .map_err(|e| Error::io(dir.join("state.safetensors"), e))?;
    std::fs::rename(&tmp_json, dir.join("state.json"))
        .map_err(|e| Error::io(dir.join("state.json"), e))?;
    tracing::info!("checkpoint at step {step} in {}", opts.out.display());
    Ok(())
}

/// Loads the saved parameters into `model`'s variables and the moments into `opt`; returns
/// the step to continue from.
fn restore_state(out: &Path, opt: &mut AdamW, device: &Device) -> Result<usize> {
    let dir = state_dir(out);
    let json_path = dir.join("state.json");
    let json = std::fs::read_to_string(&json_path).map_err(|e| {
        Error::Data(format!(
            "--resume: {} is not readable ({e}): nothing to resume in {}",
            json_path.display(),
            out.display()
        ))
    })?;
    let meta: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| Error::Data(format!("{}: {e}", json_path.display())))?;
    let step = meta["step"].as_u64().unwrap_or(0) as usize;
    let tensors = candle_core::safetensors::load(dir.join("state.safetensors"), device)?;
    opt.restore(&tensors, step)?;
    Ok(step)
}

/// The saved full-precision parameters of a run in `out`, for `--resume`.
pub fn saved_parameters(out: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::safetensors::load(state_dir(out).join("state.safetensors"), device)?;
    Ok(tensors
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("p.").map(|k| (k.to_string(), v)))
        .collect())
}
