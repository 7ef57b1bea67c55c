//! What the parity suites share: a reference library's outputs for one fixture
//! (`tests/fixtures/reference/tiny_NAME_reference.{safetensors,json}`) and the comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub struct Reference {
    pub tensors: HashMap<String, Tensor>,
    pub json: serde_json::Value,
}

impl Reference {
    /// The reference outputs of fixture `name` (`clip`, `siglip`, `openclip`, ...).
    pub fn load(name: &str) -> Self {
        let dir = fixtures().join("reference");
        let stem = format!("tiny_{name}_reference");
        let tensors =
            candle_core::safetensors::load(dir.join(format!("{stem}.safetensors")), &Device::Cpu)
                .unwrap();
        let json = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        Reference { tensors, json }
    }

    pub fn t(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("reference has no {key}"))
    }

    pub fn rows(&self, key: &str) -> Vec<Vec<f32>> {
        self.t(key).to_dtype(DType::F32).unwrap().to_vec2().unwrap()
    }

    /// A list of strings in the JSON (`texts`, `images`).
    pub fn strings(&self, key: &str) -> Vec<String> {
        serde_json::from_value(self.json[key].clone()).unwrap()
    }

    /// Row `i` of `[N,3,H,W]` pixels as a flat CHW vector.
    pub fn pixels(&self, key: &str, i: usize) -> Vec<f32> {
        self.t(key)
            .i(i)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// All of `[N,3,H,W]` pixels, laid end to end.
    pub fn all_pixels(&self, key: &str) -> Vec<f32> {
        self.t(key).flatten_all().unwrap().to_vec1().unwrap()
    }
}

/// Both towers of the fixture checkpoint `tests/fixtures/NAME`.
pub fn model(name: &str) -> clipsearch::model::ClipModel {
    use clipsearch::model::{ClipModel, ModelFiles, Towers};
    let files = ModelFiles::local(&fixtures().join(name)).unwrap();
    ClipModel::load(&files, Towers::Both).unwrap()
}

/// Asserts that each of `ours` is within `tol` (max abs) of the same row of `want`, printing
/// each row's deviation (`--nocapture`); `names[i]`, when given, is named in a failure.
pub fn assert_rows_within(
    what: &str,
    ours: &[Vec<f32>],
    want: &[Vec<f32>],
    tol: f32,
    names: &[String],
) {
    assert_eq!(ours.len(), want.len(), "{what}: row count");
    for (i, (o, w)) in ours.iter().zip(want).enumerate() {
        let d = max_abs(o, w);
        eprintln!("{what} {i}: max abs {d:e}");
        let name = names
            .get(i)
            .map(|n| format!(" ({n:?})"))
            .unwrap_or_default();
        assert!(d <= tol, "{what} {i}{name}: max abs {d}");
    }
}

/// The largest absolute difference of two equally long, non-empty vectors; NaN if either holds
/// a NaN or an infinity, so that `max_abs(..) <= tol` fails for them (`f32::max` would drop a
/// NaN and let an all-NaN output measure 0). Every comparison of the suites goes through it.
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    assert!(!a.is_empty(), "nothing to compare");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs()
            } else {
                f32::NAN
            }
        })
        .fold(0.0, |m, d| {
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        })
}

/// [`max_abs`] over rows: as many rows on both sides, each as long as its partner.
pub fn max_abs_rows(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row count mismatch");
    assert!(!a.is_empty(), "no rows to compare");
    a.iter()
        .zip(b)
        .map(|(x, y)| max_abs(x, y))
        .fold(0.0, |m, d| {
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        })
}

#[test]
fn comparisons_fail_on_nan_infinity_and_nothing() {
    assert_eq!(max_abs(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
    assert!(max_abs(&[f32::NAN, 2.0], &[1.0, 2.0]).is_nan());
    assert!(max_abs(&[1.0, 2.0], &[1.0, f32::NAN]).is_nan());
    assert!(max_abs(&[f32::INFINITY], &[f32::INFINITY]).is_nan());
    let all_nan = max_abs(&[f32::NAN; 4], &[0.0; 4]);
    assert!(
        all_nan.partial_cmp(&1.0).is_none(),
        "an all-NaN output must fail `<= tol`: {all_nan}"
    );
    assert!(std::panic::catch_unwind(|| max_abs(&[1.0], &[1.0, 2.0])).is_err());
    assert!(std::panic::catch_unwind(|| max_abs(&[], &[])).is_err());
    assert!(max_abs_rows(&[vec![1.0], vec![f32::NAN]], &[vec![1.0], vec![1.0]]).is_nan());
    assert!(std::panic::catch_unwind(|| max_abs_rows(&[vec![1.0]], &[])).is_err());
}
