//! Embedding queries with an index's own model: the text tower for texts, the image tower for
//! images (decoding the way the index's images were), each loaded on first use. Shared by the
//! searcher of a local index and that of a remote collection.

use std::path::Path;

use clipsearch::model::{resolve, ClipModel, ModelFiles, ModelIdentity, Towers};

use crate::error::Error;

pub struct Embedder {
    model_spec: String,
    identity: ModelIdentity,
    model_files: Option<ModelFiles>,
    text: Option<ClipModel>,
    image: Option<ClipModel>,
}

impl Embedder {
    /// For an index built with `identity`; `model` names the checkpoint to load (None: the one
    /// the identity names). Nothing is loaded yet.
    pub fn new(identity: ModelIdentity, model: Option<&str>) -> Self {
        Embedder {
            model_spec: model
                .map(str::to_string)
                .unwrap_or_else(|| identity.name.clone()),
            identity,
            model_files: None,
            text: None,
            image: None,
        }
    }

    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The index now holds vectors of `identity` (it was rebuilt): towers that no longer fit
    /// are dropped.
    pub fn set_identity(&mut self, identity: ModelIdentity) {
        if identity == self.identity {
            return;
        }
        if identity.fingerprint != self.identity.fingerprint {
            self.model_spec = identity.name.clone();
            self.model_files = None;
            self.text = None;
        }
        self.image = None;
        self.identity = identity;
    }

    fn files(&mut self) -> Result<ModelFiles, Error> {
        if let Some(f) = &self.model_files {
            return Ok(f.clone());
        }
        let files = resolve(&self.model_spec)?;
        let id = ModelIdentity::of(&files)?;
        if !id.same_model(&self.identity) {
            return Err(Error::WrongModel {
                given: self.model_spec.clone(),
                recorded: self.identity.name.clone(),
            });
        }
        self.model_files = Some(files.clone());
        Ok(files)
    }

    /// A text's embedding (the text tower alone).
    pub fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        if self.text.is_none() {
            let files = self.files()?;
            self.text = Some(ClipModel::load(&files, Towers::Text)?);
        }
        let encoder = self.text.as_ref().expect("loaded").text()?;
        // Warns if the query is longer than the model's context (it is then truncated).
        Ok(encoder.embed(&[text])?.remove(0))
    }

    /// An image file's embedding.
    pub fn embed_file(&mut self, path: &Path) -> Result<Vec<f32>, Error> {
        Ok(self.image_model()?.image()?.embed_file(path)?)
    }

    /// An image given as file contents (an upload); `name` is used in messages.
    pub fn embed_bytes(&mut self, name: &Path, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let encoder = self.image_model()?.image()?;
        let pixels = encoder.preprocessor().load_bytes(name, bytes)?;
        Ok(encoder.embed_pixels(&pixels)?.remove(0))
    }

    /// The image tower, loaded on first use, decoding the way the index's images were.
    fn image_model(&mut self) -> Result<&ClipModel, Error> {
        if self.image.is_none() {
            let files = self.files()?;
            let mut model = ClipModel::load_with(&files, Towers::Image, self.identity.precision())?;
            if self.identity.scaled_decode() {
                let config = model.image()?.preprocessor().config.clone();
                let fast = clipsearch::preprocess::Preprocessor::fast(config).decode;
                model.image_mut()?.set_decode(fast);
            }
            self.image = Some(model);
        }
        Ok(self.image.as_ref().expect("loaded"))
    }
}
