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
    /// The camera RAW of the same shot beside this file (see [`pair_raws`]).
    pub raw: Option<PathBuf>,
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

/// Extensions of the rendered images a camera (or a RAW workflow) writes beside a RAW, best
/// first: the one indexed for the shot.
const RENDERED: &[&str] = &[
    "jpg", "jpeg", "heic", "heif", "hif", "avif", "jxl", "tif", "tiff", "png", "webp",
];

/// One photo, one entry: a camera RAW with a rendered image of the same name in the same folder
/// (`IMG_0042.CR3` and `IMG_0042.JPG`) is the same shot. The rendered image is indexed (it is
/// what the photographer saw, and decodes fastest) and remembers the RAW, which leaves the list.
/// A RAW alone is indexed through its own preview.
pub fn pair_raws(images: &mut Vec<Found>) {
    use std::collections::HashMap;
    let key = |p: &Path| {
        let stem = p.file_stem()?.to_string_lossy().to_lowercase();
        Some((p.parent()?.to_path_buf(), stem))
    };
    let ext = |p: &Path| {
        p.extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let mut rendered: HashMap<(PathBuf, String), usize> = HashMap::new();
    for (i, f) in images.iter().enumerate() {
        let Some(rank) = RENDERED.iter().position(|e| *e == ext(&f.path)) else {
            continue;
        };
        if let Some(k) = key(&f.path) {
            let better = rendered.get(&k).is_none_or(|&j| {
                rank < RENDERED
                    .iter()
                    .position(|e| *e == ext(&images[j].path))
                    .unwrap_or(usize::MAX)
            });
            if better {
                rendered.insert(k, i);
            }
        }
    }
    let mut drop = vec![false; images.len()];
    let mut companions = Vec::new();
    for (i, f) in images.iter().enumerate() {
        if !formats::is_raw_name(&f.path) {
            continue;
        }
        if let Some(&j) = key(&f.path).and_then(|k| rendered.get(&k)) {
            drop[i] = true;
            companions.push((j, f.path.clone()));
        }
    }
    for (j, raw) in companions {
        // Several RAWs of one shot (rare): the first in path order is named.
        if images[j].raw.as_ref().is_none_or(|r| raw < *r) {
            images[j].raw = Some(raw);
        }
    }
    let mut i = 0;
    images.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
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
                raw: None,
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
    pair_raws(&mut out.images);
    out
}
