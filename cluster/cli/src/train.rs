//! `inkling train`: fitting the recommendation and search rankers from logged data.

use std::path::PathBuf;

use clap::Subcommand;
use inkling_models::recommend::TrainOptions;
use inkling_models::search_ranker::{SearchRanker, SearchTrainOptions};

use crate::search_data::{SearchDataArgs, SplitArg};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// The recommendation ranker, on a held-out slice of a session file; writes weights
    /// that `serve --ranker` and `eval sessions --ranker` load.
    Ranker {
        /// One session a line, space-separated item ids in click order.
        #[arg(long)]
        train: PathBuf,
        /// Where to write the weights (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Share of sessions, from the end of the file, held out to learn from.
        #[arg(long, default_value_t = 0.2)]
        held_out_share: f64,
        /// Most held-out cases replayed.
        #[arg(long, default_value_t = 40_000)]
        max_cases: usize,
        /// Hidden units of the interaction layer on top of the linear model; 0 for linear.
        #[arg(long, default_value_t = 32)]
        interaction_units: usize,
        /// Passes of the optimiser over the cases.
        #[arg(long, default_value_t = 300)]
        epochs: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// The search ranker, on the training half of a judged query set (`eval search
    /// --split train`); writes weights that `serve --search-ranker` and `eval search
    /// --search-ranker` load, and prints nDCG on the held-out half.
    SearchRanker {
        #[command(flatten)]
        search: SearchDataArgs,
        /// Where to write the weights (JSON).
        #[arg(long)]
        out: PathBuf,
        /// The logged answers: read from this file when it exists (no node is started),
        /// else logged through a node and written to it.
        #[arg(long)]
        features: Option<PathBuf>,
        /// Passes of the optimiser over the queries.
        #[arg(long, default_value_t = 400)]
        epochs: usize,
        /// L2 penalty on the weights.
        #[arg(long, default_value_t = 1e-4)]
        l2: f64,
    },
}

pub async fn run(command: TrainCommand) -> anyhow::Result<()> {
    match command {
        TrainCommand::Ranker {
            train,
            out,
            held_out_share,
            max_cases,
            interaction_units,
            epochs,
            concurrency,
        } => {
            let options = inkling_tools::train::RankerTraining {
                train,
                out,
                held_out_share,
                max_cases,
                fitting: TrainOptions {
                    interaction_units,
                    epochs: epochs.max(1),
                    ..Default::default()
                },
                concurrency: concurrency.max(1),
            };
            inkling_tools::train::train_ranker(options).await
        }
        TrainCommand::SearchRanker {
            search,
            out,
            features,
            epochs,
            l2,
        } => {
            let (data, eval) = search.read(SplitArg::All)?;
            let prior = match &eval.actors.search_ranker {
                Some(ranker) => ranker.clone(),
                None => SearchRanker::convex(eval.actors.ranking.semantic),
            };
            let options = inkling_tools::train_search::SearchRankerTraining {
                data,
                eval,
                out,
                features,
                fitting: SearchTrainOptions {
                    epochs: epochs.max(1),
                    l2,
                    ..Default::default()
                },
                prior,
            };
            inkling_tools::train_search::train_search_ranker(options).await
        }
    }
}
