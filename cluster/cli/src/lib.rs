//! The `inkling` command line: `serve`, and the offline tools of `inkling-tools`.
//!
//! `inkling-cli` owns argument parsing and turning flags into configuration. It must never
//! hold logic of its own beyond that: every command delegates to a crate that owns the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use inkling_actors::ActorConfig;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_actors::protocol::SearchMode;
use inkling_models::baskets::RuleThresholds;
use inkling_models::encoder::ModelName;
use inkling_models::recommend::{RankerModel, TrainOptions};
use inkling_storage::ChineseSegmentation;

use inkling_node::{CatalogSource, NodeOptions};

#[derive(Parser)]
#[command(
    name = "inkling",
    version,
    about = "Real-time e-commerce search and recommendation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: storage under --data-dir, HTTP API on --listen.
    Serve(ServeArgs),
    /// Run a benchmark and print a table.
    Bench {
        #[command(subcommand)]
        bench: inkling_tools::bench::BenchCommand,
    },
    /// Evaluate a component on a public data set.
    Eval {
        #[command(subcommand)]
        eval: EvalCommand,
    },
    /// Fit a model from logged data.
    Train {
        #[command(subcommand)]
        train: TrainCommand,
    },
    /// Offline jobs over stored profiles.
    Profile {
        #[command(subcommand)]
        profile: ProfileCommand,
    },
}

#[derive(Subcommand)]
enum TrainCommand {
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
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Shopper segments (k-means) and association rules from a stopped node's data.
    Build {
        /// The node's data folder.
        #[arg(long, env = "INKLING_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Number of segments (k).
        #[arg(long, default_value_t = 16)]
        segments: usize,
        /// Most k-means iterations.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// Baskets a pair must share to become a rule.
        #[arg(long, default_value_t = 2)]
        min_support: u32,
        /// Least confidence of a rule A -> B: baskets with both / baskets with A.
        #[arg(long, default_value_t = 0.05)]
        min_confidence: f32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Brand and product-type extraction on BIEOS-tagged text, with dictionaries from --train.
    Slots {
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Retrieval quality and speed on BEIR/TREC-style TSV files, through a real node.
    Search {
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
        /// Also write the ranked lists to this file as a TREC run.
        #[arg(long)]
        run: Option<PathBuf>,
        /// Weight of embedding similarity against BM25 in hybrid fusion (default: the tuned
        /// value in docs/benchmarks.md).
        #[arg(long)]
        semantic_weight: Option<f64>,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        json: bool,
    },
    /// Probe queries over the demo catalog, each with an expectation for its top results,
    /// through `POST /v1/search`; prints the cases that fail.
    Probe {
        /// `session<TAB>query<TAB>expectation` lines (see cluster/tools/probes/demo.tsv).
        file: PathBuf,
        /// A running node to probe (it must serve the demo catalog); by default a fresh
        /// local node on the demo catalog.
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Next-item recommendation: train sessions in, P@k and MRR@k on prefix/target cases out.
    Sessions {
        /// One session a line, space-separated item ids in click order.
        #[arg(long)]
        train: PathBuf,
        /// `prefix<TAB>target` lines.
        #[arg(long)]
        test: PathBuf,
        #[arg(long, default_value_t = 20)]
        k: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Ranker weights from `inkling train ranker` (default: the untrained prior).
        #[arg(long)]
        ranker: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

async fn run_eval(eval: EvalCommand) -> anyhow::Result<()> {
    match eval {
        EvalCommand::Search {
            corpus,
            queries,
            qrels,
            k,
            mode,
            concurrency,
            run,
            semantic_weight,
            engine,
            json,
        } => {
            if k == 0 || k > inkling_gateway::MAX_K {
                anyhow::bail!("--k must be between 1 and {}", inkling_gateway::MAX_K);
            }
            let mode = mode.into();
            let mut actors = engine.actor_config()?;
            if mode == SearchMode::Lexical {
                // Lexical search never touches the encoder: don't embed the corpus for it.
                actors.encoder = None;
            } else if actors.encoder.is_none() {
                anyhow::bail!("--mode {mode:?} needs an encoder: drop --model none");
            }
            if let Some(weight) = semantic_weight {
                if !(weight.is_finite() && weight >= 0.0) {
                    anyhow::bail!("--semantic-weight must be a non-negative number");
                }
                actors.ranking.semantic = weight;
            }
            let data = inkling_tools::eval::search::read(&corpus, &queries, &qrels)?;
            let eval = inkling_tools::eval::search::SearchEval {
                k,
                mode,
                actors,
                concurrency: concurrency.max(1),
                run_file: run,
            };
            let report = inkling_tools::eval::search::evaluate(data, eval).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                inkling_tools::eval::search::print_table(&report);
            }
            Ok(())
        }
        EvalCommand::Sessions {
            train,
            test,
            k,
            concurrency,
            ranker,
            json,
        } => {
            if k == 0 || k > inkling_gateway::MAX_K {
                anyhow::bail!("--k must be between 1 and {}", inkling_gateway::MAX_K);
            }
            let actors = ActorConfig {
                recommender: load_ranker(ranker.as_deref())?,
                ..Default::default()
            };
            let data = inkling_tools::eval::sessions::read(&train, &test)?;
            let report =
                inkling_tools::eval::sessions::evaluate(data, k, concurrency, actors).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                inkling_tools::eval::sessions::print_table(&report);
            }
            Ok(())
        }
        EvalCommand::Probe { file, url, engine } => {
            let cases = inkling_tools::eval::probe::read(&file)?;
            let report = match url {
                Some(url) => {
                    let base = url.trim_end_matches('/').to_string();
                    tokio::task::spawn_blocking(move || {
                        inkling_tools::eval::probe::run(&base, &cases)
                    })
                    .await??
                }
                None => inkling_tools::eval::probe::evaluate(cases, engine.actor_config()?).await?,
            };
            inkling_tools::eval::probe::print_report(&report);
            if !report.failures.is_empty() {
                anyhow::bail!("{} probe cases fail", report.failures.len());
            }
            Ok(())
        }
        EvalCommand::Slots { train, test, json } => {
            let train = inkling_tools::eval::slots::read_bieos(&train)?;
            let test = inkling_tools::eval::slots::read_bieos(&test)?;
            let report = inkling_tools::eval::slots::evaluate(&train, &test);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                inkling_tools::eval::slots::print_table(&report);
            }
            Ok(())
        }
    }
}

async fn run_train(train: TrainCommand) -> anyhow::Result<()> {
    match train {
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
    }
}

fn run_profile(profile: ProfileCommand) -> anyhow::Result<()> {
    match profile {
        ProfileCommand::Build {
            data_dir,
            segments,
            iterations,
            min_support,
            min_confidence,
            json,
        } => {
            let options = inkling_tools::profiles::ProfileBuild {
                data_dir,
                segments,
                iterations: iterations.max(1),
                thresholds: RuleThresholds {
                    min_support: min_support.max(1),
                    min_confidence,
                    ..Default::default()
                },
            };
            let report = inkling_tools::profiles::build(&options)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                inkling_tools::profiles::print_table(&report);
            }
            Ok(())
        }
    }
}

/// The recommendation model at `path`, or the untrained prior without one.
fn load_ranker(path: Option<&std::path::Path>) -> anyhow::Result<RankerModel> {
    match path {
        Some(path) => Ok(RankerModel::load(path)?),
        None => Ok(RankerModel::default()),
    }
}

/// What a node's engine is built with; shared by `serve` and the evaluations.
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
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SegmentationArg {
    Jieba,
    Bigram,
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
            ..Default::default()
        })
    }

    fn encoder(&self) -> Option<ModelPoolConfig> {
        let model = match self.model {
            ModelArg::E5 => ModelName::MultilingualE5Small,
            ModelArg::MiniLm => ModelName::AllMiniLmL6V2,
            ModelArg::None => return None,
        };
        Some(ModelPoolConfig {
            workers: usize::from(self.model_workers),
            max_batch: usize::from(self.max_batch),
            max_wait: Duration::from_micros(self.max_wait_us),
            queue_capacity: self.model_queue as usize,
            ..ModelPoolConfig::new(model, self.models_dir.clone())
        })
    }
}

#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    /// Folder for the sled database and the index shards.
    #[arg(long, env = "INKLING_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "INKLING_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Catalog loaded into an empty node: the bundled demo, none, or a JSON-lines file.
    #[arg(long, default_value = "demo")]
    pub catalog: CatalogArg,
    /// A JSON-lines product file, with --catalog file.
    #[arg(long, required_if_eq("catalog", "file"))]
    pub catalog_file: Option<PathBuf>,
    /// Seconds without traffic after which a session actor is passivated.
    #[arg(long, default_value_t = 600)]
    pub session_idle_secs: u64,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModelArg {
    #[value(name = "multilingual-e5-small")]
    E5,
    #[value(name = "all-minilm-l6-v2")]
    MiniLm,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CatalogArg {
    Demo,
    None,
    File,
}

impl ServeArgs {
    pub fn node_options(&self) -> anyhow::Result<NodeOptions> {
        let catalog = match (self.catalog, &self.catalog_file) {
            (CatalogArg::Demo, _) => CatalogSource::Demo,
            (CatalogArg::None, _) => CatalogSource::Empty,
            (CatalogArg::File, Some(path)) => CatalogSource::File(path.clone()),
            (CatalogArg::File, None) => unreachable!("clap requires --catalog-file"),
        };
        Ok(NodeOptions {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            catalog,
            actors: ActorConfig {
                session_idle_timeout: Duration::from_secs(self.session_idle_secs.max(1)),
                ..self.engine.actor_config()?
            },
        })
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    inkling_ops::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => inkling_node::run(args.node_options()?).await,
            Command::Bench { bench } => inkling_tools::bench::run(bench).await,
            Command::Eval { eval } => run_eval(eval).await,
            Command::Train { train } => run_train(train).await,
            Command::Profile { profile } => run_profile(profile),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
