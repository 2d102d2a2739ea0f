//! `inkling cluster up`: a local development cluster of node processes, until Ctrl-C,
//! started by the process sandbox the multi-process tests and the chaos harness use.

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
}

pub async fn run(command: ClusterCommand) -> anyhow::Result<()> {
    let ClusterCommand::Up {
        nodes,
        port,
        data_dir,
        serve_args,
    } = command;
    anyhow::ensure!(
        (1..=254).contains(&nodes),
        "--nodes must be between 1 and 254"
    );
    let binary = std::env::current_exe().context("cannot find the inkling binary")?;
    let config = SandboxConfig {
        // node-1, node-2, ... under it survive, so the next `cluster up` resumes them.
        folder: Folder::At(data_dir),
        flags: serve_args,
        // In the environment so `ps` does not show it; a `--cookie` among the flags wins.
        env: vec![("INKLING_COOKIE".to_string(), inkling_node::random_cookie()?)],
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
    inkling_node::shutdown_signal().await;
    tokio::task::spawn_blocking(move || sandbox.stop_all()).await?
}
