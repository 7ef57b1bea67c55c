//! Zero-shot classification (Radford et al., 2021, section 3.1.4): each label becomes a text
//! classifier by embedding it in prompt templates ("a photo of a {}.") whose normalised
//! embeddings are averaged and renormalised (prompt ensembling); an image's probabilities come
//! from its cosine similarities to the labels as the model's family scores them
//! ([`LabelScoring`]): CLIP's softmax at the model's temperature, SigLIP's sigmoid per label
//! with its learned bias.

use clipsearch::embedding::{dot, normalize};
use clipsearch::model::{ClipModel, LabelScoring, ModelFiles};
use serde::Serialize;

use crate::error::Error;

/// The seven templates CLIP's authors found best on ImageNet (their prompt-engineering
/// notebook), used when neither the user nor the model names others.
pub const CLIP_TEMPLATES: &[&str] = &[
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
];

/// The templates a checkpoint recommends in `clipsearch.json` (`"prompt_templates"`), e.g. the
/// demo model's, which knows captions of shapes rather than photographs.
pub fn model_templates(files: &ModelFiles) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(files.dir.join("clipsearch.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let list: Vec<String> = json["prompt_templates"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    (!list.is_empty()).then_some(list)
}

/// The prompt for `label`: `{}` replaced (with "a" made "an" before a vowel), or the label
/// appended to a template without `{}`.
fn fill(template: &str, label: &str) -> String {
    if !template.contains("{}") {
        return format!("{template} {label}");
    }
    let vowel = label.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']);
    let t = if vowel {
        let t = template.replace(" a {}", " an {}");
        match t.strip_prefix("a {}") {
            Some(rest) => format!("an {{}}{rest}"),
            None => t,
        }
    } else {
        template.to_string()
    };
    t.replace("{}", label)
}

/// A label with its probability.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Scored {
    pub label: String,
    pub prob: f32,
}

/// Text classifiers for a set of labels.
pub struct Classifier {
    labels: Vec<String>,
    weights: Vec<Vec<f32>>,
    scoring: LabelScoring,
}

impl Classifier {
    /// Embeds every label in every template (`{}` marks the label; a template without one gets
    /// the label appended).
    pub fn new(model: &ClipModel, labels: &[String], templates: &[String]) -> Result<Self, Error> {
        if labels.is_empty() {
            return Err(Error::Parse(crate::expr::ParseError::Empty));
        }
        let text = model.text()?;
        let mut weights = Vec::with_capacity(labels.len());
        for label in labels {
            let prompts: Vec<String> = templates.iter().map(|t| fill(t, label)).collect();
            let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let embedded = text.embed(&refs)?;
            let mut mean = vec![0f32; model.dim()];
            for e in &embedded {
                mean.iter_mut().zip(e).for_each(|(m, x)| *m += x);
            }
            normalize(&mut mean);
            weights.push(mean);
        }
        Ok(Classifier {
            labels: labels.to_vec(),
            weights,
            scoring: model.scoring(),
        })
    }

    /// All labels for a normalised image embedding, most probable first.
    pub fn classify(&self, image: &[f32]) -> Vec<Scored> {
        let cosines: Vec<f32> = self.weights.iter().map(|w| dot(w, image)).collect();
        let mut out: Vec<Scored> = self
            .labels
            .iter()
            .zip(self.scoring.probabilities(&cosines))
            .map(|(label, prob)| Scored {
                label: label.clone(),
                prob,
            })
            .collect();
        out.sort_by(|a, b| b.prob.total_cmp(&a.prob));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_label_with_its_article() {
        assert_eq!(fill("a photo of a {}.", "orange"), "a photo of an orange.");
        assert_eq!(fill("a {} shape", "orange"), "an orange shape");
        assert_eq!(fill("a {} shape", "red"), "a red shape");
        assert_eq!(fill("art of the {}.", "apple"), "art of the apple.");
        assert_eq!(fill("a photo of", "cat"), "a photo of cat");
    }

    #[test]
    fn softmax_at_the_temperature_orders_labels() {
        let c = Classifier {
            labels: vec!["a".into(), "b".into()],
            weights: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            scoring: LabelScoring {
                scale: 10.0,
                bias: 0.0,
                sigmoid: false,
            },
        };
        let out = c.classify(&[0.6, 0.8]);
        assert_eq!(out[0].label, "b");
        // softmax(6, 8) = (1 / (1 + e^2), e^2 / (1 + e^2))
        let want = 1.0 / (1.0 + 2f32.exp());
        assert!((out[1].prob - want).abs() < 1e-6, "{out:?}");
        assert!((out[0].prob + out[1].prob - 1.0).abs() < 1e-6);
    }

    #[test]
    fn sigmoid_scores_each_label_alone_with_the_bias() {
        let c = Classifier {
            labels: vec!["a".into(), "b".into()],
            weights: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            scoring: LabelScoring {
                scale: 10.0,
                bias: -6.5,
                sigmoid: true,
            },
        };
        let out = c.classify(&[0.6, 0.8]);
        assert_eq!(out[0].label, "b");
        // sigmoid(10 * 0.8 - 6.5) and sigmoid(10 * 0.6 - 6.5): not a distribution.
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        assert!((out[0].prob - sig(1.5)).abs() < 1e-6, "{out:?}");
        assert!((out[1].prob - sig(-0.5)).abs() < 1e-6, "{out:?}");
        assert!((out[0].prob + out[1].prob - 1.0).abs() > 0.1, "{out:?}");
    }
}
