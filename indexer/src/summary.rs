//! [`Summary`]: what a run did, with its [`Failure`]s, warnings and [`Timings`].
//!
//! A leaf: it names no other module of the crate, so the crate root, which fills in the
//! summary, and the modules that report into it ([`crate::pipeline`], the metadata upgrade)
//! can all take these records from here without using one another in a circle.

use std::path::PathBuf;

use serde::Serialize;

/// A file that could not be indexed.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub path: PathBuf,
    pub reason: String,
}

/// Where a run's time went. The stages overlap: decoding runs while the model does.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Reading, hashing, decoding and preprocessing, summed over the decoding threads.
    pub decode_cpu_seconds: f64,
    /// Loading the model and running it (wall time of the model thread).
    pub model_seconds: f64,
    /// Committing batches to the index (wall time).
    pub store_seconds: f64,
    /// Publishing views for readers, during the run and at its end.
    pub publish_seconds: f64,
    /// Views published.
    pub publications: usize,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Files added or updated (embedded, or sharing an already stored embedding).
    pub indexed: usize,
    /// Files already indexed with the same size and modification time.
    pub unchanged: usize,
    /// Files found under a new path whose content was indexed under a path now gone.
    pub moved: usize,
    /// Files gone from disk and dropped from the index.
    pub removed: usize,
    /// Files that could not be indexed (including unchanged ones that failed before).
    pub failed: usize,
    /// Indexed files whose metadata was read in this run without decoding them (an index
    /// built before metadata was recorded).
    pub metadata_read: usize,
    /// Images that went through the model in this run.
    pub embedded: usize,
    pub seconds: f64,
    /// The run was stopped (Ctrl-C) after committing its last batch.
    pub interrupted: bool,
    pub failures: Vec<Failure>,
    /// Files indexed, but whose metadata is damaged (what could be read is kept).
    pub warnings: Vec<Failure>,
    pub timings: Timings,
}
