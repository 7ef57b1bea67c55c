//! What an index or collection holds (`clipsearch stats`), read without a model: the same
//! fields from every target, with what only a local index records beside them.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::info::Coverage;
use crate::local::open_view;

/// What an index or collection holds (`clipsearch stats`).
#[derive(Debug, Serialize)]
pub struct Stats {
    pub index: String,
    pub files: usize,
    /// None: an empty collection that no model claimed yet.
    pub model: Option<String>,
    pub dim: Option<usize>,
    /// What only a local index (or catalog) records; a shared collection's files come from
    /// every machine that pushes to it.
    #[serde(flatten)]
    pub local: Option<LocalStats>,
}

#[derive(Debug, Serialize)]
pub struct LocalStats {
    pub failed: usize,
    pub family: String,
    pub decode: String,
    pub precision: String,
    pub generation: u64,
    pub published_unix_ms: u64,
    /// "codes" (binary codes, candidates rescored) or "exact".
    pub search: &'static str,
    /// The published view's files on disk.
    pub bytes: u64,
    pub metadata: Coverage,
}

impl Stats {
    /// A local index's, from its published view.
    pub(crate) fn of_local(dir: &Path) -> Result<Stats, Error> {
        let index = open_view(dir)?;
        let view = index.view();
        let m = view.manifest();
        let bytes: u64 = m
            .files()
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|md| md.len())
            .sum();
        Ok(Stats {
            index: dir.to_string_lossy().into_owned(),
            files: view.len(),
            model: Some(m.model.name.clone()),
            dim: Some(m.dim),
            local: Some(LocalStats {
                failed: m.failed,
                family: m.model.family.clone(),
                decode: m.model.decode.clone(),
                precision: m.model.precision.clone(),
                generation: m.generation,
                published_unix_ms: m.published_unix_ms,
                search: if index.uses_codes(view.len()) {
                    "codes"
                } else {
                    "exact"
                },
                bytes,
                metadata: crate::info::coverage(view),
            }),
        })
    }

    /// The `clipsearch stats` text: a shared collection says what it records, a local index
    /// (or catalog) its failures, model, search and metadata too.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let s = self;
        writeln!(out, "index      {}", s.index)?;
        let Some(l) = &s.local else {
            // A shared collection records no more than this.
            writeln!(
                out,
                "files      {} (from every machine that pushes to it)",
                s.files
            )?;
            return match (&s.model, s.dim) {
                (Some(m), Some(dim)) => writeln!(out, "model      {m} ({dim} dimensions)"),
                _ => writeln!(out, "model      none yet: nothing was indexed into it"),
            };
        };
        writeln!(
            out,
            "files      {} ({} could not be indexed)",
            s.files, l.failed
        )?;
        writeln!(
            out,
            "model      {} ({}, {} dimensions, {} decoding, {} image tower)",
            s.model.as_deref().unwrap_or_default(),
            l.family,
            s.dim.unwrap_or_default(),
            l.decode,
            l.precision
        )?;
        let age_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d.as_millis() as u64).saturating_sub(l.published_unix_ms) / 1000)
            .unwrap_or(0);
        writeln!(
            out,
            "search     {} over {:.1} MB, published {age_s} s ago",
            if l.search == "codes" {
                "binary codes, best candidates rescored exactly,"
            } else {
                "exact scan"
            },
            l.bytes as f64 / 1e6
        )?;
        let c = &l.metadata;
        let span = match (&c.first_month, &c.last_month) {
            (Some(a), Some(b)) => format!(", {a} to {b}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "metadata   {} dated{span} ({} by the camera, {} by file date), {} placed, {} \
             with a camera",
            c.dated,
            c.dated_by_camera,
            c.dated - c.dated_by_camera,
            c.with_place,
            c.with_camera
        )?;
        if c.unread > 0 {
            writeln!(
                out,
                "           {} files without metadata yet (indexed by an older clipsearch): run \
                 `clipsearch index` on their folders to read it",
                c.unread
            )?;
        }
        Ok(())
    }
}
