//! The `inkling` command line: `serve`, a local `cluster`, and the offline tools of
//! `inkling-tools` and `inkling-chaos`.
//!
//! `inkling-cli` owns argument parsing and turning flags, environment variables and config
//! files into configuration. It must never hold logic of its own beyond that: every command
//! delegates to a crate that owns the work. Each command family has its module; this one
//! holds only the top-level parser and the dispatch.

mod chaos;
mod cluster;
mod engine;
mod eval;
mod profile;
mod search_data;
mod serve;
mod status;
mod train;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use serve::{ServeConfig, ServeFlags};

/// How long blocking tasks may run on once a command has finished.
const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_secs(10);

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
    Serve(Box<ServeFlags>),
    /// Local development clusters.
    Cluster {
        #[command(subcommand)]
        cluster: cluster::ClusterCommand,
    },
    /// Print a running cluster's members, partitions and their leaders, as one node sees it.
    Status(status::StatusArgs),
    /// Move a node's replicas to the other nodes, then stop it.
    Drain(status::DrainArgs),
    /// Run a benchmark and print a table.
    Bench {
        #[command(subcommand)]
        bench: inkling_tools::bench::BenchCommand,
    },
    /// Evaluate a component on a public data set.
    Eval {
        #[command(subcommand)]
        eval: eval::EvalCommand,
    },
    /// Fit a model from logged data.
    Train {
        #[command(subcommand)]
        train: train::TrainCommand,
    },
    /// Offline jobs over stored profiles.
    Profile {
        #[command(subcommand)]
        profile: profile::ProfileCommand,
    },
    /// Seeded faults against a local cluster of real nodes, checked for lost writes.
    Chaos {
        #[command(subcommand)]
        chaos: chaos::ChaosCommand,
    },
}

/// The whole command line, with `serve`'s flags described by where else each setting may
/// come from.
fn command() -> clap::Command {
    Cli::command().mut_subcommand("serve", serve::help_with_sources)
}

pub fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    // Read before logging starts: the node's name there names this process in traces.
    let serve_config = match &cli.command {
        Command::Serve(flags) => match ServeConfig::load(flags) {
            Ok(config) => Some(config),
            Err(error) => return failure(error),
        },
        _ => None,
    };
    let telemetry = inkling_ops::TelemetryOptions {
        log_format: match cli.log_format {
            LogFormatArg::Text => inkling_ops::LogFormat::Text,
            LogFormatArg::Json => inkling_ops::LogFormat::Json,
        },
        otlp_endpoint: cli.otlp_endpoint.clone(),
        instance: serve_config
            .as_ref()
            .map_or_else(|| "inkling".to_string(), |config| config.node_name.clone()),
    };
    let _telemetry = match inkling_ops::init_telemetry(&telemetry) {
        Ok(guard) => guard,
        Err(error) => return failure(error),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(dispatch(cli.command, serve_config));
    // Dropping a runtime waits for every blocking task without limit; a stopped node whose
    // storage is synced must exit even if one is still stuck on a disk or a lock.
    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failure(error),
    }
}

/// Runs `command`; `serve_config` is `serve`'s configuration when `main` has read it.
async fn dispatch(command: Command, serve_config: Option<ServeConfig>) -> anyhow::Result<()> {
    match command {
        Command::Serve(flags) => {
            let config = match serve_config {
                Some(config) => config,
                None => ServeConfig::load(&flags)?,
            };
            serve::run(config).await
        }
        Command::Cluster { cluster } => cluster::run(cluster).await,
        Command::Status(args) => status::show(args),
        Command::Drain(args) => status::drain(args),
        Command::Bench { bench } => inkling_tools::bench::run(bench).await,
        Command::Eval { eval } => eval::run(eval).await,
        Command::Train { train } => train::run(train).await,
        Command::Profile { profile } => profile::run(profile),
        // The chaos harness blocks (processes, threads, its proxy's own runtime).
        Command::Chaos { chaos } => tokio::task::spawn_blocking(move || chaos::run(chaos))
            .await
            .map_err(|error| anyhow::anyhow!("the chaos run panicked: {error}"))?,
    }
}

fn failure(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    /// Commands that once failed to parse, each with what it must parse into.
    #[test]
    fn documented_command_lines_parse() {
        let cases: [&[&str]; 9] = [
            &["eval", "sessions", "--train", "a", "--test", "b", "--json"],
            &["eval", "slots", "--train", "a", "--test", "b", "--json"],
            &["status", "--node", "127.0.0.1:7280", "--json"],
            &["node", "--listen", "127.0.0.2:7280", "--roles", "gateway"],
            &["cluster", "up", "--nodes", "3", "--", "--model", "none"],
            &["profile", "build", "--json"],
            &["cluster", "admit", "node-4", "--node", "127.0.0.1:7280"],
            &["cluster", "secret"],
            &["cluster", "key", "--scope", "storefront"],
        ];
        for args in cases {
            let argv = std::iter::once("inkling").chain(args.iter().copied());
            if let Err(error) = command().try_get_matches_from(argv) {
                panic!("{args:?}: {error}");
            }
        }
    }
}
