//! `inkling eval`: a component measured on a public data set, through a real node where the
//! component needs one.

use std::path::PathBuf;

use clap::Subcommand;
use inkling_actors::ActorConfig;
use inkling_node::CatalogSource;
use inkling_tools::eval::report::Report;
use inkling_tools::eval::search::SearchEval;

use crate::engine::{EngineArgs, ModelArg, load_ranker};
use crate::search_data::{SearchDataArgs, SplitArg};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Intent classification accuracy on a labelled set written apart from the classifier's
    /// examples.
    Intent(IntentArgs),
    /// Brand and product-type extraction on BIEOS-tagged text, with dictionaries from --train.
    Slots(SlotsArgs),
    /// Retrieval quality and speed on BEIR/TREC-style TSV files, through a real node.
    Search(SearchArgs),
    /// Probe queries over the demo catalog, each with an expectation for its top results,
    /// through `POST /v1/search`; prints the cases that fail.
    Probe(ProbeArgs),
    /// Next-item recommendation: train sessions in, P@k and MRR@k on prefix/target cases out.
    Sessions(SessionsArgs),
}

#[derive(clap::Args)]
pub struct IntentArgs {
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
}

#[derive(clap::Args)]
pub struct SlotsArgs {
    #[arg(long)]
    train: PathBuf,
    #[arg(long)]
    test: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    search: SearchDataArgs,
    /// Which judged queries to ask: all, or the half `train search-ranker` fits on, or
    /// the half it holds out.
    #[arg(long, value_enum, default_value = "all")]
    split: SplitArg,
    /// Also write the ranked lists to this file as a TREC run.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Also write `report.json` and a self-contained `report.html` (the metrics against k,
    /// a latency histogram) into this folder.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ProbeArgs {
    /// `session<TAB>query<TAB>expectation` lines (see ops/tools/probes/demo.tsv).
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
}

#[derive(clap::Args)]
pub struct SessionsArgs {
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
    /// Base URLs of running nodes (a cluster's gateways) to evaluate through, comma
    /// separated; a fresh local node when absent.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// Also write `report.json` and a self-contained `report.html` (the metrics against k,
    /// a latency histogram) into this folder.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the report as one line of JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Intent(args) => intent(args),
        EvalCommand::Slots(args) => slots(args),
        EvalCommand::Search(args) => search(args).await,
        EvalCommand::Probe(args) => probe(args).await,
        EvalCommand::Sessions(args) => sessions(args).await,
    }
}

fn intent(args: IntentArgs) -> anyhow::Result<()> {
    let Some(model) = args.model.model_name() else {
        anyhow::bail!("the intent classifier needs an encoder");
    };
    let queries = inkling_tools::eval::intent::read(&args.file)?;
    let report = inkling_tools::eval::intent::evaluate(&queries, model, &args.models_dir)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        inkling_tools::eval::intent::print_report(&report);
    }
    Ok(())
}

fn slots(args: SlotsArgs) -> anyhow::Result<()> {
    let train = inkling_tools::eval::slots::read_bieos(&args.train)?;
    let test = inkling_tools::eval::slots::read_bieos(&args.test)?;
    let report = inkling_tools::eval::slots::evaluate(&train, &test);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        inkling_tools::eval::slots::print_table(&report);
    }
    Ok(())
}

async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let (data, eval) = args.search.read(args.split)?;
    let eval = SearchEval {
        run_file: args.run,
        ..eval
    };
    let (report, _) = inkling_tools::eval::search::evaluate(data, eval).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        inkling_tools::eval::search::print_table(&report);
    }
    if let Some(dir) = &args.report {
        let page = Report {
            title: format!(
                "Search evaluation ({:?}, {} queries)",
                report.mode, report.queries
            ),
            command: command_line(),
            summary: inkling_tools::eval::search::summary(&report),
            curves: report.curves.clone(),
            latencies_ms: &report.latencies_ms,
            json: &report,
        };
        inkling_tools::eval::report::write(dir, &page)?;
    }
    Ok(())
}

async fn probe(args: ProbeArgs) -> anyhow::Result<()> {
    let cases = inkling_tools::eval::probe::read(&args.file)?;
    let report = match args.url {
        Some(url) => {
            let base = url.trim_end_matches('/').to_string();
            tokio::task::spawn_blocking(move || inkling_tools::eval::probe::run(&base, &cases))
                .await??
        }
        None => {
            let catalog = args
                .catalog_file
                .map_or(CatalogSource::Demo, CatalogSource::File);
            inkling_tools::eval::probe::evaluate(cases, catalog, args.engine.actor_config()?)
                .await?
        }
    };
    inkling_tools::eval::probe::print_report(&report);
    if !report.failures.is_empty() {
        anyhow::bail!("{} probe cases fail", report.failures.len());
    }
    Ok(())
}

async fn sessions(args: SessionsArgs) -> anyhow::Result<()> {
    if args.k == 0 || args.k > inkling_gateway::MAX_K {
        anyhow::bail!("--k must be between 1 and {}", inkling_gateway::MAX_K);
    }
    let actors = ActorConfig {
        recommender: load_ranker(args.ranker.as_deref())?,
        ..Default::default()
    };
    let data = inkling_tools::eval::sessions::read(&args.train, &args.test)?;
    let report = inkling_tools::eval::sessions::evaluate(
        data,
        args.k,
        args.concurrency,
        actors,
        args.target,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        inkling_tools::eval::sessions::print_table(&report);
    }
    if let Some(dir) = &args.report {
        let page = Report {
            title: format!("Session recommendation evaluation ({} cases)", report.cases),
            command: command_line(),
            summary: inkling_tools::eval::sessions::summary(&report),
            curves: report.curves.clone(),
            latencies_ms: &report.latencies_ms,
            json: &report,
        };
        inkling_tools::eval::report::write(dir, &page)?;
    }
    Ok(())
}

/// The command as typed, for a report to say how it was made.
fn command_line() -> String {
    let mut words = vec!["inkling".to_string()];
    words.extend(std::env::args().skip(1));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser)]
    struct EvalCli {
        #[command(subcommand)]
        eval: EvalCommand,
    }

    /// `json: bool` without `#[arg(long)]` is a positional argument, and `--json` was
    /// refused; every evaluation that prints a report takes it as a flag.
    #[test]
    fn json_is_a_flag_of_every_report() {
        let cases: [&[&str]; 4] = [
            &["sessions", "--train", "a", "--test", "b", "--json"],
            &["slots", "--train", "a", "--test", "b", "--json"],
            &["intent", "--json"],
            &[
                "search",
                "--corpus",
                "c",
                "--queries",
                "q",
                "--qrels",
                "r",
                "--json",
            ],
        ];
        for args in cases {
            let argv = std::iter::once("eval").chain(args.iter().copied());
            let matches = EvalCli::command()
                .try_get_matches_from(argv)
                .unwrap_or_else(|error| panic!("{args:?}: {error}"));
            let eval = EvalCli::from_arg_matches(&matches).unwrap().eval;
            assert_eq!(json_flag(&eval), Some(true), "{args:?}");
        }
    }

    fn json_flag(eval: &EvalCommand) -> Option<bool> {
        match eval {
            EvalCommand::Intent(args) => Some(args.json),
            EvalCommand::Slots(args) => Some(args.json),
            EvalCommand::Search(args) => Some(args.json),
            EvalCommand::Sessions(args) => Some(args.json),
            EvalCommand::Probe(_) => None,
        }
    }
}
