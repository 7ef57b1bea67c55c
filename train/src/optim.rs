//! AdamW (Loshchilov & Hutter, 2019) with parameter groups, a warm-up + cosine learning-rate
//! schedule, and global gradient-norm clipping.
//!
//! Written here rather than taken from `candle_nn::AdamW` for two reasons: CLIP's recipe needs
//! groups (no weight decay on gains, biases, embeddings and the temperature; its own learning
//! rate for the temperature, which otherwise barely moves in a short run), and `--resume` needs
//! the moment estimates saved and restored, which candle's optimizer keeps private.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Tensor, Var};

use crate::Result;

#[derive(Clone, Debug)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Multiplies the learning rate of `logit_scale`.
    pub logit_scale_lr_mult: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        // CLIP's own: beta2 0.98 and eps 1e-6 for stability with large batches.
        AdamWConfig {
            lr: 5e-4,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            weight_decay: 0.1,
            logit_scale_lr_mult: 1.0,
        }
    }
}

/// Whether CLIP applies weight decay to a parameter: only to weight matrices, not to gains,
/// biases, embeddings or the temperature (as in open_clip).
pub fn decays(name: &str, rank: usize) -> bool {
    rank >= 2 && !name.contains("norm") && !name.contains("embedding") && name != "logit_scale"
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    decay: bool,
    lr_mult: f64,
}

/// The optimizer state over a fixed set of named variables.
pub struct AdamW {
    pub config: AdamWConfig,
    slots: Vec<Slot>,
    /// Steps taken so far (bias correction uses it).
    pub step: usize,
}

impl AdamW {
    pub fn new<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a Var)>,
        config: AdamWConfig,
    ) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                Ok(Slot {
                    name: name.to_string(),
                    decay: decays(name, var.rank()),
                    lr_mult: if name == "logit_scale" {
                        config.logit_scale_lr_mult
                    } else {
                        1.0
                    },
                    m: var.zeros_like()?,
                    v: var.zeros_like()?,
                    var: var.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW {
            config,
            slots,
            step: 0,
        })
    }

    /// One update at learning rate `lr`, gradients scaled by `grad_scale` (clipping).
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let c = &self.config;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for slot in &mut self.slots {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let g = (g * grad_scale)?;
            let lr = lr * slot.lr_mult;
            slot.m = ((&slot.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            slot.v = ((&slot.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&slot.m / bc1)?;
            let v_hat = (&slot.v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let mut value = slot.var.as_tensor().clone();
            if slot.decay && c.weight_decay > 0.0 {
                value = (value * (1.0 - lr * c.weight_decay))?;
            }
            slot.var.set(&(value - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The moment estimates, named `m.<param>` and `v.<param>`, for a training-state file.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("m.{}", s.name), s.m.clone());
            out.insert(format!("v.{}", s.name), s.v.clone());
        }
        out
    }

    /// Restores [`AdamW::state`] and the step count.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for s in &mut self.slots {
            let get = |k: String| {
                state
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| crate::Error::Data(format!("training state has no {k}")))
            };
            s.m = get(format!("m.{}", s.name))?;
            s.v = get(format!("v.{}", s.name))?;
        }
        self.step = step;
        Ok(())
    }
}

/// The global L2 norm of all gradients of `vars`.
pub fn grad_norm<'a>(grads: &GradStore, vars: impl IntoIterator<Item = &'a Var>) -> Result<f64> {
    let mut sum = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var) {
            sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    Ok(sum.sqrt())
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to 0 at `total`.
pub fn learning_rate(step: usize, warmup: usize, total: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((learning_rate(0, 10, 110, 1.0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 10, 110, 1.0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(10, 10, 110, 1.0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(60, 10, 110, 1.0) - 0.5).abs() < 1e-12);
        assert!(learning_rate(110, 10, 110, 1.0).abs() < 1e-12);
    }

    #[test]
    fn groups_follow_clip() {
        assert!(decays("vision_model.encoder.layers.0.mlp.fc1.weight", 2));
        assert!(!decays("vision_model.encoder.layers.0.mlp.fc1.bias", 1));
        assert!(!decays("text_model.final_layer_norm.weight", 1));
        assert!(!decays("text_model.embeddings.token_embedding.weight", 2));
        assert!(!decays("logit_scale", 1));
    }

    /// One AdamW step from zero moments moves each weight by lr * sign(grad) (bias-corrected
    /// first step), after decoupled decay.
    #[test]
    fn first_step_is_signed_lr() {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![1f32, -2.0, 3.0, 0.5], (2, 2), &dev).unwrap();
        let loss = (w.as_tensor() * Tensor::new(&[[1f32, -1.0], [2.0, 0.5]], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let config = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = AdamW::new([("w.weight", &w)], config).unwrap();
        opt.step(&grads, 0.1, 1.0).unwrap();
        let got = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = [
            1.0 * 0.95 - 0.1,
            -2.0 * 0.95 + 0.1,
            3.0 * 0.95 - 0.1,
            0.5 * 0.95 - 0.1,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
