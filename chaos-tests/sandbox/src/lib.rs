//! A sandbox of real `inkling serve` processes on loopback addresses, in the spirit of
//! quickwit's cluster sandbox: each node is the real binary in its own process, with its
//! own data folder, ports, flags and environment, so a caller can `kill -9` it, freeze it,
//! stop it and start it again on the same data.
//!
//! `inkling-sandbox` owns the node processes: how they are started (the `serve` command
//! line, the data folder, how founders and joiners find each other), when they are ready
//! (their "listening" line, waited for until a deadline), their signals (kill, stop,
//! pause, resume), their logs (inherited, or one file per node), and that none outlives
//! the sandbox. `inkling cluster up`, the chaos harness, the multi-process tests and the
//! cluster benchmarks start nodes through it.
//!
//! It also holds the sandbox's credentials: one cluster secret, given to every node in its
//! environment (never on its command line, which `ps` shows), and an admin and a
//! storefront API key, whose hashes every node gets with `--api-keys`.
//!
//! It drives processes from outside and must never know about a node's internals: no
//! actors, storage, models, raft or HTTP API. What a caller waits for beyond "the process
//! listens" (every partition led, a mesh complete) it checks itself, polling with
//! [`wait_until`].

mod process;

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use inkling_auth::{ApiKey, ClusterSecret};

use crate::process::NodeProcess;
pub use crate::process::Signal;

/// How far above its public port a node's peer plane listens by default (the actor mesh
/// has the port between).
pub const PEER_PORT_OFFSET: u16 = 2;

/// How often [`wait_until`] and the sandbox's own waits poll.
const POLL: Duration = Duration::from_millis(50);

/// What every node of a sandbox shares.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `inkling` binary (any build whose command line has `serve`).
    pub binary: PathBuf,
    /// Where the nodes' data folders (`node-N/`) and logs (`node-N.log`) go.
    pub folder: Folder,
    /// Flags every node gets after the sandbox's own (a catalog, say).
    pub flags: Vec<String>,
    /// Environment every node gets (`RUST_LOG`, `FAILPOINTS`).
    pub env: Vec<(String, String)>,
    pub logs: Logs,
    /// How long a node may take from its start to its "listening" line.
    pub startup_timeout: Duration,
    /// How long a node asked to stop (SIGTERM) may take before it is killed.
    pub stop_timeout: Duration,
    pub credentials: Credentials,
}

/// What the sandbox's nodes and clients authenticate with; fresh for every sandbox.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub secret: ClusterSecret,
    pub admin_key: ApiKey,
    pub storefront_key: ApiKey,
}

impl Credentials {
    pub fn generate() -> Self {
        Self {
            secret: ClusterSecret::generate(),
            admin_key: ApiKey::generate(),
            storefront_key: ApiKey::generate(),
        }
    }

    /// The value of `--api-keys`: the hashes of both keys.
    pub fn api_keys_flag(&self) -> String {
        format!(
            "admin:{},storefront:{}",
            self.admin_key.hash().to_hex(),
            self.storefront_key.hash().to_hex()
        )
    }
}

impl SandboxConfig {
    /// A temporary folder, inherited logs, 60 s to start and 30 s to stop.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            folder: Folder::Temporary,
            flags: Vec::new(),
            env: Vec::new(),
            logs: Logs::Inherit,
            startup_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(30),
            credentials: Credentials::generate(),
        }
    }
}

/// Where the sandbox keeps its nodes' data.
#[derive(Debug, Clone)]
pub enum Folder {
    /// A fresh temporary folder, removed with the sandbox unless kept
    /// ([`Sandbox::keep_folder`]).
    Temporary,
    /// A folder that outlives the sandbox, so a later sandbox resumes the nodes' state.
    At(PathBuf),
}

/// Where the nodes' output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// The sandbox's own stdout and stderr.
    Inherit,
    /// `node-N.log` in the sandbox's folder, appended to across restarts.
    Files,
}

/// How a node finds the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joining {
    /// A node of one: no membership flags.
    Alone,
    /// One of the founders: `--initial-members` names every founder of the sandbox.
    Founder,
    /// Joins a running cluster through these nodes (`--seeds`, their peer addresses).
    Seeds(Vec<usize>),
}

/// One node: where it listens and what it runs with beyond the sandbox's defaults.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// `--listen`, the public API; port 0 picks a free port at every start, learnt from
    /// the node's output. The node's peer plane listens two ports above it.
    pub listen: String,
    /// Where peers reach its peer plane (`--advertise`), when not where it listens
    /// (behind a proxy).
    pub advertise: Option<String>,
    pub joining: Joining,
    /// Flags for this node alone, after the sandbox's (its roles, say).
    pub flags: Vec<String>,
    /// Environment for this node alone, after the sandbox's.
    pub env: Vec<(String, String)>,
}

impl NodeSpec {
    /// A founder listening on `listen`, with no flags of its own.
    pub fn founder(listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            advertise: None,
            joining: Joining::Founder,
            flags: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A node of one listening on `listen`.
    pub fn alone(listen: impl Into<String>) -> Self {
        Self {
            joining: Joining::Alone,
            ..Self::founder(listen)
        }
    }

    /// Where peers reach this node: the advertised address, or the node's default peer
    /// address, two ports above `listen`.
    fn peer_addr(&self) -> String {
        if let Some(advertise) = &self.advertise {
            return advertise.clone();
        }
        match self.listen.rsplit_once(':') {
            Some((ip, port)) => match port.parse::<u16>() {
                Ok(0) | Err(_) => self.listen.clone(),
                Ok(port) => format!("{ip}:{}", port.saturating_add(PEER_PORT_OFFSET)),
            },
            None => self.listen.clone(),
        }
    }
}

struct Member {
    name: String,
    spec: NodeSpec,
    /// The base URL of its HTTP API: from `listen`, then from its "listening" line.
    url: String,
    process: Option<NodeProcess>,
}

/// Node processes that one owner starts and stops; every process still running is killed
/// when the sandbox is dropped.
pub struct Sandbox {
    config: SandboxConfig,
    folder: PathBuf,
    /// Holds the temporary folder; none for [`Folder::At`].
    temporary: Option<tempfile::TempDir>,
    members: Vec<Member>,
}

impl Sandbox {
    /// A sandbox with no nodes yet: its folder exists, nothing runs.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Self> {
        let (folder, temporary) = match &config.folder {
            Folder::Temporary => {
                let dir = tempfile::tempdir().context("cannot create the sandbox folder")?;
                (dir.path().to_path_buf(), Some(dir))
            }
            Folder::At(path) => {
                std::fs::create_dir_all(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                (path.clone(), None)
            }
        };
        Ok(Self {
            config,
            folder,
            temporary,
            members: Vec::new(),
        })
    }

    /// Starts one node per spec, all at once, and waits until every one listens.
    pub fn start(config: SandboxConfig, specs: Vec<NodeSpec>) -> anyhow::Result<Self> {
        let mut sandbox = Self::new(config)?;
        for spec in specs {
            sandbox.add(spec);
        }
        sandbox.start_all()?;
        Ok(sandbox)
    }

    /// Registers a node, `node-N` for the Nth, without starting it; answers its index.
    pub fn add(&mut self, spec: NodeSpec) -> usize {
        let index = self.members.len();
        self.members.push(Member {
            name: format!("node-{}", index + 1),
            url: format!("http://{}", spec.listen),
            spec,
            process: None,
        });
        index
    }

    /// Starts every node that is not running, all before waiting for any (a founder waits
    /// for its peers once it runs), then waits until each listens.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        let stopped: Vec<usize> = (0..self.len())
            .filter(|index| !self.is_running(*index))
            .collect();
        for index in &stopped {
            self.spawn(*index)?;
        }
        for index in stopped {
            self.wait_listening(index)?;
        }
        Ok(())
    }

    /// Starts node `index` on its data folder (again, after a kill or a stop) and waits
    /// until it listens; a running node is left alone.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        if self.is_running(index) {
            return Ok(());
        }
        self.spawn(index)?;
        self.wait_listening(index)
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let args = self.command_line(index);
        let member = &self.members[index];
        let secret = (
            inkling_auth::secret::SECRET_ENV.to_string(),
            self.config.credentials.secret.to_hex(),
        );
        let env = std::iter::once(secret)
            .chain(self.config.env.iter().cloned())
            .chain(member.spec.env.iter().cloned());
        let log = match self.config.logs {
            Logs::Inherit => None,
            Logs::Files => Some(self.log_path(index)),
        };
        let process = NodeProcess::spawn(&self.config.binary, &args, env, log.as_deref())
            .with_context(|| format!("cannot start {}", member.name))?;
        self.members[index].process = Some(process);
        Ok(())
    }

    /// `serve` and the flags the sandbox gives node `index`, then the shared and its own.
    fn command_line(&self, index: usize) -> Vec<String> {
        let member = &self.members[index];
        let spec = &member.spec;
        let mut args = vec!["serve".to_string(), "--listen".into(), spec.listen.clone()];
        if let Some(advertise) = &spec.advertise {
            args.extend(["--advertise".into(), advertise.clone()]);
        }
        args.extend(["--node-name".into(), member.name.clone()]);
        args.extend(["--api-keys".into(), self.config.credentials.api_keys_flag()]);
        args.extend([
            "--data-dir".into(),
            self.data_dir(index).display().to_string(),
        ]);
        match &spec.joining {
            Joining::Alone => {}
            Joining::Founder => {
                args.extend(["--initial-members".into(), self.initial_members()]);
            }
            Joining::Seeds(seeds) => {
                let seeds: Vec<String> = seeds
                    .iter()
                    .map(|seed| self.members[*seed].spec.peer_addr())
                    .collect();
                args.extend(["--seeds".into(), seeds.join(",")]);
            }
        }
        args.extend(self.config.flags.iter().cloned());
        args.extend(spec.flags.iter().cloned());
        args
    }

    /// `NAME=ADDR,...` for every founder.
    fn initial_members(&self) -> String {
        self.members
            .iter()
            .filter(|member| member.spec.joining == Joining::Founder)
            .map(|member| format!("{}={}", member.name, member.spec.peer_addr()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits for node `index`'s "listening" line, failing early if the process exits.
    fn wait_listening(&mut self, index: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.config.startup_timeout;
        let log = self.log_hint(index);
        let member = &mut self.members[index];
        let process = member
            .process
            .as_mut()
            .with_context(|| format!("{} is not running", member.name))?;
        loop {
            if let Some(url) = process.listening(POLL) {
                member.url = url;
                return Ok(());
            }
            if let Some(status) = process.exited()? {
                member.process = None;
                bail!("{} exited ({status}) before it listened{log}", member.name);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start listening within {:?}{log}",
                    member.name,
                    self.config.startup_timeout
                );
            }
        }
    }

    fn log_hint(&self, index: usize) -> String {
        match self.config.logs {
            Logs::Files => format!("; see {}", self.log_path(index).display()),
            Logs::Inherit => String::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// `node-N`, the node's `--node-name`.
    pub fn name(&self, index: usize) -> &str {
        &self.members[index].name
    }

    /// The base URL of node `index`'s HTTP API (`http://ADDR`), running or not.
    pub fn url(&self, index: usize) -> &str {
        &self.members[index].url
    }

    /// Where node `index`'s peers reach it.
    pub fn peer_addr(&self, index: usize) -> String {
        self.members[index].spec.peer_addr()
    }

    /// What the nodes and their clients authenticate with.
    pub fn credentials(&self) -> &Credentials {
        &self.config.credentials
    }

    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.folder.join(&self.members[index].name)
    }

    /// The node's log file (with [`Logs::Files`]).
    pub fn log_path(&self, index: usize) -> PathBuf {
        self.folder
            .join(format!("{}.log", self.members[index].name))
    }

    /// Whether node `index`'s process runs (paused included).
    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].process.is_some()
    }

    pub fn is_paused(&self, index: usize) -> bool {
        self.members[index]
            .process
            .as_ref()
            .is_some_and(NodeProcess::is_paused)
    }

    /// Indexes of the nodes whose processes run (paused ones included).
    pub fn running(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|index| self.is_running(*index))
            .collect()
    }

    /// SIGKILL: no shutdown hook, no flush, what a crashed machine does.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.members[index].process.take() {
            process.kill();
        }
    }

    /// SIGTERM, then waits for the node to stop on its own; killed after the stop timeout.
    pub fn stop(&mut self, index: usize) -> anyhow::Result<()> {
        if !self.is_running(index) {
            return Ok(());
        }
        self.ask_to_stop(index)?;
        let timeout = self.config.stop_timeout;
        if !self.wait_exit(index, timeout)? {
            bail!("{} did not stop within {timeout:?}", self.name(index));
        }
        Ok(())
    }

    /// Stops every running node: SIGTERM to all, then waits for each, killing those still
    /// running after the stop timeout.
    pub fn stop_all(&mut self) -> anyhow::Result<()> {
        let running = self.running();
        for index in &running {
            self.ask_to_stop(*index)?;
        }
        let timeout = self.config.stop_timeout;
        let mut killed = Vec::new();
        for index in running {
            if !self.wait_exit(index, timeout)? {
                killed.push(self.name(index).to_string());
            }
        }
        if !killed.is_empty() {
            bail!("{} did not stop within {timeout:?}", killed.join(", "));
        }
        Ok(())
    }

    /// SIGTERM, after SIGCONT for a paused node, which would not see it otherwise.
    fn ask_to_stop(&mut self, index: usize) -> anyhow::Result<()> {
        let process = self.process(index)?;
        if process.is_paused() {
            process.resume()?;
        }
        process.signal(Signal::SIGTERM)
    }

    /// SIGSTOP: the process freezes with its sockets open.
    pub fn pause(&mut self, index: usize) -> anyhow::Result<()> {
        self.process(index)?.pause()
    }

    /// SIGCONT after [`Sandbox::pause`].
    pub fn resume(&mut self, index: usize) -> anyhow::Result<()> {
        self.process(index)?.resume()
    }

    /// Sends `signal` to node `index`'s process.
    pub fn signal(&mut self, index: usize, signal: Signal) -> anyhow::Result<()> {
        self.process(index)?.signal(signal)
    }

    fn process(&mut self, index: usize) -> anyhow::Result<&mut NodeProcess> {
        let member = &mut self.members[index];
        member
            .process
            .as_mut()
            .with_context(|| format!("{} is not running", member.name))
    }

    /// Waits until node `index`'s process exits on its own (a drain, a stop): true when it
    /// did within `timeout`, false when it was killed at the deadline. Either way the node
    /// no longer runs.
    pub fn wait_exit(&mut self, index: usize, timeout: Duration) -> anyhow::Result<bool> {
        let exited = self.exited_within(index, timeout)?;
        self.kill(index);
        Ok(exited)
    }

    /// Whether node `index` exits within `timeout`; one still running is left running, for
    /// the caller to ask why before it kills it.
    pub fn exited_within(&mut self, index: usize, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + timeout;
        let Some(process) = self.members[index].process.as_mut() else {
            return Ok(true);
        };
        loop {
            if process.exited()?.is_some() {
                self.members[index].process = None;
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Forgets the processes that exited on their own (a node that failed) and answers
    /// their indexes; paused processes are not looked at.
    pub fn reap(&mut self) -> Vec<usize> {
        let mut exited = Vec::new();
        for (index, member) in self.members.iter_mut().enumerate() {
            let gone = member
                .process
                .as_mut()
                .is_some_and(|process| !process.is_paused() && process.has_exited());
            if gone {
                member.process = None;
                exited.push(index);
            }
        }
        exited
    }

    /// The folder holding every node's data and log.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Keeps a temporary folder after the sandbox is dropped, for a post-mortem; answers
    /// its path.
    pub fn keep_folder(&mut self) -> PathBuf {
        if let Some(temporary) = &mut self.temporary {
            temporary.disable_cleanup(true);
        }
        self.folder.clone()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut process) = member.process.take() {
                process.kill();
            }
        }
    }
}

/// Polls `probe` every 50 ms until it answers `Some`, or fails naming `what` once
/// `timeout` has passed.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// `127.0.subnet.host`: every node of a sandbox on its own loopback address, so all may
/// use the same port; sandboxes running at once use distinct subnets.
pub fn loopback(subnet: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, subnet, host))
}

/// A port free on `ip` now.
pub fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}"))?;
    Ok(listener.local_addr()?.port())
}

/// A port free on `ip` whose next two ports are free too: a node's public API, its actor
/// mesh and its peer plane.
pub fn free_port_triple(ip: IpAddr) -> anyhow::Result<u16> {
    for _ in 0..20 {
        let listener = TcpListener::bind((ip, 0))?;
        let port = listener.local_addr()?.port();
        let next_free = |offset: u16| {
            port.checked_add(offset)
                .is_some_and(|next| TcpListener::bind((ip, next)).is_ok())
        };
        if next_free(1) && next_free(PEER_PORT_OFFSET) {
            return Ok(port);
        }
    }
    bail!("no three free ports in a row on {ip}")
}

#[cfg(test)]
mod tests;
