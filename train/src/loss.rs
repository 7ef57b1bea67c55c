//! CLIP's contrastive objective (Radford et al., 2021, Figure 3): for a batch of N image-text
//! pairs, the N x N matrix of cosine similarities scaled by the learned temperature
//! `exp(logit_scale)` (clamped at 100) is read row-wise (each image against all texts) and
//! column-wise (each text against all images); the loss is the mean of the two cross-entropies
//! with the diagonal as the targets.

use candle_core::{Tensor, D};

use crate::Result;

/// The largest temperature CLIP allows: `exp(logit_scale)` is clamped here.
pub const MAX_SCALE: f64 = 100.0;

/// Rows scaled to unit L2 norm (differentiable).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

/// The loss and the similarity logits of a batch.
pub struct ContrastiveOutput {
    /// Scalar: (CE(images -> texts) + CE(texts -> images)) / 2.
    pub loss: Tensor,
    /// `[N, N]`: row i holds image i against every text.
    pub logits: Tensor,
}

/// The symmetric contrastive loss of unnormalised image and text features (`[N, dim]` each,
/// pair i in row i) under the raw temperature parameter `logit_scale` (`[1]`).
pub fn contrastive_loss(
    image_features: &Tensor,
    text_features: &Tensor,
    logit_scale: &Tensor,
) -> Result<ContrastiveOutput> {
    let n = image_features.dim(0)?;
    let images = l2_normalize(image_features)?;
    let texts = l2_normalize(text_features)?;
    let scale = logit_scale.exp()?.minimum(MAX_SCALE)?;
    let logits = images.matmul(&texts.t()?)?.broadcast_mul(&scale)?;
    let targets = Tensor::arange(0u32, n as u32, logits.device())?;
    let per_image = candle_nn::loss::cross_entropy(&logits, &targets)?;
    let per_text = candle_nn::loss::cross_entropy(&logits.t()?, &targets)?;
    let loss = ((per_image + per_text)? * 0.5)?;
    Ok(ContrastiveOutput { loss, logits })
}

/// Fraction of rows and columns whose largest logit is on the diagonal (in-batch accuracy).
pub fn in_batch_accuracy(logits: &Tensor) -> Result<f32> {
    let n = logits.dim(0)?;
    let rows = logits.argmax(1)?.to_vec1::<u32>()?;
    let cols = logits.argmax(0)?.to_vec1::<u32>()?;
    let hits = rows
        .iter()
        .enumerate()
        .filter(|(i, &j)| *i as u32 == j)
        .count()
        + cols
            .iter()
            .enumerate()
            .filter(|(i, &j)| *i as u32 == j)
            .count();
    Ok(hits as f32 / (2 * n) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Identity features, scale 1: every logit row is (1, 0, 0) up to order, so each
    /// cross-entropy is -log(e / (e + 2)) = log(e + 2) - 1 = 0.551444713932051 by hand.
    #[test]
    fn three_by_three_by_hand() {
        let dev = Device::Cpu;
        let eye = Tensor::eye(3, DType::F64, &dev).unwrap();
        let scale = Tensor::new(&[0f64], &dev).unwrap(); // exp(0) = 1
        let out = contrastive_loss(&eye, &eye, &scale).unwrap();
        let loss = out.loss.to_scalar::<f64>().unwrap();
        assert!((loss - 0.551_444_713_932_051).abs() < 1e-12, "{loss}");

        // An asymmetric case: texts (1,0), (1,1)/sqrt2, (0,1) against images (1,0), (0,1),
        // (1,1)/sqrt2 at scale 2 (logit_scale ln 2). Written out with plain f64 loops.
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let img = [[1.0, 0.0], [0.0, 1.0], [s, s]];
        let txt = [[1.0, 0.0], [s, s], [0.0, 1.0]];
        let dot = |a: [f64; 2], b: [f64; 2]| 2.0 * (a[0] * b[0] + a[1] * b[1]);
        let mut expected = 0.0;
        for i in 0..3 {
            let row: Vec<f64> = (0..3).map(|j| dot(img[i], txt[j])).collect();
            let col: Vec<f64> = (0..3).map(|j| dot(img[j], txt[i])).collect();
            let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
            expected += (lse(&row) - row[i]) + (lse(&col) - col[i]);
        }
        expected /= 6.0;
        let t = |m: [[f64; 2]; 3]| {
            Tensor::from_vec(
                m.iter().flatten().copied().collect::<Vec<_>>(),
                (3, 2),
                &dev,
            )
            .unwrap()
        };
        // Unnormalised inputs (scaled rows) must give the same loss.
        let img_t = (t(img) * 3.0).unwrap();
        let scale = Tensor::new(&[2f64.ln()], &dev).unwrap();
        let got = contrastive_loss(&img_t, &t(txt), &scale).unwrap().loss;
        let got = got.to_scalar::<f64>().unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!(expected > 0.5 && expected < 1.5, "{expected}");
    }

    #[test]
    fn temperature_is_clamped_at_100() {
        let dev = Device::Cpu;
        let eye = Tensor::eye(2, DType::F64, &dev).unwrap();
        let at = |ls: f64| {
            let scale = Tensor::new(&[ls], &dev).unwrap();
            let out = contrastive_loss(&eye, &eye, &scale).unwrap();
            out.logits.to_vec2::<f64>().unwrap()[0][0]
        };
        assert!((at(100f64.ln() + 1.0) - 100.0).abs() < 1e-9);
        assert!((at(1.0) - 1f64.exp()).abs() < 1e-9);
    }

    /// Central finite differences of the loss agree with candle's backward pass, for the
    /// features (through the normalisation) and for the temperature.
    #[test]
    fn gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let img: Vec<f64> = (0..12).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
        let txt: Vec<f64> = (0..12).map(|i| ((i * 5 % 13) as f64 - 6.0) / 5.0).collect();
        let img = Var::from_vec(img, (4, 3), &dev).unwrap();
        let txt = Var::from_vec(txt, (4, 3), &dev).unwrap();
        let ls = Var::from_vec(vec![1.3f64], 1, &dev).unwrap();
        let loss_of = |i: &Tensor, t: &Tensor, l: &Tensor| {
            contrastive_loss(i, t, l)
                .unwrap()
                .loss
                .to_scalar::<f64>()
                .unwrap()
        };
        let out = contrastive_loss(&img, &txt, &ls).unwrap();
        let grads = out.loss.backward().unwrap();
        let h = 1e-6;
        for (var, name) in [(&img, "image"), (&txt, "text"), (&ls, "logit_scale")] {
            let analytic = grads
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let base = var.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for k in 0..base.len() {
                let shifted = |d: f64| {
                    let mut v = base.clone();
                    v[k] += d;
                    Tensor::from_vec(v, var.shape(), &dev).unwrap()
                };
                let (plus, minus) = (shifted(h), shifted(-h));
                let (lp, lm) = match name {
                    "image" => (loss_of(&plus, &txt, &ls), loss_of(&minus, &txt, &ls)),
                    "text" => (loss_of(&img, &plus, &ls), loss_of(&img, &minus, &ls)),
                    _ => (loss_of(&img, &txt, &plus), loss_of(&img, &txt, &minus)),
                };
                let numeric = (lp - lm) / (2.0 * h);
                assert!(
                    (numeric - analytic[k]).abs() < 1e-7 * (1.0 + numeric.abs()),
                    "{name}[{k}]: finite difference {numeric} vs backward {}",
                    analytic[k]
                );
            }
        }
    }

    #[test]
    fn accuracy_counts_both_directions() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[2f32, 1.0], [3.0, 0.0]], &dev).unwrap();
        // Rows: 0 -> 0 ok, 1 -> 0 wrong. Columns: 0 -> 1 wrong, 1 -> 0 wrong.
        assert_eq!(in_batch_accuracy(&logits).unwrap(), 0.25);
    }
}
