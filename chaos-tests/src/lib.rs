//! Helpers for the multi-process tests: real `inkling serve` processes in an
//! [`inkling_sandbox::Sandbox`], each the real binary in its own process, talking real TCP,
//! with its data in a real folder, so tests can `kill -9` it and start it again.
//!
//! This crate only drives processes from the outside, over HTTP and signals; it must never
//! reach into a node's internals, so what it proves holds for the binary operators run.

use std::path::Path;
use std::time::Duration;

use inkling_api::{Client, ClientConfig};
use inkling_replication::ClusterStatus;
pub use inkling_sandbox::Credentials;
use inkling_sandbox::{Joining, NodeSpec, Sandbox, SandboxConfig};

/// How long a node may take to load the demo catalog and start listening, and a cluster to
/// elect its leaders and complete its mesh.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one call of a test may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A drain moves replicas before it answers.
const DRAIN_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one node runs with beyond the defaults: extra flags, and environment variables
/// (`FAILPOINTS`, read by the test build of the binary).
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    pub flags: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl NodeOptions {
    pub fn flags(flags: Vec<String>) -> Self {
        Self {
            flags,
            env: Vec::new(),
        }
    }

    /// The node's flags: unless they say otherwise, the node loads the demo catalog and
    /// runs without an encoder. These tests are about durability and routing, and
    /// embedding the demo catalog at every start would only slow them down.
    fn into_spec(self, listen: String, joining: Joining) -> NodeSpec {
        let mut flags: Vec<String> = [("--catalog", "demo"), ("--model", "none")]
            .into_iter()
            .filter(|(flag, _)| !self.flags.iter().any(|given| given == flag))
            .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
            .collect();
        flags.extend(self.flags);
        NodeSpec {
            listen,
            advertise: None,
            joining,
            flags,
            env: self.env,
        }
    }
}

fn config(binary: &Path, flags: Vec<String>) -> SandboxConfig {
    SandboxConfig {
        flags,
        env: vec![("RUST_LOG".to_string(), "warn,openraft=off".to_string())],
        startup_timeout: STARTUP_TIMEOUT,
        ..SandboxConfig::new(binary)
    }
}

/// Polls `probe` until it answers `Some`, or panics naming `what` at the deadline.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    inkling_sandbox::wait_until(what, timeout, probe).unwrap_or_else(|error| panic!("{error}"))
}

/// Real node processes: one cluster on loopback addresses 127.0.N.1, 127.0.N.2, ... with
/// the same port, each with its own data folder; or a single node.
pub struct ClusterSandbox {
    sandbox: Sandbox,
    /// Moved to each node with [`Client::at`].
    client: Client,
}

impl ClusterSandbox {
    /// One node of its own on a free port of 127.0.0.1; its folder survives restarts.
    pub fn single(binary: &Path) -> Self {
        let spec = NodeOptions::default().into_spec("127.0.0.1:0".into(), Joining::Alone);
        let sandbox = Sandbox::start(config(binary, Vec::new()), vec![spec])
            .unwrap_or_else(|error| panic!("{error:#}"));
        Self::around(sandbox)
    }

    /// Starts `size` nodes on 127.0.`subnet`.x; tests running at once use distinct subnets.
    pub fn start(binary: &Path, subnet: u8, size: usize) -> Self {
        Self::start_with(binary, subnet, vec![NodeOptions::default(); size])
    }

    /// Starts one node per entry of `nodes`, each with its own flags and environment, and
    /// waits until every partition is led and the actor mesh is complete.
    pub fn start_with(binary: &Path, subnet: u8, nodes: Vec<NodeOptions>) -> Self {
        Self::start_with_credentials(binary, subnet, nodes, Credentials::generate())
    }

    /// [`Self::start_with`] with credentials the test chose, for a node's environment to
    /// name them (a rotation's accepted secret).
    pub fn start_with_credentials(
        binary: &Path,
        subnet: u8,
        nodes: Vec<NodeOptions>,
        credentials: Credentials,
    ) -> Self {
        let cluster = Self::launch(binary, subnet, nodes, credentials);
        cluster.wait_until_led();
        cluster.wait_until_meshed();
        cluster
    }

    /// [`Self::start_with`], returning once every process listens: for tests of a mesh
    /// that must not form.
    pub fn start_unmeshed(binary: &Path, subnet: u8, nodes: Vec<NodeOptions>) -> Self {
        Self::launch(binary, subnet, nodes, Credentials::generate())
    }

    fn launch(
        binary: &Path,
        subnet: u8,
        nodes: Vec<NodeOptions>,
        credentials: Credentials,
    ) -> Self {
        let port = inkling_sandbox::free_port_triple(inkling_sandbox::loopback(subnet, 1))
            .expect("three free ports");
        let specs = nodes
            .into_iter()
            .enumerate()
            .map(|(index, options)| {
                let ip = inkling_sandbox::loopback(subnet, host(index));
                options.into_spec(format!("{ip}:{port}"), Joining::Founder)
            })
            .collect();
        let config = SandboxConfig {
            credentials,
            ..config(binary, Vec::new())
        };
        let sandbox = Sandbox::start(config, specs).unwrap_or_else(|error| panic!("{error:#}"));
        Self::around(sandbox)
    }

    fn around(sandbox: Sandbox) -> Self {
        let admin_key = sandbox.credentials().admin_key.expose().to_string();
        let config = ClientConfig::timeout(CALL_TIMEOUT).with_api_key(admin_key);
        let client = Client::new(sandbox.url(0), config).expect("an HTTP client");
        Self { sandbox, client }
    }

    pub fn url(&self, index: usize) -> String {
        self.sandbox.url(index).to_string()
    }

    /// A client of node `index`'s HTTP API (at its current address: a single node listens
    /// on a new port after each restart).
    pub fn client(&self, index: usize) -> Client {
        self.client.at(self.sandbox.url(index)).expect("a node URL")
    }

    pub fn len(&self) -> usize {
        self.sandbox.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sandbox.is_empty()
    }

    /// Where node `index`'s peer plane listens: raft and status name nodes by it.
    pub fn peer_addr(&self, index: usize) -> String {
        self.sandbox.peer_addr(index)
    }

    /// Node `index`'s name (`node-1`, ...).
    pub fn name(&self, index: usize) -> &str {
        self.sandbox.name(index)
    }

    /// Node `index`'s data folder.
    pub fn nodes_data_dir(&self, index: usize) -> std::path::PathBuf {
        self.sandbox.data_dir(index)
    }

    /// The cluster secret and the API keys the nodes hold.
    pub fn credentials(&self) -> &inkling_sandbox::Credentials {
        self.sandbox.credentials()
    }

    /// The sandbox itself: kill, pause, resume, restart a node.
    pub fn nodes(&mut self) -> &mut Sandbox {
        &mut self.sandbox
    }

    /// Indexes of the nodes whose processes run.
    pub fn running(&self) -> Vec<usize> {
        self.sandbox.running()
    }

    /// Starts one more node that joins the running cluster through node 0's address, and
    /// answers its index.
    pub fn join(&mut self) -> usize {
        self.join_with(NodeOptions::default())
    }

    /// [`Self::join`] with flags and environment of its own.
    pub fn join_with(&mut self, options: NodeOptions) -> usize {
        self.start_joiner(options, true)
    }

    /// Starts one more node that joins through node 0 but that no one admits: the leaders
    /// must give it no vote and no data.
    pub fn join_unadmitted(&mut self, options: NodeOptions) -> usize {
        self.start_joiner(options, false)
    }

    fn start_joiner(&mut self, options: NodeOptions, admitted: bool) -> usize {
        let listen = self
            .sandbox
            .url(0)
            .trim_start_matches("http://")
            .replace(".1:", &format!(".{}:", host(self.len())));
        let spec = options.into_spec(listen, Joining::Seeds(vec![0]));
        let index = self.sandbox.add(spec);
        // Admitted before it starts, so the leaders place replicas on it at once.
        if admitted {
            self.client(0)
                .admit(self.sandbox.name(index))
                .expect("the joiner admitted");
        }
        self.sandbox
            .restart(index)
            .unwrap_or_else(|error| panic!("{error:#}"));
        index
    }

    /// Asks node `index` to drain and waits until its process has exited.
    pub fn drain(&mut self, index: usize, timeout: Duration) {
        let client = self.client(index).with_timeout(DRAIN_CALL_TIMEOUT);
        client
            .drain::<serde_json::Value>()
            .expect("drain request answered");
        let exited = self
            .sandbox
            .wait_exit(index, timeout)
            .expect("wait for the node");
        assert!(exited, "timed out waiting for the drained node to exit");
    }

    /// SIGKILL: no shutdown hook, no flush, exactly what a crashed machine does.
    pub fn kill_hard(&mut self, index: usize) {
        self.sandbox.kill(index);
    }

    /// Starts a killed node again on its data folder and waits until it listens.
    pub fn restart(&mut self, index: usize) {
        self.sandbox
            .restart(index)
            .unwrap_or_else(|error| panic!("{error:#}"));
    }

    /// The index of the node whose peer address is `addr` (raft and status name nodes by
    /// it).
    pub fn index_of(&self, addr: &str) -> usize {
        (0..self.len())
            .find(|index| self.sandbox.peer_addr(*index) == addr)
            .unwrap_or_else(|| panic!("{addr} is not a member"))
    }

    /// The cluster's status as node `index` sees it.
    pub fn status(&self, index: usize) -> Result<ClusterStatus, inkling_api::Error> {
        self.client(index).cluster_status()
    }

    /// The address of the leader of `partition` as node `index` sees it.
    pub fn leader_of(&self, index: usize, partition: u16) -> Option<String> {
        let status = self.status(index).ok()?;
        status
            .partitions
            .into_iter()
            .find(|entry| entry.partition == partition)?
            .leader
    }

    /// A user whose partition node `leader` leads, as node `observer` sees it.
    pub fn user_led_by(&self, leader: usize, observer: usize) -> String {
        let leader_addr = self.sandbox.peer_addr(leader);
        (0..10_000)
            .map(|n| format!("shopper-{n}"))
            .find(|user| {
                let partition = inkling_replication::partition_of(user);
                self.leader_of(observer, partition)
                    .is_some_and(|addr| addr == leader_addr)
            })
            .expect("the node leads some partition")
    }

    /// Waits until every running node sees a leader for every partition it holds.
    pub fn wait_until_led(&self) {
        for index in self.running() {
            wait_for("every partition to elect a leader", STARTUP_TIMEOUT, || {
                let partitions = self.status(index).ok()?.partitions;
                let led = partitions.iter().all(|entry| entry.leader.is_some());
                (led && !partitions.is_empty()).then_some(())
            });
        }
    }

    /// Waits until every running node has an actor-mesh session with every other one.
    pub fn wait_until_meshed(&self) {
        let running = self.running();
        for index in &running {
            wait_for("every node to join the actor mesh", STARTUP_TIMEOUT, || {
                let peers = self.status(*index).ok()?.mesh_peers.len();
                (peers + 1 >= running.len()).then_some(())
            });
        }
    }
}

/// The last octet of node `index`'s address.
fn host(index: usize) -> u8 {
    u8::try_from(index + 1).expect("at most 254 nodes")
}
