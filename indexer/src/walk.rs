//! Finding the images under the roots a user gave.
//!
//! Images are recognised by content (magic bytes), not by name; a file whose name says image but
//! whose content does not is reported as bad, and other files are ignored silently (a photo
//! folder holds videos, sidecars and notes too). Symbolic links are followed, with walkdir's loop
//! detection; unreadable directories and loops are reported, never fatal. Hidden files and
//! directories are skipped unless asked for.

use std::io::Read;
use std::path::{Path, PathBuf};

use clipsearch::preprocess::formats;

/// A file the walk found.
#[derive(Clone, Debug)]
pub struct Found {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// Already catalogued with this size and mtime (the caller's `known` said so).
    pub unchanged: bool,
}

/// What the walk saw.
#[derive(Default, Debug)]
pub struct Walk {
    /// Files whose content is a supported image (or whose name claims one: decoding will judge).
    pub images: Vec<Found>,
    /// Files or directories that could not be read, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

pub use clipsearch::store::mtime_ns;

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn claims_image(path: &Path) -> bool {
    formats::has_image_extension(path)
}

/// Whether the first bytes are those of a supported image format.
pub fn sniff(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    // Formats this build cannot decode count too: the run reports them with what would read
    // them, rather than skipping them in silence.
    Ok(formats::sniff(&head[..n], path).is_some())
}

/// Walks `roots`. `known` says whether a path is already catalogued with this size and mtime:
/// such files skip the content sniff, so an unchanged collection costs one stat per file.
pub fn walk(roots: &[PathBuf], hidden: bool, known: &dyn Fn(&Found) -> bool) -> Walk {
    let mut out = Walk::default();
    for root in roots {
        let it = walkdir::WalkDir::new(root)
            .follow_links(true)
            .into_iter()
            .filter_entry(|e| hidden || e.depth() == 0 || !is_hidden(e.file_name()));
        for entry in it {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    let reason = if e.loop_ancestor().is_some() {
                        "symbolic link loop (skipped)".to_string()
                    } else {
                        e.io_error()
                            .map(|io| io.to_string())
                            .unwrap_or_else(|| e.to_string())
                    };
                    out.errors.push((path, reason));
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    out.errors.push((entry.path().to_path_buf(), e.to_string()));
                    continue;
                }
            };
            let mut found = Found {
                path: entry.path().to_path_buf(),
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
                unchanged: false,
            };
            if known(&found) {
                found.unchanged = true;
                out.images.push(found);
                continue;
            }
            match sniff(&found.path) {
                Ok(true) => out.images.push(found),
                // Named like an image but is not one: decoding will report it as bad.
                Ok(false) if claims_image(&found.path) => out.images.push(found),
                Ok(false) => {}
                Err(e) => out.errors.push((found.path, format!("cannot read: {e}"))),
            }
        }
    }
    out
}
