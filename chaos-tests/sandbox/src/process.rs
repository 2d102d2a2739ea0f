//! One node process: started with its stdout read by a thread that watches for the
//! "listening" line, signalled by its pid, killed when dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use anyhow::Context;
pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// What a node prints on stdout once it serves, followed by its base URL: scripts and
/// tests learn the port of a node started on port 0 from it.
const LISTENING: &str = "inkling listening on ";

pub(crate) struct NodeProcess {
    child: Child,
    /// The base URL from the "listening" line, once printed.
    listening: Receiver<String>,
    paused: bool,
}

/// The nodes of a sandbox share this machine's cores, and libtorch's OpenMP threads by
/// default spin for a while after each parallel region, burning CPU the other nodes need:
/// three nodes with the default encoder used 1:40 of CPU each through a start and a 30 s
/// load, 0:45 when they wait passively (docs/benchmarks.md). libgomp reads this when it
/// loads, before `main`, so the parent sets it for the child. An operator's own setting
/// wins.
const OMP_WAIT_POLICY: &str = "OMP_WAIT_POLICY";

impl NodeProcess {
    /// Starts `binary args` with `env`; its stderr goes to `log` (appended) or to ours,
    /// its stdout likewise once read for the "listening" line.
    pub(crate) fn spawn(
        binary: &Path,
        args: &[String],
        env: impl Iterator<Item = (String, String)>,
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let (stderr, echo) = match log {
            Some(path) => (Stdio::from(open_log(path)?), Some(open_log(path)?)),
            None => (Stdio::inherit(), None),
        };
        let mut command = Command::new(binary);
        if std::env::var_os(OMP_WAIT_POLICY).is_none() {
            command.env(OMP_WAIT_POLICY, "PASSIVE");
        }
        let mut child = command
            .args(args)
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let stdout = child.stdout.take().context("the node's stdout")?;
        let (sender, listening) = mpsc::channel();
        std::thread::spawn(move || {
            let mut echo = echo;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match &mut echo {
                    Some(file) => {
                        let _ = writeln!(file, "{line}");
                    }
                    None => println!("{line}"),
                }
                if let Some(url) = line.strip_prefix(LISTENING) {
                    let _ = sender.send(url.trim().to_string());
                }
            }
        });
        Ok(Self {
            child,
            listening,
            paused: false,
        })
    }

    /// The base URL the node printed once it listens, if it does within `wait`.
    pub(crate) fn listening(&self, wait: Duration) -> Option<String> {
        self.listening.recv_timeout(wait).ok()
    }

    /// The exit status, once the process has exited.
    pub(crate) fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child.try_wait().context("cannot wait for a node")
    }

    pub(crate) fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    pub(crate) fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal)
            .with_context(|| format!("cannot send {signal} to process {pid}"))
    }

    pub(crate) fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    pub(crate) fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// SIGKILL, and waits until the process is gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.paused = false;
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}
