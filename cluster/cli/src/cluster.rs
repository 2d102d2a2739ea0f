//! `inkling cluster up`: a local development cluster of node processes, until Ctrl-C,
//! started by the process sandbox the multi-process tests and the chaos harness use. The
//! sandbox makes a fresh cluster secret (given to the nodes in their environment) and an
//! admin and a storefront API key, which it prints.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use inkling_sandbox::{Folder, NodeSpec, Sandbox, SandboxConfig};

#[derive(Subcommand)]
pub enum ClusterCommand {
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
    /// Let the leaders place replicas on the node named NAME, which joined with --seeds:
    /// until then it gets no vote and no data.
    Admit {
        name: String,
        #[command(flatten)]
        node: crate::status::NodeArgs,
    },
    /// Print a fresh cluster secret (256 random bits, hex) for INKLING_CLUSTER_SECRET or a
    /// --cluster-secret-file.
    Secret,
    /// Print a fresh API key and the `SCOPE:SHA256` entry a node's --api-keys takes.
    Key {
        /// admin, storefront or metrics.
        #[arg(long)]
        scope: inkling_auth::Scope,
    },
}

pub async fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Up {
            nodes,
            port,
            data_dir,
            serve_args,
        } => up(nodes, port, data_dir, serve_args).await,
        ClusterCommand::Admit { name, node } => {
            let admitted = node.admit(&name)?;
            println!("admitted {admitted}");
            Ok(())
        }
        ClusterCommand::Secret => {
            println!("{}", inkling_auth::ClusterSecret::generate().to_hex());
            Ok(())
        }
        ClusterCommand::Key { scope } => {
            let key = inkling_auth::ApiKey::generate();
            println!("key: {}", key.expose());
            println!("--api-keys entry: {scope}:{}", key.hash().to_hex());
            Ok(())
        }
    }
}

async fn up(
    nodes: usize,
    port: u16,
    data_dir: PathBuf,
    serve_args: Vec<String>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=254).contains(&nodes),
        "--nodes must be between 1 and 254"
    );
    let binary = std::env::current_exe().context("cannot find the inkling binary")?;
    // A local cluster is for trying Inkling: the demo catalog, unless the flags name another.
    let mut serve_args = serve_args;
    if !serve_args
        .iter()
        .any(|arg| arg == "--catalog" || arg.starts_with("--catalog="))
    {
        serve_args.splice(0..0, ["--catalog".to_string(), "demo".to_string()]);
    }
    let config = SandboxConfig {
        // node-1, node-2, ... under it survive, so the next `cluster up` resumes them.
        folder: Folder::At(data_dir),
        flags: serve_args,
        // A first start embeds the demo catalog on the CPU, and a stop waits for the node
        // to flush: both may take minutes on a small machine.
        startup_timeout: Duration::from_secs(3600),
        stop_timeout: Duration::from_secs(600),
        ..SandboxConfig::new(binary)
    };
    let specs = (0..nodes)
        .map(|index| NodeSpec::founder(format!("127.0.0.{}:{port}", index + 1)))
        .collect();
    // Starting and stopping processes blocks: off the async workers.
    let mut sandbox = tokio::task::spawn_blocking(move || Sandbox::start(config, specs)).await??;
    let urls: Vec<&str> = (0..nodes).map(|index| sandbox.url(index)).collect();
    println!("cluster of {nodes} nodes: {}", urls.join(" "));
    // Scripts read these lines; the keys are new at every `cluster up` and shown only here.
    let credentials = sandbox.credentials();
    println!("admin key: {}", credentials.admin_key.expose());
    println!("storefront key: {}", credentials.storefront_key.expose());
    inkling_node::shutdown_signal().await;
    tokio::task::spawn_blocking(move || sandbox.stop_all()).await?
}
