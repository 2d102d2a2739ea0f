//! What a node's engine is built with: the flags `eval` and `train` share, and the value
//! types `serve`'s configuration reuses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use inkling_actors::ActorConfig;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_actors::protocol::SearchMode;
use inkling_models::encoder::{ModelName, Precision};
use inkling_models::recommend::RankerModel;
use inkling_models::search_ranker::SearchRanker;
use inkling_storage::ChineseSegmentation;
use serde::{Deserialize, Serialize};

/// What a node's engine is built with; `serve` reads the same settings from its
/// configuration (see `serve::config`).
#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Number of index shards.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub shards: u16,
    /// How the index segments Chinese: jieba words or character bigrams.
    #[arg(long, value_enum, default_value = "jieba")]
    pub segmentation: SegmentationArg,
    /// Encoder behind intent understanding and vector search: multilingual-e5-small (zh +
    /// en), all-minilm-l6-v2 (English, faster), or none (lexical search and slots only).
    #[arg(long, env = "INKLING_MODEL", default_value = "multilingual-e5-small")]
    pub model: ModelArg,
    /// Folder with the model files that scripts/setup.sh unpacks.
    #[arg(long, env = "INKLING_MODELS_DIR", default_value = ".deps/models")]
    pub models_dir: PathBuf,
    /// Model workers, each holding its own copy of the encoder.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub model_workers: u16,
    /// Number format of the encoder: auto (f16 on a GPU, bf16 on a CPU with AVX-512 BF16,
    /// f32 elsewhere) or f32 (everywhere).
    #[arg(long, value_enum, default_value = "auto")]
    pub encoder_precision: PrecisionArg,
    /// Most texts the model pool encodes in one batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub max_batch: u16,
    /// Longest a queued text waits for its batch to fill, in microseconds.
    #[arg(long, default_value_t = 2_000)]
    pub max_wait_us: u64,
    /// Texts the model pool may hold waiting; past this, searches get 503 "overloaded".
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1..))]
    pub model_queue: u32,
    /// Recommendation ranker weights from `inkling train ranker` (default: the untrained
    /// prior).
    #[arg(long, env = "INKLING_RANKER")]
    pub ranker: Option<PathBuf>,
    /// Search ranker weights from `inkling train search-ranker` (default: convex fusion).
    #[arg(long, env = "INKLING_SEARCH_RANKER")]
    pub search_ranker: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentationArg {
    Jieba,
    Bigram,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrecisionArg {
    Auto,
    F32,
}

impl From<PrecisionArg> for Precision {
    fn from(precision: PrecisionArg) -> Self {
        match precision {
            PrecisionArg::Auto => Precision::Auto,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

/// The names are the same on the command line and in a configuration file.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, Serialize, Deserialize)]
pub enum ModelArg {
    #[value(name = "multilingual-e5-small")]
    #[serde(rename = "multilingual-e5-small")]
    E5,
    #[value(name = "all-minilm-l6-v2")]
    #[serde(rename = "all-minilm-l6-v2")]
    MiniLm,
    #[serde(rename = "none")]
    None,
}

impl ModelArg {
    /// The encoder, or none for `--model none`.
    pub fn model_name(self) -> Option<ModelName> {
        match self {
            ModelArg::E5 => Some(ModelName::MultilingualE5Small),
            ModelArg::MiniLm => Some(ModelName::AllMiniLmL6V2),
            ModelArg::None => None,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Lexical,
    Vector,
    Hybrid,
}

impl From<ModeArg> for SearchMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Lexical => SearchMode::Lexical,
            ModeArg::Vector => SearchMode::Vector,
            ModeArg::Hybrid => SearchMode::Hybrid,
        }
    }
}

impl EngineArgs {
    pub fn actor_config(&self) -> anyhow::Result<ActorConfig> {
        Ok(ActorConfig {
            shards: usize::from(self.shards),
            encoder: self.encoder(),
            segmentation: match self.segmentation {
                SegmentationArg::Jieba => ChineseSegmentation::Jieba,
                SegmentationArg::Bigram => ChineseSegmentation::Bigram,
            },
            recommender: load_ranker(self.ranker.as_deref())?,
            search_ranker: self
                .search_ranker
                .as_deref()
                .map(SearchRanker::load)
                .transpose()?,
            ..Default::default()
        })
    }

    fn encoder(&self) -> Option<ModelPoolConfig> {
        let model = self.model.model_name()?;
        Some(ModelPoolConfig {
            workers: usize::from(self.model_workers),
            precision: self.encoder_precision.into(),
            max_batch: usize::from(self.max_batch),
            max_wait: Duration::from_micros(self.max_wait_us),
            queue_capacity: self.model_queue as usize,
            ..ModelPoolConfig::new(model, self.models_dir.clone())
        })
    }
}

/// The recommendation model at `path`, or the untrained prior without one.
pub fn load_ranker(path: Option<&Path>) -> anyhow::Result<RankerModel> {
    match path {
        Some(path) => Ok(RankerModel::load(path)?),
        None => Ok(RankerModel::default()),
    }
}
