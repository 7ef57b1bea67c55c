//! What an index records about the model that filled it ([`ModelIdentity`]), and the two ways
//! an image tower can compute ([`Precision`]): data, read and written by the store and the
//! indexer, compared by every command that opens an index.
//!
//! A leaf: the identity of a checkpoint on disk is computed above it ([`ModelIdentity::of`],
//! [`super::fingerprint`]), which is why those live elsewhere.

/// What an index records about the model that filled it: two models (or two preprocessing
/// versions) must never share an index, since their spaces are unrelated.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ModelIdentity {
    /// Hub id or local directory, for messages.
    pub name: String,
    /// SHA-256 over config.json, the preprocessing parameters and all the weights
    /// ([`super::fingerprint`]).
    pub fingerprint: String,
    /// The fingerprint an older clipsearch recorded for this checkpoint (computed from the
    /// files, never stored): lets indexes that recorded it open ([`ModelIdentity::same_model`]).
    #[serde(skip)]
    pub legacy_fingerprint: Option<String>,
    pub dim: usize,
    pub preprocess_version: u32,
    /// `exact`, or `dct-scaled` for indexes built with DCT-scaled JPEG decoding (`--fast`).
    #[serde(default = "exact_decode")]
    pub decode: String,
    /// The image tower's arithmetic: `f32` (the reference's), or `int8` (`--fast`).
    #[serde(default = "f32_precision")]
    pub precision: String,
    /// The model family ([`super::Family::name`]); indexes written before families existed are CLIP's.
    #[serde(default = "clip_family")]
    pub family: String,
}

/// Equality of what is recorded (the legacy fingerprint, computed from files, is left out).
impl PartialEq for ModelIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.fingerprint == other.fingerprint
            && self.dim == other.dim
            && self.preprocess_version == other.preprocess_version
            && self.decode == other.decode
            && self.precision == other.precision
            && self.family == other.family
    }
}

impl Eq for ModelIdentity {}

pub(super) fn exact_decode() -> String {
    "exact".into()
}

fn clip_family() -> String {
    "clip".into()
}

pub(super) fn f32_precision() -> String {
    Precision::F32.as_str().into()
}

/// How the image tower computes: as the reference does, or with int8 linear layers
/// ([`super::vision`]): about twice as fast, embeddings within a tested bound of the f32 ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    Int8,
}

impl Precision {
    /// The name recorded in an index's metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }

    /// The precision an index's metadata names (unknown names are f32's: older indexes).
    pub fn from_name(name: &str) -> Self {
        if name == Precision::Int8.as_str() {
            Precision::Int8
        } else {
            Precision::F32
        }
    }
}

/// The `decode` value of an index built with DCT-scaled JPEG decoding.
pub const SCALED_DECODE: &str = "dct-scaled";

impl ModelIdentity {
    /// Marks the identity as fast mode's (`index --fast`): DCT-scaled decoding, int8 tower.
    pub fn set_fast_mode(&mut self) {
        self.decode = SCALED_DECODE.into();
        self.precision = Precision::Int8.as_str().into();
    }

    /// Whether anything in how images were embedded departs from the reference's arithmetic.
    pub fn is_fast_mode(&self) -> bool {
        self.scaled_decode() || self.precision() != Precision::F32
    }

    /// Whether JPEGs were decoded DCT-scaled.
    pub fn scaled_decode(&self) -> bool {
        self.decode == SCALED_DECODE
    }

    /// The image tower's arithmetic.
    pub fn precision(&self) -> Precision {
        Precision::from_name(&self.precision)
    }
}
