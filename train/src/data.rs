//! Image-caption pairs for training: a folder where each image has a sidecar `.txt` (one
//! caption per line; one is drawn per step), or a JSON Lines / CSV manifest of
//! (path, caption). Images are decoded, resized and cropped once, in parallel, and held in
//! memory as bytes (3 x size x size per image); captions are tokenised once.

use std::path::{Path, PathBuf};

use clipsearch::preprocess::Preprocessor;
use clipsearch::tokenizer::ClipTokenizer;
use rayon::prelude::*;

use crate::{Error, Result};

/// One training example: an image and the captions that describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub image: PathBuf,
    pub captions: Vec<String>,
}

/// Reads the pairs of a folder (sidecar captions), a `.jsonl` or a `.csv` manifest. Paths in a
/// manifest are relative to the manifest's folder.
pub fn read_pairs(source: &Path) -> Result<Vec<Pair>> {
    let pairs = if source.is_dir() {
        from_folder(source)?
    } else {
        match source.extension().and_then(|e| e.to_str()) {
            Some("jsonl") | Some("json") => from_jsonl(source)?,
            Some("csv") => from_csv(source)?,
            _ => {
                return Err(Error::Data(format!(
                    "{}: expected a folder of images with .txt captions, a .jsonl or a .csv file",
                    source.display()
                )))
            }
        }
    };
    if pairs.is_empty() {
        return Err(Error::Data(format!(
            "{}: no image-caption pairs found (each image needs a caption: a sidecar .txt with the same name, or a manifest row)",
            source.display()
        )));
    }
    Ok(pairs)
}

fn split_captions(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn from_folder(dir: &Path) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    let mut uncaptioned = 0usize;
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| Error::Data(format!("{}: {e}", dir.display())))?;
        let path = entry.path();
        if !entry.file_type().is_file()
            || !clipsearch::preprocess::decode::has_image_extension(path)
        {
            continue;
        }
        let sidecar = path.with_extension("txt");
        match std::fs::read_to_string(&sidecar) {
            Ok(text) if !split_captions(&text).is_empty() => pairs.push(Pair {
                image: path.to_path_buf(),
                captions: split_captions(&text),
            }),
            Ok(_) => uncaptioned += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => uncaptioned += 1,
            Err(e) => return Err(Error::io(&sidecar, e)),
        }
    }
    if uncaptioned > 0 {
        tracing::warn!(
            "{uncaptioned} images under {} have no caption file and are not used",
            dir.display()
        );
    }
    Ok(pairs)
}

fn field<'a>(obj: &'a serde_json::Value, names: &[&str]) -> Option<&'a serde_json::Value> {
    names.iter().find_map(|n| obj.get(*n))
}

fn from_jsonl(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| Error::Data(format!("{}:{}: {why}", path.display(), n + 1));
        let obj: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let image = field(&obj, &["image", "path", "file"])
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("needs an \"image\" (or \"path\") string"))?;
        let captions = match field(&obj, &["caption", "text", "captions"]) {
            Some(serde_json::Value::String(s)) => split_captions(s),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str())
                .map(String::from)
                .collect(),
            _ => return Err(bad("needs a \"caption\" string or \"captions\" array")),
        };
        if captions.is_empty() {
            return Err(bad("empty caption"));
        }
        pairs.push(Pair {
            image: base.join(image),
            captions,
        });
    }
    Ok(pairs)
}

fn from_csv(path: &Path) -> Result<Vec<Pair>> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?
        .clone();
    let column = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
    let (Some(image_col), Some(caption_col)) = (
        column(&["image", "path", "file", "filepath"]),
        column(&["caption", "text", "title"]),
    ) else {
        return Err(Error::Data(format!(
            "{}: the header must name an image column (image, path, file or filepath) and a caption column (caption, text or title); found {:?}",
            path.display(),
            headers.iter().collect::<Vec<_>>()
        )));
    };
    let mut pairs = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
        let (Some(image), Some(caption)) = (record.get(image_col), record.get(caption_col)) else {
            return Err(Error::Data(format!(
                "{}: row {} is short",
                path.display(),
                n + 2
            )));
        };
        if caption.trim().is_empty() {
            continue;
        }
        pairs.push(Pair {
            image: base.join(image),
            captions: vec![caption.trim().to_string()],
        });
    }
    Ok(pairs)
}

/// Pairs ready for training: crops in memory, captions as token ids.
pub struct Dataset {
    /// Planar crops, `crop_len` bytes each.
    crops: Vec<u8>,
    crop_len: usize,
    /// Per image, the token ids of each of its captions.
    pub captions: Vec<Vec<Vec<u32>>>,
    /// Images that could not be used, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl Dataset {
    /// Decodes every image (in parallel) and tokenises every caption. Unreadable images are
    /// skipped and listed, as the indexer does; a set with no usable image is an error.
    pub fn load(pairs: &[Pair], pre: &Preprocessor, tokenizer: &ClipTokenizer) -> Result<Self> {
        let loaded: Vec<_> = pairs
            .par_iter()
            .map(|p| {
                pre.load_crop(&p.image)
                    .map_err(|e| (p.image.clone(), e.to_string()))
            })
            .collect();
        let crop_len = pre.len();
        let mut crops = Vec::with_capacity(pairs.len() * crop_len);
        let mut captions = Vec::with_capacity(pairs.len());
        let mut skipped = Vec::new();
        for (pair, crop) in pairs.iter().zip(loaded) {
            match crop {
                Ok(c) => {
                    crops.extend_from_slice(&c);
                    let ids = pair
                        .captions
                        .iter()
                        .map(|t| tokenizer.encode(t))
                        .collect::<clipsearch::Result<Vec<_>>>()?;
                    captions.push(ids);
                }
                Err(e) => skipped.push(e),
            }
        }
        if captions.is_empty() {
            return Err(Error::Data(format!(
                "none of the {} images could be read (first: {}: {})",
                pairs.len(),
                skipped[0].0.display(),
                skipped[0].1
            )));
        }
        Ok(Dataset {
            crops,
            crop_len,
            captions,
            skipped,
        })
    }

    pub fn len(&self) -> usize {
        self.captions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.captions.is_empty()
    }

    /// The planar crop of image `i`.
    pub fn crop(&self, i: usize) -> &[u8] {
        &self.crops[i * self.crop_len..(i + 1) * self.crop_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_sidecars_parse() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.png"), b"x").unwrap();
        std::fs::write(d.join("a.txt"), "a red circle\n\nred\n").unwrap();
        std::fs::write(d.join("b.png"), b"x").unwrap(); // no caption: not used
        let pairs = read_pairs(d).unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].captions, ["a red circle", "red"]);

        let jsonl = d.join("m.jsonl");
        std::fs::write(
            &jsonl,
            "{\"image\": \"a.png\", \"caption\": \"one\"}\n{\"path\": \"b.png\", \"captions\": [\"x\", \"y\"]}\n",
        )
        .unwrap();
        let pairs = read_pairs(&jsonl).unwrap();
        assert_eq!(pairs[1].image, d.join("b.png"));
        assert_eq!(pairs[1].captions, ["x", "y"]);

        let csv = d.join("m.csv");
        std::fs::write(&csv, "filepath,title\na.png,\"a cat, sleeping\"\n").unwrap();
        let pairs = read_pairs(&csv).unwrap();
        assert_eq!(pairs[0].captions, ["a cat, sleeping"]);

        std::fs::write(&csv, "name,words\na.png,x\n").unwrap();
        let err = read_pairs(&csv).unwrap_err().to_string();
        assert!(err.contains("image column"), "{err}");
        std::fs::write(&jsonl, "{\"image\": \"a.png\"}\n").unwrap();
        let err = read_pairs(&jsonl).unwrap_err().to_string();
        assert!(err.contains("m.jsonl:1"), "{err}");
    }
}
