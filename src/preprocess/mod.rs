//! CLIP's image preprocessing, which is part of the model: an embedding is only the reference's
//! if the pixels fed to the vision tower are.
//!
//! The steps, as `CLIPImageProcessor` does them: decode and convert to RGB ([`decode`]); resize
//! so the short side is `shortest_edge` and the long side `int(size * long / short)` with Pillow's
//! antialiased bicubic ([`resample`]); centre crop with floor offsets; multiply by 1/255; subtract
//! the mean and divide by the standard deviation per channel; lay out as CHW f32.

pub mod decode;
pub mod formats;
#[cfg(feature = "heif")]
mod heif;
mod jxl;
#[cfg(feature = "libraw")]
mod libraw;
mod quirks;
pub mod raw;
pub mod resample;
pub mod rgb;
mod tiff;

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Bumped whenever a change here changes the pixels for some input: indexes record it, so that
/// embeddings from two preprocessing versions are never mixed silently.
pub const PREPROCESS_VERSION: u32 = 1;

/// The parameters of `preprocessor_config.json` that change pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    pub shortest_edge: usize,
    pub crop_height: usize,
    pub crop_width: usize,
    pub rescale_factor: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// SigLIP's processors resize straight to `crop_width` x `crop_height` (the aspect ratio is
    /// not kept) and do not crop; CLIP's resize the short side and centre-crop.
    pub squash: bool,
    pub filter: resample::Filter,
    pub pass_order: resample::PassOrder,
    /// torchvision's centre crop (OpenCLIP's) rounds its offsets, half to even; transformers'
    /// floors them.
    pub crop_round: bool,
}

impl PreprocessConfig {
    /// CLIP's defaults for a vision tower of input size `image_size`.
    // Written as published in CLIP's preprocessor_config.json.
    #[allow(clippy::excessive_precision)]
    pub fn clip_default(image_size: usize) -> Self {
        PreprocessConfig {
            shortest_edge: image_size,
            crop_height: image_size,
            crop_width: image_size,
            rescale_factor: 1.0 / 255.0,
            mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            std: [0.268_629_54, 0.261_302_58, 0.275_777_11],
            squash: false,
            filter: resample::Filter::Bicubic,
            pass_order: resample::PassOrder::HorizontalFirst,
            crop_round: false,
        }
    }

    /// SigLIP's defaults (`SiglipImageProcessor`): a square of `image_size`, bicubic, mean and
    /// standard deviation 0.5, Pillow 13's order of passes (its reference fixture's).
    pub fn siglip_default(image_size: usize) -> Self {
        PreprocessConfig {
            mean: [0.5; 3],
            std: [0.5; 3],
            squash: true,
            pass_order: resample::PassOrder::Pillow13,
            ..Self::clip_default(image_size)
        }
    }

    /// The text that model fingerprints hash. CLIP's parameters print as they always have (the
    /// derived `Debug` of the fields before `squash` and `filter` existed), so that indexes
    /// recorded by earlier releases keep matching; the newer parameters are appended only when
    /// they differ from CLIP's.
    pub(crate) fn identity_text(&self) -> String {
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug
        struct PreprocessConfig<'a> {
            shortest_edge: usize,
            crop_height: usize,
            crop_width: usize,
            rescale_factor: f64,
            mean: &'a [f32; 3],
            std: &'a [f32; 3],
        }
        let mut text = format!(
            "{:?}",
            PreprocessConfig {
                shortest_edge: self.shortest_edge,
                crop_height: self.crop_height,
                crop_width: self.crop_width,
                rescale_factor: self.rescale_factor,
                mean: &self.mean,
                std: &self.std,
            }
        );
        if self.squash {
            text.push_str(" squash");
        }
        if self.filter != resample::Filter::Bicubic {
            text.push_str(&format!(" {:?}", self.filter));
        }
        if self.pass_order != resample::PassOrder::HorizontalFirst {
            text.push_str(&format!(" {:?}", self.pass_order));
        }
        if self.crop_round {
            text.push_str(" crop-round");
        }
        text
    }

    /// Reads `preprocessor_config.json` if it exists, else CLIP's defaults. Both the current
    /// (`{"shortest_edge": n}`, `{"height","width"}`) and older (plain integers) layouts parse.
    pub fn from_file_or_default(path: &Path, image_size: usize) -> Result<Self> {
        Self::from_file_or(path, Self::clip_default(image_size))
    }

    /// Reads `preprocessor_config.json` over the given defaults (the model family's), which
    /// apply alone when the file does not exist. Both size layouts parse: `{"shortest_edge": n}`
    /// (resize the short side, then crop) and `{"height", "width"}` (SigLIP's: resize to that
    /// rectangle, no crop).
    pub fn from_file_or(path: &Path, defaults: Self) -> Result<Self> {
        let mut c = defaults;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(c),
            Err(e) => return Err(Error::io(path, e)),
        };
        let err = |key: &str, reason: String| Error::Config {
            path: path.to_path_buf(),
            key: key.into(),
            reason,
        };
        let root: Value = serde_json::from_str(&text).map_err(|e| err("(file)", e.to_string()))?;
        let int = |v: &Value, key: &str| {
            v.as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| err(key, format!("expected a positive integer, found {v}")))
        };
        if let Some(v) = root.get("resample") {
            c.filter = v
                .as_u64()
                .and_then(resample::Filter::from_pillow)
                .ok_or_else(|| Error::Unsupported {
                    key: "resample".into(),
                    value: format!("{v} (3, bicubic, and 2, bilinear, are implemented)"),
                })?;
        }
        for flag in ["do_resize", "do_normalize", "do_rescale", "do_convert_rgb"] {
            if root.get(flag).and_then(Value::as_bool) == Some(false) {
                return Err(Error::Unsupported {
                    key: flag.into(),
                    value: "false".into(),
                });
            }
        }
        match root.get("size") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                if let Some(v) = m.get("shortest_edge") {
                    c.shortest_edge = int(v, "size.shortest_edge")?;
                    c.squash = false;
                } else {
                    let (Some(h), Some(w)) = (m.get("height"), m.get("width")) else {
                        return Err(err(
                            "size",
                            "expected `shortest_edge`, or `height` and `width`".into(),
                        ));
                    };
                    c.crop_height = int(h, "size.height")?;
                    c.crop_width = int(w, "size.width")?;
                    c.shortest_edge = c.crop_height.min(c.crop_width);
                    c.squash = true;
                }
            }
            Some(v) => c.shortest_edge = int(v, "size")?,
        }
        // transformers crops only when asked; CLIP's files ask, SigLIP's do not.
        let crop = root
            .get("do_center_crop")
            .and_then(Value::as_bool)
            .unwrap_or(!c.squash);
        if c.squash && crop {
            return Err(Error::Unsupported {
                key: "do_center_crop".into(),
                value: "true with a height x width resize".into(),
            });
        }
        if !c.squash && !crop {
            return Err(Error::Unsupported {
                key: "do_center_crop".into(),
                value: "false with a shortest-edge resize".into(),
            });
        }
        match root.get("crop_size") {
            None | Some(Value::Null) => {}
            Some(_) if c.squash => {}
            Some(Value::Object(m)) => {
                let h = m
                    .get("height")
                    .ok_or_else(|| err("crop_size", "expected `height`".into()))?;
                let w = m
                    .get("width")
                    .ok_or_else(|| err("crop_size", "expected `width`".into()))?;
                c.crop_height = int(h, "crop_size.height")?;
                c.crop_width = int(w, "crop_size.width")?;
            }
            Some(v) => {
                c.crop_height = int(v, "crop_size")?;
                c.crop_width = c.crop_height;
            }
        }
        if let Some(v) = root.get("rescale_factor") {
            c.rescale_factor = v
                .as_f64()
                .ok_or_else(|| err("rescale_factor", format!("expected a number, found {v}")))?;
        }
        for (key, dst) in [("image_mean", &mut c.mean), ("image_std", &mut c.std)] {
            if let Some(v) = root.get(key) {
                let arr: Vec<f32> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_f64().map(|f| f as f32))
                            .collect()
                    })
                    .unwrap_or_default();
                if arr.len() != 3 {
                    return Err(err(key, format!("expected three numbers, found {v}")));
                }
                dst.copy_from_slice(&arr);
            }
        }
        Ok(c)
    }
}

/// Turns decoded images into the vision tower's input.
#[derive(Clone, Debug)]
pub struct Preprocessor {
    pub config: PreprocessConfig,
    pub decode: decode::DecodeMode,
}

impl Preprocessor {
    /// Exact decoding, as the reference.
    pub fn new(config: PreprocessConfig) -> Self {
        Preprocessor {
            config,
            decode: decode::DecodeMode::Exact,
        }
    }

    /// With DCT-scaled JPEG decoding down to (at least) the resize target: faster, and
    /// embeddings within the bound of `tests/fast_decode.rs` of the exact ones.
    pub fn fast(config: PreprocessConfig) -> Self {
        // A squashing resize needs both sides at least the target's.
        let min_short = if config.squash {
            config.crop_height.max(config.crop_width)
        } else {
            config.shortest_edge
        };
        Preprocessor {
            config,
            decode: decode::DecodeMode::Scaled { min_short },
        }
    }

    /// Decodes an in-memory file in this preprocessor's mode.
    pub fn decode(&self, path: &Path, bytes: &[u8]) -> Result<image::RgbImage> {
        decode::decode_bytes_with(path, bytes, self.decode)
    }

    /// Number of f32 values in one preprocessed image (3 x crop height x crop width).
    pub fn len(&self) -> usize {
        3 * self.config.crop_height * self.config.crop_width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size the short side is resized to keep, as transformers computes it: the long side
    /// is `int(size * long / short)`, truncated.
    pub fn resized_dims(&self, w: usize, h: usize) -> (usize, usize) {
        if self.config.squash {
            return (self.config.crop_width, self.config.crop_height);
        }
        let size = self.config.shortest_edge;
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = ((size * long) as f64 / short as f64) as usize;
        if w <= h {
            (size, new_long.max(1))
        } else {
            (new_long.max(1), size)
        }
    }

    /// Resize, crop and normalise RGB pixels (`w` x `h`, interleaved) into CHW f32.
    pub fn pixels_to_tensor_data(&self, rgb: &[u8], w: usize, h: usize) -> Vec<f32> {
        let (rw, rh) = self.resized_dims(w, h);
        let c = &self.config;
        let resized = match self.decode {
            decode::DecodeMode::Exact => {
                resample::resize_rgb_with(rgb, w, h, rw, rh, c.filter, c.pass_order)
            }
            decode::DecodeMode::Scaled { .. } => {
                resample::resize_rgb_reducing(rgb, w, h, rw, rh, c.filter, c.pass_order)
            }
        };
        self.crop_and_normalise(&resized, rw, rh)
    }

    /// Centre crop (floor offsets; zero padding when the image is smaller, as transformers pads)
    /// then rescale and normalise.
    pub fn crop_and_normalise(&self, rgb: &[u8], w: usize, h: usize) -> Vec<f32> {
        self.normalise(&self.crop(rgb, w, h))
    }

    /// The centre crop alone, as planar (CHW) bytes: a quarter of the memory of the model's
    /// input, for callers that hold many images (training).
    pub fn crop(&self, rgb: &[u8], w: usize, h: usize) -> Vec<u8> {
        let (ch, cw) = (self.config.crop_height, self.config.crop_width);
        // Python's `//` floors; for a smaller image the offset is negative and the
        // missing rows/columns are zero pixels.
        let offset = |size: usize, crop: usize| {
            let d = size as isize - crop as isize;
            if self.config.crop_round && d < 0 {
                // torchvision pads a smaller image by floor(missing / 2) on the left/top.
                -((-d) / 2)
            } else if self.config.crop_round {
                // Python's round((size - crop) / 2): halves go to the even neighbour.
                let half = d.div_euclid(2);
                if d.rem_euclid(2) == 1 && half.rem_euclid(2) == 1 {
                    half + 1
                } else {
                    half
                }
            } else {
                d.div_euclid(2)
            }
        };
        let top = offset(h, ch);
        let left = offset(w, cw);
        let mut out = vec![0u8; 3 * ch * cw];
        for c in 0..3 {
            let plane = &mut out[c * ch * cw..(c + 1) * ch * cw];
            for y in 0..ch {
                let sy = y as isize + top;
                for x in 0..cw {
                    let sx = x as isize + left;
                    if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        plane[y * cw + x] = rgb[(sy as usize * w + sx as usize) * 3 + c];
                    }
                }
            }
        }
        out
    }

    /// Rescale and normalise a planar crop from [`Preprocessor::crop`].
    pub fn normalise(&self, planar: &[u8]) -> Vec<f32> {
        let plane = planar.len() / 3;
        let scale = self.config.rescale_factor;
        planar
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i / plane;
                // transformers rescales in f64 then casts to f32, then normalises in f32.
                let v = (v as f64 * scale) as f32;
                (v - self.config.mean[c]) / self.config.std[c]
            })
            .collect()
    }

    /// Decode a file, resize it and crop it, without normalising (see [`Preprocessor::crop`]).
    pub fn load_crop(&self, path: &Path) -> Result<Vec<u8>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let rgb = self.decode(path, &bytes)?;
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let (rw, rh) = self.resized_dims(w, h);
        let c = &self.config;
        let resized = resample::resize_rgb_with(rgb.as_raw(), w, h, rw, rh, c.filter, c.pass_order);
        Ok(self.crop(&resized, rw, rh))
    }

    /// Decode file contents (`path` names them in errors) and preprocess them.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
        let rgb = self.decode(path, bytes)?;
        let (w, h) = rgb.dimensions();
        Ok(self.pixels_to_tensor_data(rgb.as_raw(), w as usize, h as usize))
    }

    /// Decode a file and preprocess it.
    pub fn load_file(&self, path: &Path) -> Result<Vec<f32>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.load_bytes(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_dims_truncate_like_python() {
        let p = Preprocessor::new(PreprocessConfig::clip_default(64));
        assert_eq!(p.resized_dims(451, 300), (96, 64)); // int(64*451/300) = int(96.21)
        assert_eq!(p.resized_dims(333, 871), (64, 167)); // int(167.39)
        assert_eq!(p.resized_dims(640, 427), (95, 64)); // int(95.93)
        assert_eq!(p.resized_dims(1, 1), (64, 64));
    }

    #[test]
    fn crop_pads_small_images_with_zero() {
        let p = Preprocessor::new(PreprocessConfig::clip_default(4));
        let out = p.crop_and_normalise(&[255u8; 2 * 2 * 3], 2, 2);
        let zero = (0.0 - p.config.mean[0]) / p.config.std[0];
        assert_eq!(out[0], zero, "top-left corner is padding");
        assert!(out[5] > 1.0, "centre is the white image");
    }

    #[test]
    fn rounded_crop_offsets_go_to_the_even_neighbour() {
        let mut c = PreprocessConfig::clip_default(2);
        c.crop_round = true;
        let p = Preprocessor::new(c);
        // One row, values = column index: the crop shows which columns were kept.
        let row = |w: usize| -> Vec<u8> { (0..w).flat_map(|x| [x as u8; 3]).collect() };
        let first = |w: usize| p.crop(&[row(w), row(w)].concat(), w, 2)[0];
        assert_eq!(first(5), 2, "(5 - 2) / 2 = 1.5 rounds to 2");
        assert_eq!(first(7), 2, "(7 - 2) / 2 = 2.5 rounds to 2");
        assert_eq!(first(9), 4, "3.5 rounds to 4");
        assert_eq!(first(6), 2);
        let floor = Preprocessor::new(PreprocessConfig::clip_default(2));
        assert_eq!(
            floor.crop(&[row(5), row(5)].concat(), 5, 2)[0],
            1,
            "transformers floors"
        );
    }
}
