//! The `inkling` command line: `serve`, and the offline tools of `inkling-tools`.
//!
//! `inkling-cli` owns argument parsing and turning flags into configuration. It must never
//! hold logic of its own beyond that: every command delegates to a crate that owns the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use inkling_actors::ActorConfig;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_actors::protocol::SearchMode;
use inkling_models::baskets::RuleThresholds;
use inkling_models::encoder::ModelName;
use inkling_models::recommend::{RankerModel, TrainOptions};
use inkling_models::search_ranker::{SearchRanker, SearchTrainOptions};
use inkling_storage::ChineseSegmentation;
use inkling_tools::eval::search::{SearchData, SearchEval, Split};

use inkling_cluster::InitialMember;
use inkling_node::{CatalogSource, ClusterOptions, MeshTls, NodeOptions};

#[derive(Parser)]
#[command(
    name = "inkling",
    version,
    about = "Real-time e-commerce search and recommendation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written: `text`, or `json` (one object per line, carrying the
    /// request's `trace_id`).
    #[arg(
        long,
        global = true,
        env = "INKLING_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormatArg,
    /// Export request traces to this OTLP/HTTP collector (`http://HOST:4318`); tracing is
    /// off when unset.
    #[arg(long, global = true, env = "INKLING_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: storage under --data-dir, HTTP API on --listen (also `inkling node`).
    #[command(visible_alias = "node")]
    Serve(Box<ServeArgs>),
    /// Local development clusters.
    Cluster {
        #[command(subcommand)]
        cluster: ClusterCommand,
    },
    /// Print a running cluster's members, partitions and their leaders, as one node sees it.
    Status {
        /// The node's --listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        node: String,
        #[arg(long)]
        json: bool,
    },
    /// Move a node's replicas to the other nodes, then stop it.
    Drain {
        /// The node's --listen address.
        #[arg(long)]
        node: String,
    },
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
    /// Seeded faults against a local cluster of real nodes, checked for lost writes.
    Chaos {
        #[command(subcommand)]
        chaos: ChaosCommand,
    },
}

#[derive(Subcommand)]
enum ChaosCommand {
    /// Runs this binary's nodes behind a fault proxy on 127.SUBNET.x.x for M minutes,
    /// injecting faults of every kind in a seeded order while shoppers write, then checks
    /// that nothing acknowledged was lost or applied twice and prints a summary table.
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Replays a run's schedule; a fresh seed (printed) by default.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=16))]
        nodes: u16,
        /// Fault kinds to draw from, comma-separated (default: every kind).
        #[arg(long, value_delimiter = ',', value_parser = inkling_chaos::FaultKind::parse)]
        kinds: Vec<inkling_chaos::FaultKind>,
        /// Second octet of the loopback addresses the cluster uses.
        #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=254))]
        subnet: u8,
        /// Also print the summary as one JSON object on the last line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Start N node processes on 127.0.0.1..N with the same port, until Ctrl-C.
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 7280)]
        port: u16,
        /// Parent of the nodes' data folders (node-1, node-2, ...).
        #[arg(long, default_value = "data-cluster")]
        data_dir: PathBuf,
        /// Flags for every `inkling serve`, after `--`: `cluster up -- --model none`.
        #[arg(last = true)]
        serve_args: Vec<String>,
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

/// A judged query set and how a node searches it; shared by `eval search` and
/// `train search-ranker`.
#[derive(clap::Args)]
struct SearchDataArgs {
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
    fn read(&self, split: SplitArg) -> anyhow::Result<(SearchData, SearchEval)> {
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
enum SplitArg {
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
    /// Intent classification accuracy on a labelled set written apart from the classifier's
    /// examples.
    Intent {
        /// `intent<TAB>text` lines.
        #[arg(long, default_value = "models/data/intent_eval.tsv")]
        file: PathBuf,
        /// Encoder the classifier embeds with.
        #[arg(long, default_value = "multilingual-e5-small")]
        model: ModelArg,
        /// Folder with the model files that scripts/setup.sh unpacks.
        #[arg(long, env = "INKLING_MODELS_DIR", default_value = ".deps/models")]
        models_dir: PathBuf,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
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
        #[command(flatten)]
        search: SearchDataArgs,
        /// Which judged queries to ask: all, or the half `train search-ranker` fits on, or
        /// the half it holds out.
        #[arg(long, value_enum, default_value = "all")]
        split: SplitArg,
        /// Also write the ranked lists to this file as a TREC run.
        #[arg(long)]
        run: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Probe queries over the demo catalog, each with an expectation for its top results,
    /// through `POST /v1/search`; prints the cases that fail.
    Probe {
        /// `session<TAB>query<TAB>expectation` lines (see cluster/tools/probes/demo.tsv).
        file: PathBuf,
        /// A running node to probe (it must serve the catalog the file was written for);
        /// by default a fresh local node.
        #[arg(long)]
        url: Option<String>,
        /// The fresh node's catalog, as JSON lines (default: the bundled demo catalog).
        #[arg(long, conflicts_with = "url")]
        catalog_file: Option<PathBuf>,
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
        /// Base URLs of running nodes (a cluster's gateways) to evaluate through, comma
        /// separated; a fresh local node when absent.
        #[arg(long, value_delimiter = ',')]
        target: Vec<String>,
        json: bool,
    },
}

async fn run_eval(eval: EvalCommand) -> anyhow::Result<()> {
    match eval {
        EvalCommand::Search {
            search,
            split,
            run,
            json,
        } => {
            let (data, eval) = search.read(split)?;
            let eval = SearchEval {
                run_file: run,
                ..eval
            };
            let (report, _) = inkling_tools::eval::search::evaluate(data, eval).await?;
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
            target,
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
                inkling_tools::eval::sessions::evaluate(data, k, concurrency, actors, target)
                    .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                inkling_tools::eval::sessions::print_table(&report);
            }
            Ok(())
        }
        EvalCommand::Probe {
            file,
            url,
            catalog_file,
            engine,
        } => {
            let cases = inkling_tools::eval::probe::read(&file)?;
            let report = match url {
                Some(url) => {
                    let base = url.trim_end_matches('/').to_string();
                    tokio::task::spawn_blocking(move || {
                        inkling_tools::eval::probe::run(&base, &cases)
                    })
                    .await??
                }
                None => {
                    let catalog = catalog_file.map_or(CatalogSource::Demo, CatalogSource::File);
                    inkling_tools::eval::probe::evaluate(cases, catalog, engine.actor_config()?)
                        .await?
                }
            };
            inkling_tools::eval::probe::print_report(&report);
            if !report.failures.is_empty() {
                anyhow::bail!("{} probe cases fail", report.failures.len());
            }
            Ok(())
        }
        EvalCommand::Intent {
            file,
            model,
            models_dir,
            json,
        } => {
            let model = match model {
                ModelArg::E5 => ModelName::MultilingualE5Small,
                ModelArg::MiniLm => ModelName::AllMiniLmL6V2,
                ModelArg::None => anyhow::bail!("the intent classifier needs an encoder"),
            };
            let queries = inkling_tools::eval::intent::read(&file)?;
            let report = inkling_tools::eval::intent::evaluate(&queries, model, &models_dir)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                inkling_tools::eval::intent::print_report(&report);
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
    /// Search ranker weights from `inkling train search-ranker` (default: convex fusion).
    #[arg(long, env = "INKLING_SEARCH_RANKER")]
    pub search_ranker: Option<PathBuf>,
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
            search_ranker: self
                .search_ranker
                .as_deref()
                .map(SearchRanker::load)
                .transpose()?,
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
    /// A TOML file with any of: node_name, listen, data_dir, seeds, initial_members
    /// (["NAME=ADDR", ...]), roles, actor_addr, cookie, tls_cert, tls_key, tls_ca. Flags
    /// and environment variables override it.
    #[arg(long, env = "INKLING_CONFIG")]
    pub config: Option<PathBuf>,
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
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `inkling serve --config FILE`: the node's identity and place in the cluster.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    node_name: Option<String>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    seeds: Vec<String>,
    #[serde(default)]
    initial_members: Vec<String>,
    roles: Option<String>,
    actor_addr: Option<SocketAddr>,
    cookie: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
}

impl ServeArgs {
    /// Fills every setting the command line left at its default from the config file.
    fn apply_config_file(&mut self, matches: &clap::ArgMatches) -> anyhow::Result<()> {
        let Some(path) = &self.config else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
        let file: NodeFile = toml::from_str(&text)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        let unset = |id: &str| {
            !matches!(
                matches.value_source(id),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            )
        };
        if let (Some(name), true) = (file.node_name, unset("node_name")) {
            self.cluster.node_name = name;
        }
        if let (Some(listen), true) = (file.listen, unset("listen")) {
            self.listen = listen;
        }
        if let (Some(data_dir), true) = (file.data_dir, unset("data_dir")) {
            self.data_dir = data_dir;
        }
        if !file.seeds.is_empty() && unset("seeds") {
            self.cluster.seeds = file.seeds;
        }
        if !file.initial_members.is_empty() && unset("initial_members") {
            self.cluster.initial_members = file
                .initial_members
                .iter()
                .map(|member| parse_member(member))
                .collect::<Result<_, _>>()
                .map_err(|error| anyhow::anyhow!("{}: initial_members: {error}", path.display()))?;
        }
        if let (Some(roles), true) = (file.roles, unset("roles")) {
            self.cluster.roles = parse_roles(&roles)
                .map_err(|error| anyhow::anyhow!("{}: roles: {error}", path.display()))?;
        }
        let cluster = &mut self.cluster;
        for (id, field, value) in [
            ("cookie", &mut cluster.cookie, file.cookie),
            (
                "tls_cert",
                &mut cluster.tls_cert,
                file.tls_cert.map(path_text),
            ),
            ("tls_key", &mut cluster.tls_key, file.tls_key.map(path_text)),
            ("tls_ca", &mut cluster.tls_ca, file.tls_ca.map(path_text)),
        ] {
            if value.is_some() && unset(id) {
                *field = value;
            }
        }
        if let (Some(addr), true) = (file.actor_addr, unset("actor_addr")) {
            self.cluster.actor_addr = Some(addr);
        }
        Ok(())
    }
}

/// Where the node stands in a cluster; without these flags it is a cluster of one.
#[derive(clap::Args, Clone)]
pub struct ClusterArgs {
    /// This node's name, stable across restarts: its raft groups know it by this name.
    #[arg(long, env = "INKLING_NODE_NAME", default_value = "node-1")]
    pub node_name: String,
    /// The nodes the user partitions are first placed on, this one included, as
    /// NAME=ADDR,... (ADDR is the node's --listen address). Only read when the node's data
    /// folder holds no raft state yet.
    #[arg(long, env = "INKLING_INITIAL_MEMBERS", value_delimiter = ',', value_parser = parse_member)]
    pub initial_members: Vec<InitialMember>,
    /// Gossip addresses (the --listen address of running nodes) to join through; the other
    /// initial members by default.
    #[arg(long, env = "INKLING_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// What this node does, any of: gateway (serves the public API), sessions (may vote in
    /// and lead user partitions, so it holds shoppers' sessions), models (runs a model
    /// pool; without it the node embeds through other nodes' pools), index (may vote in
    /// the catalog group). Every node still learns every group's log.
    #[arg(long, env = "INKLING_ROLES", default_value = "gateway,sessions,models,index", value_parser = parse_roles)]
    pub roles: String,
    /// Where the actor mesh (ractor_cluster) listens; the --listen IP and the next port by
    /// default.
    #[arg(long, env = "INKLING_ACTOR_ADDR")]
    pub actor_addr: Option<SocketAddr>,
    /// The address peers reach this node's HTTP (raft) and gossip on, when it is not the
    /// --listen address: behind a NAT or a proxy (the chaos harness puts a fault-injecting
    /// proxy there). Outgoing peer traffic then leaves from the --listen IP.
    #[arg(long, env = "INKLING_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
    /// The address peers dial this node's actor mesh on; --actor-addr by default.
    #[arg(long, env = "INKLING_ADVERTISE_ACTOR")]
    pub advertise_actor: Option<SocketAddr>,
    /// The secret shared by every node of the cluster; required when the node has peers.
    #[arg(long, env = "INKLING_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// PEM certificate chain for mutual TLS on the actor mesh (with --tls-key, --tls-ca).
    #[arg(long, env = "INKLING_TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "INKLING_TLS_KEY")]
    pub tls_key: Option<String>,
    /// PEM certificate of the authority every node's certificate chains to.
    #[arg(long, env = "INKLING_TLS_CA")]
    pub tls_ca: Option<String>,
}

const ROLES: [&str; 4] = ["gateway", "sessions", "models", "index"];

fn parse_roles(text: &str) -> Result<String, String> {
    let roles: Vec<&str> = text.split(',').map(str::trim).collect();
    if let Some(unknown) = roles.iter().find(|role| !ROLES.contains(role)) {
        return Err(format!(
            "`{unknown}` is not a role; roles are {}",
            ROLES.join(", ")
        ));
    }
    Ok(roles.join(","))
}

fn path_text(path: PathBuf) -> String {
    path.display().to_string()
}

impl ClusterArgs {
    fn mesh_tls(&self) -> anyhow::Result<Option<MeshTls>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(MeshTls {
                cert: cert.into(),
                key: key.into(),
                ca: ca.into(),
            })),
            _ => anyhow::bail!(
                "TLS on the actor mesh needs all of --tls-cert, --tls-key and --tls-ca"
            ),
        }
    }
}

fn parse_member(text: &str) -> Result<InitialMember, String> {
    let (name, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=ADDR"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has an empty node name"));
    }
    let addr = addr
        .parse()
        .map_err(|error| format!("`{addr}` is not an address like 127.0.0.2:7280: {error}"))?;
    Ok(InitialMember {
        name: name.to_string(),
        addr,
    })
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
        if !self.cluster.initial_members.is_empty()
            && !self
                .cluster
                .initial_members
                .iter()
                .any(|member| member.name == self.cluster.node_name)
        {
            anyhow::bail!(
                "--initial-members must include this node (--node-name {})",
                self.cluster.node_name
            );
        }
        Ok(NodeOptions {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            catalog,
            actors: ActorConfig {
                session_idle_timeout: Duration::from_secs(self.session_idle_secs.max(1)),
                local_model_pool: self.cluster.roles.split(',').any(|role| role == "models"),
                ..self.engine.actor_config()?
            },
            cluster: ClusterOptions {
                node_name: self.cluster.node_name.clone(),
                seeds: self.cluster.seeds.clone(),
                initial_members: self.cluster.initial_members.clone(),
                roles: self.cluster.roles.clone(),
                actor_addr: self.cluster.actor_addr,
                advertise: self.cluster.advertise,
                advertise_actor: self.cluster.advertise_actor,
                cookie: self.cluster.cookie.clone(),
                tls: self.cluster.mesh_tls()?,
            },
        })
    }
}

pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    // Read before logging starts: the node's name there names this process in traces.
    if let (Command::Serve(args), Some(serve)) =
        (&mut cli.command, matches.subcommand_matches("serve"))
    {
        if let Err(error) = args.apply_config_file(serve) {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    }
    let telemetry = inkling_ops::TelemetryOptions {
        log_format: match cli.log_format {
            LogFormatArg::Text => inkling_ops::LogFormat::Text,
            LogFormatArg::Json => inkling_ops::LogFormat::Json,
        },
        otlp_endpoint: cli.otlp_endpoint.clone(),
        instance: match &cli.command {
            Command::Serve(args) => args.cluster.node_name.clone(),
            _ => "inkling".to_string(),
        },
    };
    let _telemetry = match inkling_ops::init_telemetry(&telemetry) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
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
            Command::Cluster {
                cluster:
                    ClusterCommand::Up {
                        nodes,
                        port,
                        data_dir,
                        serve_args,
                    },
            } => {
                let cluster = inkling_node::local_cluster::LocalCluster {
                    nodes,
                    port,
                    data_dir,
                    serve_args,
                    cookie: inkling_node::random_cookie()?,
                };
                cluster.run().await
            }
            Command::Status { node, json } => inkling_tools::status::show(&node, json),
            Command::Drain { node } => inkling_tools::status::drain(&node),
            Command::Bench { bench } => inkling_tools::bench::run(bench).await,
            Command::Eval { eval } => run_eval(eval).await,
            Command::Train { train } => run_train(train).await,
            Command::Profile { profile } => run_profile(profile),
            // The chaos harness blocks (processes, threads, its proxy's own runtime).
            Command::Chaos { chaos } => tokio::task::spawn_blocking(move || run_chaos(chaos))
                .await
                .map_err(|error| anyhow::anyhow!("the chaos run panicked: {error}"))?,
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

fn run_chaos(command: ChaosCommand) -> anyhow::Result<()> {
    let ChaosCommand::Soak {
        minutes,
        seed,
        nodes,
        kinds,
        subnet,
        json,
    } = command;
    let seed = seed.unwrap_or_else(inkling_domain::now_ms);
    let kinds = if kinds.is_empty() {
        inkling_chaos::FaultKind::ALL.to_vec()
    } else {
        kinds
    };
    let limit = Duration::from_secs(minutes * 60);
    // More faults than the time allows (none is shorter than about 5 s, a hold and a
    // pause): the run stops at the time limit, not when the schedule runs out, and the
    // printed schedule is the one any replay draws. One fault per 10 s left a 30-minute
    // soak 90 s short on a fast build.
    let count = (limit.as_secs() / 5).max(kinds.len() as u64) as usize;
    let schedule = inkling_chaos::schedule::rounds(seed, &kinds, usize::from(nodes), count);
    let binary = std::env::current_exe().context("cannot find this binary to run nodes")?;
    let mut config =
        inkling_chaos::RunConfig::new(binary, subnet, usize::from(nodes), seed, schedule);
    config.time_limit = Some(limit);
    config.workload.shoppers = 8;
    config.workload.users_per_shopper = 25;
    config.failpoints = inkling_actors::FAILPOINTS;
    let report = inkling_chaos::run(&config, &mut std::io::stdout())?;
    println!("{}", report.table());
    for finding in &report.findings {
        println!("finding: {finding}");
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    }
    anyhow::ensure!(
        report.passed(),
        "the chaos checker failed: {}",
        report.failed.join("; ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_members_parse_or_name_the_problem() {
        let cases = [
            ("node-1=127.0.0.1:7280", Ok(("node-1", "127.0.0.1:7280"))),
            ("node-1", Err("is not NAME=ADDR")),
            ("=127.0.0.1:7280", Err("empty node name")),
            ("node-1=localhost", Err("is not an address")),
        ];
        for (text, expected) in cases {
            let parsed = parse_member(text).map(|member| (member.name, member.addr.to_string()));
            match (parsed, expected) {
                (Ok((name, addr)), Ok((want_name, want_addr))) => {
                    assert_eq!(
                        (name.as_str(), addr.as_str()),
                        (want_name, want_addr),
                        "{text}"
                    )
                }
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{text}: {error}"),
                (outcome, _) => panic!("{text}: unexpected {outcome:?}"),
            }
        }
    }

    #[test]
    fn the_config_file_fills_what_the_command_line_left_unset() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "node_name = \"from-file\"\nlisten = \"127.0.0.9:9000\"\ninitial_members = [\"from-file=127.0.0.9:9000\"]\nroles = \"gateway,index\"\ncookie = \"from-file\"\ntls_cert = \"n.pem\"\ntls_key = \"n.key\"\ntls_ca = \"ca.pem\"\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let argv = [
            "inkling",
            "serve",
            "--config",
            config,
            "--listen",
            "127.0.0.8:8000",
        ];
        let matches = Cli::command().get_matches_from(argv);
        let Command::Serve(mut args) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("not serve");
        };
        args.apply_config_file(matches.subcommand_matches("serve").unwrap())
            .unwrap();
        assert_eq!(args.cluster.node_name, "from-file");
        assert_eq!(args.listen.to_string(), "127.0.0.8:8000", "the flag wins");
        assert_eq!(args.cluster.initial_members.len(), 1);
        let options = args.node_options().unwrap();
        assert_eq!(options.cluster.cookie.as_deref(), Some("from-file"));
        assert!(options.cluster.tls.is_some());
        assert!(!options.actors.local_model_pool, "no `models` role");
    }

    #[test]
    fn roles_and_tls_flags_are_checked() {
        let cases: [(&[&str], &str); 3] = [
            (&["--roles", "gateway,cache"], "`cache` is not a role"),
            (
                &["--tls-cert", "n.pem"],
                "needs all of --tls-cert, --tls-key and --tls-ca",
            ),
            (&["--roles", "models", "--tls-ca", "ca.pem"], "needs all of"),
        ];
        for (flags, fragment) in cases {
            let argv = ["inkling", "serve"].iter().chain(flags.iter());
            let error = match Cli::command().try_get_matches_from(argv) {
                Err(error) => error.to_string(),
                Ok(matches) => {
                    let Command::Serve(args) = Cli::from_arg_matches(&matches).unwrap().command
                    else {
                        panic!("not serve");
                    };
                    args.node_options().expect_err("refused").to_string()
                }
            };
            assert!(error.contains(fragment), "{flags:?}: {error}");
        }
    }
}
