//! Training: the trainable model against the reference and the inference path, gradients
//! reaching every parameter, the loss falling, checkpoints that reload, and exact resumption.
//!
//! Tolerances: features of the trainable forward pass vs the Python reference <= 1e-4 (as the
//! parity tests), vs the engine's inference path <= 2e-5 (same arithmetic, other kernels:
//! fused vs composed layer norm and softmax).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use clipsearch::model::{ClipConfig, ClipModel, ModelFiles, Towers};
use clipsearch::preprocess::PreprocessConfig;
use clipsearch_train::data::{read_pairs, Dataset};
use clipsearch_train::loss::{contrastive_loss, l2_normalize};
use clipsearch_train::model::TrainableClip;
use clipsearch_train::trainer::{saved_parameters, train, Run, TrainOptions};
use clipsearch_train::world::{generate, Split};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn tiny() -> ModelFiles {
    ModelFiles::local(&fixtures().join("tiny-clip")).unwrap()
}

/// The suites' one comparison (NaN, infinities and length mismatches fail).
fn max_abs(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    common::max_abs_rows(a, b)
}

#[test]
fn trainable_forward_matches_reference_and_inference() {
    let dev = Device::Cpu;
    let reference = candle_core::safetensors::load(
        fixtures().join("reference/tiny_clip_reference.safetensors"),
        &dev,
    )
    .unwrap();
    let r = |k: &str| reference.get(k).unwrap().to_dtype(DType::F32).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/tiny_clip_reference.json")).unwrap(),
    )
    .unwrap();
    let model = TrainableClip::load(&tiny(), &dev).unwrap();
    let inference = ClipModel::load(&tiny(), Towers::Both).unwrap();

    // Text: the reference's padded ids, read at each text's end token.
    let ids = r("input_ids").to_dtype(DType::U32).unwrap();
    let unpadded: Vec<Vec<u32>> = serde_json::from_value(json["tokens_unpadded"].clone()).unwrap();
    let ends: Vec<usize> = unpadded.iter().map(|t| t.len() - 1).collect();
    let text = model.text_features(&ids, &ends).unwrap();
    let text_rows = text.to_vec2::<f32>().unwrap();
    let want = r("text_features_raw").to_vec2::<f32>().unwrap();
    assert!(
        max_abs(&text_rows, &want) <= 1e-4,
        "{}",
        max_abs(&text_rows, &want)
    );
    let engine = inference
        .text()
        .unwrap()
        .features_from_ids(&unpadded)
        .unwrap();
    assert!(
        max_abs(&text_rows, &engine) <= 2e-5,
        "{}",
        max_abs(&text_rows, &engine)
    );

    let pixels = r("pixel_values");
    let image = model.image_features(&pixels).unwrap();
    let image_rows = image.to_vec2::<f32>().unwrap();
    let want = r("image_features_raw").to_vec2::<f32>().unwrap();
    assert!(
        max_abs(&image_rows, &want) <= 1e-4,
        "{}",
        max_abs(&image_rows, &want)
    );
    let flat: Vec<f32> = pixels.flatten_all().unwrap().to_vec1().unwrap();
    let engine = inference
        .image()
        .unwrap()
        .features_from_pixels(&flat)
        .unwrap();
    assert!(
        max_abs(&image_rows, &engine) <= 2e-5,
        "{}",
        max_abs(&image_rows, &engine)
    );

    // The similarity the loss is built on equals the reference's logits_per_image.
    let scale = model.logit_scale().exp().unwrap();
    let logits = l2_normalize(&image)
        .unwrap()
        .matmul(&l2_normalize(&text).unwrap().t().unwrap())
        .unwrap()
        .broadcast_mul(&scale)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let want = r("logits_per_image").to_vec2::<f32>().unwrap();
    assert!(
        max_abs(&logits, &want) <= 1e-3,
        "{}",
        max_abs(&logits, &want)
    );
}

fn small_config() -> ClipConfig {
    let mut c = ClipConfig::from_file(&tiny().config()).unwrap();
    c.text.max_position_embeddings = 32;
    c.vision.image_size = 32;
    c.vision.patch_size = 8;
    c
}

#[test]
fn every_parameter_receives_a_gradient() {
    let dev = Device::Cpu;
    let model = TrainableClip::init(&small_config(), 3, &dev).unwrap();
    let pixels = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &dev).unwrap();
    let ids = Tensor::new(
        &[
            [49406u32, 320, 1125, 49407],
            [49406, 320, 2368, 49407],
            [49406, 1929, 49407, 49407],
            [49406, 320, 49407, 49407],
        ],
        &dev,
    )
    .unwrap();
    let images = model.image_features(&pixels).unwrap();
    let texts = model.text_features(&ids, &[3, 3, 2, 2]).unwrap();
    let out = contrastive_loss(&images, &texts, model.logit_scale()).unwrap();
    let grads = out.loss.backward().unwrap();
    let mut missing = Vec::new();
    let mut count = 0;
    for (name, var) in model.vars() {
        count += 1;
        let ok = grads.get(var).is_some_and(|g| {
            g.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        });
        if !ok {
            missing.push(name.to_string());
        }
    }
    // 2 layers per tower x 16 tensors + embeddings, norms, projections and the temperature.
    assert_eq!(count, 2 * 2 * 16 + 14, "parameter count");
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: Dataset,
    run: Run,
    out: PathBuf,
}

fn fixture(seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    generate(&dir.path().join("world"), 48, 11, Split::Train, 32).unwrap();
    let config = small_config();
    let run = Run {
        model: TrainableClip::init(&config, seed, &Device::Cpu).unwrap(),
        tokenizer_path: tiny().tokenizer(),
        preprocess: PreprocessConfig::clip_default(32),
    };
    let pairs = read_pairs(&dir.path().join("world")).unwrap();
    assert_eq!(pairs.len(), 48);
    let data = Dataset::load(&pairs, &run.preprocessor(), &run.tokenizer().unwrap()).unwrap();
    let out = dir.path().join("model");
    Fixture {
        _dir: dir,
        data,
        run,
        out,
    }
}

fn options(out: &Path, steps: usize) -> TrainOptions {
    TrainOptions {
        out: out.to_path_buf(),
        steps,
        batch_size: 16,
        warmup: 3,
        optimizer: clipsearch_train::optim::AdamWConfig {
            lr: 2e-3,
            ..Default::default()
        },
        clip_grad_norm: 1.0,
        seed: 5,
        checkpoint_every: 0,
        save_dtype: DType::F32,
    }
}

#[test]
fn loss_falls_and_the_checkpoint_reloads_in_the_engine() {
    let f = fixture(1);
    let mut losses = Vec::new();
    let stop = AtomicBool::new(false);
    let summary = train(
        &f.run,
        &f.data,
        &options(&f.out, 40),
        false,
        &stop,
        &mut |r| losses.push(r.loss),
    )
    .unwrap();
    assert_eq!(summary.steps_done, 40);
    let early: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let late: f32 = losses[35..].iter().sum::<f32>() / 5.0;
    // ln(16) = 2.77 is chance for a batch of 16.
    assert!(early > 2.3, "{losses:?}");
    assert!(late < 0.75 * early, "loss did not fall: {losses:?}");

    // The saved directory is an ordinary checkpoint: the engine gives the same embeddings.
    let files = ModelFiles::local(&f.out).unwrap();
    let engine = ClipModel::load(&files, Towers::Both).unwrap();
    let image = f.data.crop(0);
    let pixels = f.run.preprocessor().normalise(image);
    let trained = f
        .run
        .model
        .image_features(&Tensor::from_vec(pixels.clone(), (1, 3, 32, 32), &Device::Cpu).unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let loaded = engine
        .image()
        .unwrap()
        .features_from_pixels(&pixels)
        .unwrap();
    assert!(
        max_abs(&trained, &loaded) <= 2e-5,
        "{}",
        max_abs(&trained, &loaded)
    );
    let ids = f.data.captions[0][0].clone();
    let ends = [ids.len() - 1];
    let trained = f
        .run
        .model
        .text_features(
            &Tensor::new(ids.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap(),
            &ends,
        )
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let loaded = engine.text().unwrap().features_from_ids(&[ids]).unwrap();
    assert!(
        max_abs(&trained, &loaded) <= 2e-5,
        "{}",
        max_abs(&trained, &loaded)
    );
    assert!(
        (engine.logit_scale_raw() - f.run.model.logit_scale().to_vec1::<f32>().unwrap()[0]).abs()
            < 1e-6
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let straight = fixture(2);
    let stop = AtomicBool::new(false);
    train(
        &straight.run,
        &straight.data,
        &options(&straight.out, 6),
        false,
        &stop,
        &mut |_| {},
    )
    .unwrap();

    let broken = fixture(2);
    let stop = AtomicBool::new(false);
    let summary = train(
        &broken.run,
        &broken.data,
        &options(&broken.out, 6),
        false,
        &stop,
        &mut |r| {
            if r.step == 3 {
                stop.store(true, std::sync::atomic::Ordering::Relaxed)
            }
        },
    )
    .unwrap();
    assert!(summary.interrupted);
    assert_eq!(summary.steps_done, 3);
    // A new process would load the saved weights: do the same from the files.
    let files = ModelFiles::local(&broken.out).unwrap();
    let resumed = Run {
        model: TrainableClip::load(&files, &Device::Cpu).unwrap(),
        tokenizer_path: files.tokenizer(),
        preprocess: PreprocessConfig::clip_default(32),
    };
    resumed
        .model
        .set(&saved_parameters(&broken.out, &Device::Cpu).unwrap())
        .unwrap();
    let stop = AtomicBool::new(false);
    let summary = train(
        &resumed,
        &broken.data,
        &options(&broken.out, 6),
        true,
        &stop,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.steps_done, 6);
    for ((name, a), (_, b)) in straight.run.model.vars().zip(resumed.model.vars()) {
        let d = (a.as_tensor() - b.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 1e-6, "{name} differs by {d} after resuming");
    }
}
