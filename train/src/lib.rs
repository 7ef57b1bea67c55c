//! # clipsearch-train: contrastive training of CLIP
//!
//! The paper's method as a library: [`model::TrainableClip`] is CLIP spelled out in
//! differentiable candle operations under Hugging Face's parameter names, so whatever it learns
//! saves as an ordinary checkpoint the engine loads; [`loss`] is the symmetric contrastive
//! objective over a batch's N x N similarity matrix; [`optim`] is AdamW with CLIP's parameter
//! groups, warm-up + cosine schedule and gradient clipping; [`trainer`] runs the loop with
//! deterministic batches, checkpoints and `--resume`; [`data`] reads image-caption pairs;
//! [`world`] generates the synthetic captioned world of shapes the bundled demo model learns.
//!
//! ```no_run
//! use clipsearch_train::{data, model::TrainableClip, trainer};
//! let files = clipsearch::model::resolve("openai/clip-vit-base-patch32")?;
//! let run = trainer::Run {
//!     model: TrainableClip::load(&files, &candle_core::Device::Cpu)?,
//!     tokenizer_path: files.tokenizer(),
//!     preprocess: clipsearch::preprocess::PreprocessConfig::clip_default(224),
//! };
//! let pairs = data::read_pairs("captioned-photos/".as_ref())?;
//! let set = data::Dataset::load(&pairs, &run.preprocessor(), &run.tokenizer()?)?;
//! let opts = trainer::TrainOptions {
//!     out: "fine-tuned/".into(), steps: 1000, batch_size: 64, warmup: 100,
//!     optimizer: Default::default(), clip_grad_norm: 1.0, seed: 0, checkpoint_every: 200,
//!     save_dtype: candle_core::DType::F32,
//! };
//! let stop = std::sync::atomic::AtomicBool::new(false);
//! trainer::train(&run, &set, &opts, false, &stop, &mut |r| println!("{} {}", r.step, r.loss))?;
//! # Ok::<(), clipsearch_train::Error>(())
//! ```

pub mod data;
pub mod loss;
pub mod model;
pub mod optim;
pub mod trainer;
pub mod world;

use std::path::PathBuf;

/// Errors of training: the engine's, and bad training data or state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] clipsearch::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Data(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Engine(clipsearch::Error::Candle(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
