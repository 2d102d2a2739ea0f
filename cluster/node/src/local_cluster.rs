//! `inkling cluster up`: N node processes of this binary on 127.0.0.1, 127.0.0.2, ... with
//! the same port, for development. Each gets its own data folder and knows the others as
//! initial members; Ctrl-C stops them all.

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::{Context, Result};

pub struct LocalCluster {
    pub nodes: usize,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Flags passed on to every `inkling serve` (catalog, model, ...).
    pub serve_args: Vec<String>,
    /// The cookie the nodes share, passed in the environment (so `ps` does not show it);
    /// a `--cookie` among `serve_args` wins.
    pub cookie: String,
}

impl LocalCluster {
    pub fn listen(&self, index: usize) -> String {
        format!("127.0.0.{}:{}", index + 1, self.port)
    }

    fn initial_members(&self) -> String {
        (0..self.nodes)
            .map(|index| format!("node-{}={}", index + 1, self.listen(index)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `index` (from 0); its folder survives, so a restart resumes its state.
    pub fn spawn(&self, index: usize) -> Result<Child> {
        let binary = std::env::current_exe().context("cannot find the inkling binary")?;
        let data_dir = self.data_dir.join(format!("node-{}", index + 1));
        Command::new(binary)
            .arg("serve")
            .args(["--listen", &self.listen(index)])
            .args(["--node-name", &format!("node-{}", index + 1)])
            .args(["--initial-members", &self.initial_members()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.serve_args)
            .env("INKLING_COOKIE", &self.cookie)
            .spawn()
            .with_context(|| format!("cannot start node-{}", index + 1))
    }

    /// Starts the nodes and waits for Ctrl-C or SIGTERM, then stops them (SIGTERM, so each
    /// shuts down cleanly) and waits for them.
    pub async fn run(self) -> Result<()> {
        anyhow::ensure!(
            (1..=254).contains(&self.nodes),
            "--nodes must be between 1 and 254"
        );
        let mut children = Vec::new();
        for index in 0..self.nodes {
            match self.spawn(index) {
                Ok(child) => children.push(child),
                Err(error) => {
                    stop_all(&mut children);
                    return Err(error);
                }
            }
        }
        println!(
            "cluster of {} nodes: {}",
            self.nodes,
            (0..self.nodes)
                .map(|index| format!("http://{}", self.listen(index)))
                .collect::<Vec<_>>()
                .join(" ")
        );
        crate::shutdown_signal().await;
        stop_all(&mut children);
        Ok(())
    }
}

fn stop_all(children: &mut [Child]) {
    for child in children.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}
