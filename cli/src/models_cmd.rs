//! `clipsearch models`: the checkpoints this build loads, to choose from. Each row is a
//! published Hugging Face checkpoint of a family `--model` implements, with its input size,
//! embedding width, languages and the image tower's arithmetic per image, computed from its
//! dimensions (multiply-accumulates, as CLIP's paper counts "GFLOPs"), which orders speed on any
//! CPU: `cargo bench --bench families`
//! measures images/s on yours.

use anyhow::Result;
use clap::Args;

/// Arguments of `clipsearch models`.
#[derive(Args)]
pub struct ModelsArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// A known checkpoint: its hub id and the dimensions of its image tower (from its config.json).
struct Known {
    id: &'static str,
    family: &'static str,
    image_size: usize,
    patch: usize,
    width: usize,
    layers: usize,
    mlp: usize,
    dim: usize,
    languages: &'static str,
    /// Weights on disk, f32 safetensors as published (MB).
    size_mb: usize,
    note: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        id: "openai/clip-vit-base-patch32",
        family: "clip",
        image_size: 224,
        patch: 32,
        width: 768,
        layers: 12,
        mlp: 3072,
        dim: 512,
        languages: "English",
        size_mb: 605,
        note: "the default: fastest, ImageNet zero-shot 63%",
    },
    Known {
        id: "openai/clip-vit-base-patch16",
        family: "clip",
        image_size: 224,
        patch: 16,
        width: 768,
        layers: 12,
        mlp: 3072,
        dim: 512,
        languages: "English",
        size_mb: 599,
        note: "68%",
    },
    Known {
        id: "openai/clip-vit-large-patch14",
        family: "clip",
        image_size: 224,
        patch: 14,
        width: 1024,
        layers: 24,
        mlp: 4096,
        dim: 768,
        languages: "English",
        size_mb: 1710,
        note: "75%",
    },
    Known {
        id: "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        family: "clip",
        image_size: 224,
        patch: 32,
        width: 768,
        layers: 12,
        mlp: 3072,
        dim: 512,
        languages: "English",
        size_mb: 605,
        note: "OpenCLIP on LAION-2B (GELU): 66%",
    },
    Known {
        id: "laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K",
        family: "clip",
        image_size: 256,
        patch: 32,
        width: 768,
        layers: 12,
        mlp: 3072,
        dim: 512,
        languages: "English",
        size_mb: 605,
        note: "OpenCLIP on DataComp (rclip's default): 73%, OpenCLIP's layout",
    },
    Known {
        id: "laion/CLIP-ViT-L-14-laion2B-s32B-b82K",
        family: "clip",
        image_size: 224,
        patch: 14,
        width: 1024,
        layers: 24,
        mlp: 4096,
        dim: 768,
        languages: "English",
        size_mb: 1710,
        note: "OpenCLIP on LAION-2B: 75%",
    },
    Known {
        id: "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k",
        family: "clip",
        image_size: 224,
        patch: 32,
        width: 768,
        layers: 12,
        mlp: 3072,
        dim: 512,
        languages: "multilingual",
        size_mb: 1470,
        note: "XLM-RoBERTa text tower (about 100 languages), ViT-B/32 images: 62%",
    },
    Known {
        id: "apple/MobileCLIP-S1-OpenCLIP",
        family: "clip",
        image_size: 256,
        patch: 0,
        width: 0,
        layers: 0,
        mlp: 0,
        dim: 512,
        languages: "English",
        size_mb: 340,
        note: "FastViT MCi1: 73%; exact but slow on CPUs here (candle's depthwise convolutions)",
    },
    Known {
        id: "apple/MobileCLIP-S2-OpenCLIP",
        family: "clip",
        image_size: 256,
        patch: 0,
        width: 0,
        layers: 0,
        mlp: 0,
        dim: 512,
        languages: "English",
        size_mb: 400,
        note: "FastViT MCi2: 74%",
    },
    Known {
        id: "google/siglip2-base-patch16-224",
        family: "siglip",
        image_size: 224,
        patch: 16,
        width: 768,
        layers: 12,
        mlp: 3072,
        dim: 768,
        languages: "multilingual",
        size_mb: 1500,
        note: "recommended for quality: about 78%, queries in many languages",
    },
    Known {
        id: "google/siglip2-base-patch16-384",
        family: "siglip",
        image_size: 384,
        patch: 16,
        width: 768,
        layers: 12,
        mlp: 3072,
        dim: 768,
        languages: "multilingual",
        size_mb: 1500,
        note: "finer detail, about 3x the compute of 224",
    },
    Known {
        id: "google/siglip2-so400m-patch14-224",
        family: "siglip",
        image_size: 224,
        patch: 14,
        width: 1152,
        layers: 27,
        mlp: 4304,
        dim: 1152,
        languages: "multilingual",
        size_mb: 4540,
        note: "the largest fixed-resolution SigLIP 2 at 224",
    },
];

impl Known {
    /// Billions of multiply-accumulates per image in a ViT image tower: patch embedding, and per
    /// layer the four attention projections, the MLP and the two attention products (none for
    /// the convolutional FastViT towers: README.md has their measured speed).
    fn gmac(&self) -> Option<f64> {
        (self.patch > 0).then(|| self.vit_gmac())
    }

    fn vit_gmac(&self) -> f64 {
        let tokens = (self.image_size / self.patch).pow(2) as f64
            + if self.family == "clip" { 1.0 } else { 0.0 };
        let (h, m) = (self.width as f64, self.mlp as f64);
        let per_layer = tokens * (4.0 * h * h + 2.0 * h * m) + 2.0 * tokens * tokens * h;
        let embed = tokens * h * (3 * self.patch * self.patch) as f64;
        (self.layers as f64 * per_layer + embed) / 1e9
    }
}

pub fn run(args: ModelsArgs) -> Result<i32> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if args.json {
        for k in KNOWN {
            let line = serde_json::json!({
                "id": k.id,
                "family": k.family,
                "image_size": k.image_size,
                "dim": k.dim,
                "languages": k.languages,
                "size_mb": k.size_mb,
                "image_gmac": k.gmac().map(|g| (g * 10.0).round() / 10.0),
                "note": k.note,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(0);
    }
    writeln!(
        out,
        "{:<36} {:<7} {:>5} {:>5} {:<13} {:>7} {:>9}  note",
        "model (--model)", "family", "px", "dim", "languages", "~MB", "GMAC/img"
    )?;
    for k in KNOWN {
        writeln!(
            out,
            "{:<36} {:<7} {:>5} {:>5} {:<13} {:>7} {:>9}  {}",
            k.id,
            k.family,
            k.image_size,
            k.dim,
            k.languages,
            k.size_mb,
            k.gmac().map_or("-".into(), |g| format!("{g:.1}")),
            k.note
        )?;
    }
    writeln!(
        out,
        "\nAny checkpoint of these families loads, by hub id or local directory: transformers' \
         layout (config.json, model.safetensors, tokenizer.json) or OpenCLIP's \
         (open_clip_config.json, open_clip_model.safetensors). GMAC/img orders speed on any \
         CPU; README.md has images/s measured side by side. ImageNet zero-shot accuracies are \
         the publishers' figures."
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_per_image_follows_the_published_figures() {
        // ViT-B/32 at 224 is 4.4 "GFLOPs" (multiply-accumulates) per image in CLIP's paper.
        let b32 = KNOWN
            .iter()
            .find(|k| k.id.ends_with("base-patch32"))
            .unwrap();
        assert!((b32.vit_gmac() - 4.4).abs() < 0.2, "{}", b32.vit_gmac());
        let b16 = KNOWN
            .iter()
            .find(|k| k.id.ends_with("clip-vit-base-patch16"))
            .unwrap();
        assert!((b16.vit_gmac() - 17.5).abs() < 0.5, "{}", b16.vit_gmac());
    }
}
