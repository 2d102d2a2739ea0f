//! The `inkling` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use inkling_actors::ActorConfig;

use crate::node::{CatalogSource, NodeOptions};

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
        bench: crate::bench::BenchCommand,
    },
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
    /// Number of index shards.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub shards: u16,
    /// Seconds without traffic after which a session actor is passivated.
    #[arg(long, default_value_t = 600)]
    pub session_idle_secs: u64,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CatalogArg {
    Demo,
    None,
    File,
}

impl ServeArgs {
    pub fn node_options(&self) -> NodeOptions {
        let catalog = match (self.catalog, &self.catalog_file) {
            (CatalogArg::Demo, _) => CatalogSource::Demo,
            (CatalogArg::None, _) => CatalogSource::Empty,
            (CatalogArg::File, Some(path)) => CatalogSource::File(path.clone()),
            (CatalogArg::File, None) => unreachable!("clap requires --catalog-file"),
        };
        NodeOptions {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            catalog,
            actors: ActorConfig {
                shards: usize::from(self.shards),
                session_idle_timeout: Duration::from_secs(self.session_idle_secs.max(1)),
                ..Default::default()
            },
        }
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
            Command::Serve(args) => crate::node::run(args.node_options()).await,
            Command::Bench { bench } => crate::bench::run(bench).await,
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
