//! A sandbox of real node processes for failure tests, in the spirit of quickwit's cluster
//! sandbox: each node is the real `inkling` binary in its own process, talking real TCP,
//! with its data in a real folder, so tests can `kill -9` it and start it again.
//!
//! This crate only drives processes from the outside; it must never reach into a node's
//! internals, so what it proves holds for the binary operators run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a node may take to load the demo catalog and start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct NodeProcess {
    child: Child,
    pub base_url: String,
}

impl NodeProcess {
    /// Starts `binary serve` on `data_dir` with the demo catalog and waits until it listens.
    /// The node runs without an encoder: these tests are about durability, and embedding the
    /// demo catalog at every start would only slow them down.
    pub fn start(binary: &Path, data_dir: &Path) -> Self {
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--catalog",
                "demo",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(["--model", "none"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node process");
        let stdout = child.stdout.take().expect("node stdout");
        let (address_sender, address) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("inkling listening on ") {
                    let _ = address_sender.send(url.trim().to_string());
                }
            }
        });
        let base_url = address
            .recv_timeout(STARTUP_TIMEOUT)
            .expect("node printed its address before the startup timeout");
        Self { child, base_url }
    }

    /// SIGKILL: no shutdown hook, no flush, exactly what a crashed machine does.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("kill node");
        let _ = self.child.wait();
    }

    pub fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build()
    }

    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        Self::agent()
            .get(&format!("{}{path}", self.base_url))
            .call()
            .map_err(|error| error.to_string())?
            .into_json()
            .map_err(|error| error.to_string())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data folder for one test, removed afterwards.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("node");
    (dir, path)
}
