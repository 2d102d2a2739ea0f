//! A judged query set and how a node searches it: the flags `eval search` and `train
//! search-ranker` share.

use std::path::PathBuf;

use clap::ValueEnum;
use inkling_actors::protocol::SearchMode;
use inkling_tools::eval::search::{SearchData, SearchEval, Split};

use crate::engine::{EngineArgs, ModeArg};

#[derive(clap::Args)]
pub struct SearchDataArgs {
    /// `id<TAB>text` documents; each becomes a product titled with its text.
    #[arg(long)]
    corpus: PathBuf,
    /// `id<TAB>text` queries.
    #[arg(long)]
    queries: PathBuf,
    /// `qid<TAB>0<TAB>docid<TAB>grade` judgements; the grade is the gain.
    #[arg(long)]
    qrels: PathBuf,
    /// Cut-off for nDCG and MRR.
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, value_enum, default_value = "hybrid")]
    mode: ModeArg,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Weight of embedding similarity against BM25 in hybrid fusion (default: the tuned
    /// value in docs/benchmarks.md).
    #[arg(long)]
    semantic_weight: Option<f64>,
    #[command(flatten)]
    engine: EngineArgs,
}

impl SearchDataArgs {
    /// The data, and the evaluation of it over `split`.
    pub fn read(&self, split: SplitArg) -> anyhow::Result<(SearchData, SearchEval)> {
        if self.k == 0 || self.k > inkling_gateway::MAX_K {
            anyhow::bail!("--k must be between 1 and {}", inkling_gateway::MAX_K);
        }
        let mode: SearchMode = self.mode.into();
        let mut actors = self.engine.actor_config()?;
        if mode == SearchMode::Lexical {
            // Lexical search never touches the encoder: don't embed the corpus for it.
            actors.encoder = None;
        } else if actors.encoder.is_none() {
            anyhow::bail!("--mode {mode:?} needs an encoder: drop --model none");
        }
        if let Some(weight) = self.semantic_weight {
            if !(weight.is_finite() && weight >= 0.0) {
                anyhow::bail!("--semantic-weight must be a non-negative number");
            }
            actors.ranking.semantic = weight;
        }
        let data = inkling_tools::eval::search::read(&self.corpus, &self.queries, &self.qrels)?;
        let eval = SearchEval {
            k: self.k,
            mode,
            actors,
            concurrency: self.concurrency.max(1),
            run_file: None,
            split: split.into(),
            explain: false,
        };
        Ok((data, eval))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    All,
    Train,
    HeldOut,
}

impl From<SplitArg> for Split {
    fn from(split: SplitArg) -> Self {
        match split {
            SplitArg::All => Split::All,
            SplitArg::Train => Split::Train,
            SplitArg::HeldOut => Split::HeldOut,
        }
    }
}
