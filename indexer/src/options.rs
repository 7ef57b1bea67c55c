//! [`Options`]: how a run behaves.
//!
//! A leaf: it names no other module of the crate, so the crate root and the modules that do
//! the run's work ([`crate::pipeline`], the metadata upgrade) can all take the options from here
//! without using one another in a circle.

use std::path::PathBuf;
use std::time::Duration;

/// How a run behaves.
#[derive(Clone, Debug)]
pub struct Options {
    pub roots: Vec<PathBuf>,
    /// Descend into hidden directories and index hidden files.
    pub hidden: bool,
    /// Images per model call.
    pub batch_size: usize,
    /// Threads that decode and preprocess while the model runs.
    pub decode_threads: usize,
    /// During a run, publish a view for readers at most this long after the last (see
    /// [`crate::publisher`]).
    pub publish_interval: Duration,
}

impl Options {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Options {
            roots,
            hidden: false,
            // Measured on 69 real photos (median 4 MP), ViT-B/32, 2 cores: batch 8 with one
            // decoding thread per core ran at 6.4 images/s, against 5.1-6.1 for batch 16-32 or
            // a single decoding thread (`cargo bench -p clipsearch-cli --bench indexing`).
            batch_size: 8,
            decode_threads: cores.max(1),
            publish_interval: Duration::from_secs(30),
        }
    }
}
