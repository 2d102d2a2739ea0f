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
use std::time::{Duration, Instant};

/// How long a node may take to load the demo catalog and start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What one node runs with beyond the defaults: extra flags, and environment variables
/// (`FAILPOINTS`, read by the test build of the binary).
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    pub flags: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl NodeSpec {
    pub fn flags(flags: Vec<String>) -> Self {
        Self {
            flags,
            env: Vec::new(),
        }
    }
}

pub struct NodeProcess {
    child: Child,
    pub base_url: String,
}

impl NodeProcess {
    /// Starts `binary serve` on `data_dir` and waits until it listens. Unless `extra` says
    /// otherwise, the node loads the demo catalog and runs without an encoder: these tests
    /// are about durability, and embedding the demo catalog at every start would only slow
    /// them down.
    pub fn start(binary: &Path, data_dir: &Path) -> Self {
        Self::start_with(binary, data_dir, "127.0.0.1:0", &NodeSpec::default())
    }

    /// Starts `binary serve` listening on `listen`, with the flags and environment of `spec`.
    pub fn start_with(binary: &Path, data_dir: &Path, listen: &str, spec: &NodeSpec) -> Self {
        let extra = &spec.flags;
        // The defaults, unless `extra` sets them.
        let defaults: Vec<&str> = [("--catalog", "demo"), ("--model", "none")]
            .into_iter()
            .filter(|(flag, _)| !extra.iter().any(|given| given == flag))
            .flat_map(|(flag, value)| [flag, value])
            .collect();
        let mut child = Command::new(binary)
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(defaults)
            .args(extra)
            .env("RUST_LOG", "warn,openraft=off")
            .envs(spec.env.iter().cloned())
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

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends a signal by name (`STOP` freezes the process with its sockets open, `CONT`
    /// resumes it).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build()
    }

    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        get_json(&self.base_url, path)
    }
}

pub fn get_json(base_url: &str, path: &str) -> Result<serde_json::Value, String> {
    NodeProcess::agent()
        .get(&format!("{base_url}{path}"))
        .call()
        .map_err(|error| error.to_string())?
        .into_json()
        .map_err(|error| error.to_string())
}

pub fn post_json(
    base_url: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    NodeProcess::agent()
        .post(&format!("{base_url}{path}"))
        .send_json(body)
        .map_err(|error| error.to_string())?
        .into_json()
        .map_err(|error| error.to_string())
}

/// Polls `probe` until it answers `Some`, or panics naming `what` at the deadline.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Real node processes forming one cluster on loopback addresses 127.0.N.1, 127.0.N.2, ...
/// with the same port, each with its own data folder.
pub struct ClusterSandbox {
    binary: PathBuf,
    /// Flags every node gets: the cluster's cookie.
    common_args: Vec<String>,
    _folder: tempfile::TempDir,
    members: Vec<SandboxMember>,
    nodes: Vec<Option<NodeProcess>>,
}

struct SandboxMember {
    name: String,
    listen: String,
    data_dir: PathBuf,
    /// Flags and environment for this node alone (its roles, say).
    spec: NodeSpec,
}

impl ClusterSandbox {
    /// Starts `size` nodes on 127.0.`subnet`.x; tests running at once use distinct subnets.
    pub fn start(binary: &Path, subnet: u8, size: usize) -> Self {
        Self::start_with(binary, subnet, vec![NodeSpec::default(); size])
    }

    /// Starts one node per entry of `specs`, each with its own flags and environment.
    pub fn start_with(binary: &Path, subnet: u8, specs: Vec<NodeSpec>) -> Self {
        let folder = tempfile::tempdir().expect("temporary folder");
        let port = free_port(&format!("127.0.{subnet}.1"));
        let size = specs.len();
        let members: Vec<SandboxMember> = specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| SandboxMember {
                name: format!("node-{}", index + 1),
                listen: format!("127.0.{subnet}.{}:{port}", index + 1),
                data_dir: folder.path().join(format!("node-{}", index + 1)),
                spec,
            })
            .collect();
        let cookie = format!("sandbox-{}-{subnet}", std::process::id());
        let common_args = vec!["--cookie".to_string(), cookie];
        let mut sandbox = Self {
            binary: binary.to_path_buf(),
            common_args,
            _folder: folder,
            members,
            nodes: Vec::new(),
        };
        // Start every process first: each waits for its peers only once it runs.
        let starting: Vec<_> = (0..size)
            .map(|index| {
                let (binary, listen, data_dir, spec) = sandbox.launch_args(index);
                std::thread::spawn(move || {
                    NodeProcess::start_with(&binary, &data_dir, &listen, &spec)
                })
            })
            .collect();
        sandbox.nodes = starting
            .into_iter()
            .map(|started| Some(started.join().expect("node started")))
            .collect();
        sandbox.wait_until_led();
        sandbox.wait_until_meshed();
        sandbox
    }

    fn launch_args(&self, index: usize) -> (PathBuf, String, PathBuf, NodeSpec) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|member| format!("{}={}", member.name, member.listen))
            .collect();
        let member = &self.members[index];
        let mut extra = vec![
            "--node-name".to_string(),
            member.name.clone(),
            "--initial-members".to_string(),
            initial.join(","),
        ];
        extra.extend(self.common_args.iter().cloned());
        extra.extend(member.spec.flags.iter().cloned());
        let spec = NodeSpec {
            flags: extra,
            env: member.spec.env.clone(),
        };
        (
            self.binary.clone(),
            member.listen.clone(),
            member.data_dir.clone(),
            spec,
        )
    }

    pub fn url(&self, index: usize) -> String {
        format!("http://{}", self.members[index].listen)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn node(&self, index: usize) -> &NodeProcess {
        self.nodes[index].as_ref().expect("node is running")
    }

    /// Indexes of the nodes whose processes run.
    pub fn running(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|index| self.nodes[*index].is_some())
            .collect()
    }

    /// Starts one more node that joins the running cluster through node 0's address, and
    /// answers its index.
    pub fn join(&mut self) -> usize {
        let index = self.members.len();
        let listen = self.members[0]
            .listen
            .replace(".1:", &format!(".{}:", index + 1));
        let member = SandboxMember {
            name: format!("node-{}", index + 1),
            listen,
            data_dir: self._folder.path().join(format!("node-{}", index + 1)),
            spec: NodeSpec::default(),
        };
        let mut extra = vec![
            "--node-name".to_string(),
            member.name.clone(),
            "--seeds".to_string(),
            self.members[0].listen.clone(),
        ];
        extra.extend(self.common_args.iter().cloned());
        let spec = NodeSpec::flags(extra);
        let node = NodeProcess::start_with(&self.binary, &member.data_dir, &member.listen, &spec);
        self.members.push(member);
        self.nodes.push(Some(node));
        index
    }

    /// Asks node `index` to drain and waits until its process has exited.
    pub fn drain(&mut self, index: usize, timeout: Duration) {
        let url = format!("{}/internal/drain", self.url(index));
        NodeProcess::agent()
            .post(&url)
            .call()
            .expect("drain request answered");
        let node = self.nodes[index].as_mut().expect("node is running");
        wait_for("the drained node to exit", timeout, || {
            node.has_exited().then_some(())
        });
        self.nodes[index] = None;
    }

    pub fn kill_hard(&mut self, index: usize) {
        if let Some(node) = self.nodes[index].take() {
            node.kill_hard();
        }
    }

    /// The index of the node whose listen address is `addr`.
    pub fn index_of(&self, addr: &str) -> usize {
        self.members
            .iter()
            .position(|member| member.listen == addr)
            .unwrap_or_else(|| panic!("{addr} is not a member"))
    }

    /// The cluster's status as node `index` sees it.
    pub fn status(&self, index: usize) -> Result<serde_json::Value, String> {
        get_json(&self.url(index), "/internal/status")
    }

    /// The address of the leader of `partition` as node `index` sees it.
    pub fn leader_of(&self, index: usize, partition: u64) -> Option<String> {
        let status = self.status(index).ok()?;
        status["partitions"]
            .as_array()?
            .iter()
            .find(|entry| entry["partition"].as_u64() == Some(partition))?["leader"]
            .as_str()
            .map(str::to_string)
    }

    /// A user whose partition node `leader` leads, as node `observer` sees it.
    pub fn user_led_by(&self, leader: usize, observer: usize) -> String {
        let leader_url = self.url(leader);
        (0..10_000)
            .map(|n| format!("shopper-{n}"))
            .find(|user| {
                let partition = u64::from(inkling_cluster::partition_of(user));
                self.leader_of(observer, partition)
                    .is_some_and(|addr| leader_url.ends_with(&addr))
            })
            .expect("the node leads some partition")
    }

    /// Waits until every running node sees a leader for every partition it holds.
    pub fn wait_until_led(&self) {
        for index in self.running() {
            wait_for("every partition to elect a leader", STARTUP_TIMEOUT, || {
                let status = self.status(index).ok()?;
                let partitions = status["partitions"].as_array()?;
                let led = partitions.iter().all(|entry| entry["leader"].is_string());
                (led && !partitions.is_empty()).then_some(())
            });
        }
    }
}

impl ClusterSandbox {
    /// Waits until every running node has an actor-mesh session with every other one.
    pub fn wait_until_meshed(&self) {
        let running = self.running();
        for index in &running {
            wait_for("every node to join the actor mesh", STARTUP_TIMEOUT, || {
                let status = self.status(*index).ok()?;
                let peers = status["mesh_peers"].as_array()?.len();
                (peers + 1 >= running.len()).then_some(())
            });
        }
    }
}

fn free_port(host: &str) -> u16 {
    let listener = std::net::TcpListener::bind(format!("{host}:0")).expect("bind a free port");
    listener.local_addr().expect("local address").port()
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
