//! Real `inkling node` processes behind the fault proxy: each node has its own data folder,
//! really listens on 127.S.1.i and advertises 127.S.0.i, where the proxy forwards to it.
//! Clients (the workload, the checker) talk to the real addresses directly, so a fault on a
//! link between nodes never touches a client's own connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use inkling_api::Client;
use inkling_replication::ClusterStatus;
use inkling_sandbox::{Joining, Logs, NodeSpec, Sandbox, SandboxConfig};

use crate::client::{ADMIN_TIMEOUT, client};
use crate::proxy::{Addresses, LinkRule, Proxy};

/// How long a node may take to start listening (a debug build loading the demo catalog on a
/// busy machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopping node may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `inkling` binary (any build whose command line has `serve`).
    pub binary: PathBuf,
    /// Second octet of the loopback addresses: clusters running at once use distinct ones.
    pub subnet: u8,
    pub nodes: usize,
    /// Environment for every node (`FAILPOINTS` for a deliberately broken build).
    pub env: Vec<(String, String)>,
}

/// A cluster of real node processes and the proxy between them.
pub struct ChaosCluster {
    spec: ClusterSpec,
    addresses: Addresses,
    port: u16,
    proxy: Proxy,
    sandbox: Sandbox,
    /// The harness's own client (status, drain), moved to each node with [`Client::at`].
    client: Client,
}

impl ChaosCluster {
    /// Starts `spec.nodes` nodes and waits until every partition has a leader and the
    /// actor mesh is complete.
    pub fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        let addresses = Addresses {
            subnet: spec.subnet,
        };
        let port = inkling_sandbox::free_port_triple(addresses.real_ip(0))?;
        let proxy = Proxy::new(addresses)?;
        let flags = ["--catalog", "demo", "--model", "none"];
        let env = [("RUST_LOG".to_string(), "warn,openraft=off".to_string())];
        let config = SandboxConfig {
            flags: flags.map(String::from).to_vec(),
            env: env.into_iter().chain(spec.env.iter().cloned()).collect(),
            logs: Logs::Files,
            startup_timeout: STARTUP_TIMEOUT,
            stop_timeout: STOP_TIMEOUT,
            ..SandboxConfig::new(&spec.binary)
        };
        let sandbox = Sandbox::new(config)?;
        let admin_key = sandbox.credentials().admin_key.expose().to_string();
        let client = client(
            &format!("http://{}", addresses.real_ip(0)),
            Some(&admin_key),
        )?;
        let mut cluster = Self {
            spec,
            addresses,
            port,
            proxy,
            sandbox,
            client,
        };
        for _ in 0..cluster.spec.nodes {
            cluster.add_member(Joining::Founder)?;
        }
        // Every process starts before any is waited for: each waits for its peers once it
        // runs.
        cluster.sandbox.start_all()?;
        cluster.wait_healthy(STARTUP_TIMEOUT)?;
        Ok(cluster)
    }

    /// Registers the next node with the sandbox, behind the proxy: its peer plane and
    /// actor mesh really listen on 127.S.1.i and advertise 127.S.0.i, where the proxy
    /// forwards to them. Its public API is reached directly.
    fn add_member(&mut self, joining: Joining) -> anyhow::Result<usize> {
        let index = self.sandbox.len();
        self.proxy.forward_tcp(index, self.peer_port())?;
        self.proxy.forward_udp(index, self.peer_port())?;
        self.proxy.forward_tcp(index, self.port + 1)?;
        let real_actor = SocketAddr::new(self.addresses.real_ip(index), self.port + 1);
        let advertised_actor = SocketAddr::new(self.addresses.advertised_ip(index), self.port + 1);
        let failpoints = self.failpoints_file(index);
        let spec = NodeSpec {
            listen: SocketAddr::new(self.addresses.real_ip(index), self.port).to_string(),
            advertise: Some(self.advertised(index)),
            joining,
            flags: vec![
                "--actor-addr".into(),
                real_actor.to_string(),
                "--advertise-actor".into(),
                advertised_actor.to_string(),
            ],
            env: vec![(
                "INKLING_FAILPOINTS_FILE".into(),
                failpoints.display().to_string(),
            )],
        };
        Ok(self.sandbox.add(spec))
    }

    /// The fail-point file node `index` re-reads (test builds only; see `inkling-node`).
    fn failpoints_file(&self, index: usize) -> PathBuf {
        self.sandbox
            .folder()
            .join(format!("node-{}.failpoints", index + 1))
    }

    pub fn len(&self) -> usize {
        self.sandbox.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sandbox.is_empty()
    }

    pub fn name(&self, index: usize) -> &str {
        self.sandbox.name(index)
    }

    /// Where node `index`'s peers reach its peer plane (through the proxy): raft names it
    /// by this.
    pub fn advertised(&self, index: usize) -> String {
        SocketAddr::new(self.addresses.advertised_ip(index), self.peer_port()).to_string()
    }

    /// The port of every node's peer plane (raft over TCP, gossip over UDP).
    fn peer_port(&self) -> u16 {
        self.port + inkling_sandbox::PEER_PORT_OFFSET
    }

    /// What shoppers call with.
    pub fn storefront_key(&self) -> &str {
        self.sandbox.credentials().storefront_key.expose()
    }

    /// What the harness calls status, drain and replica reads with.
    pub fn admin_key(&self) -> &str {
        self.sandbox.credentials().admin_key.expose()
    }

    /// The node's gateway, for clients: straight to the node, never through the proxy.
    pub fn url(&self, index: usize) -> String {
        self.sandbox.url(index).to_string()
    }

    /// The index of the node advertised at `addr`.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        (0..self.len()).find(|index| self.advertised(*index) == addr)
    }

    /// Indexes of nodes whose process runs (paused ones included).
    pub fn running(&self) -> Vec<usize> {
        self.sandbox.running()
    }

    /// The gateways of running, unpaused nodes.
    pub fn gateways(&self) -> Vec<String> {
        self.running()
            .into_iter()
            .filter(|index| !self.sandbox.is_paused(*index))
            .map(|index| self.url(index))
            .collect()
    }

    /// Every gateway a client may try, running or not: clients do not know what failed.
    pub fn all_gateways(&self) -> Vec<String> {
        (0..self.len()).map(|index| self.url(index)).collect()
    }

    pub fn set_link(&self, from: usize, to: usize, rule: LinkRule) {
        self.proxy.set(from, to, rule);
    }

    /// Cuts or slows every link between `group` and the rest, in the given directions.
    pub fn set_links_around(
        &self,
        group: &[usize],
        outgoing: bool,
        incoming: bool,
        rule: LinkRule,
    ) {
        for inside in group {
            for outside in (0..self.len()).filter(|other| !group.contains(other)) {
                if outgoing {
                    self.proxy.set(*inside, outside, rule);
                }
                if incoming {
                    self.proxy.set(outside, *inside, rule);
                }
            }
        }
    }

    pub fn heal_links(&self) {
        self.proxy.heal();
    }

    /// SIGKILL: no shutdown hook, no flush, what a crashed machine does.
    pub fn kill(&mut self, index: usize) {
        self.sandbox.kill(index);
    }

    /// SIGTERM, then waits for the node to stop on its own (SIGKILL after a timeout).
    pub fn stop(&mut self, index: usize) -> anyhow::Result<()> {
        self.sandbox.stop(index)
    }

    /// Starts a stopped node again on the same data folder and waits until it listens.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.sandbox.restart(index)
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a frozen process keeps its sockets open.
    pub fn pause(&mut self, index: usize, paused: bool) -> anyhow::Result<()> {
        match (self.sandbox.is_running(index), paused) {
            (false, _) => Ok(()),
            (true, true) => self.sandbox.pause(index),
            (true, false) => self.sandbox.resume(index),
        }
    }

    /// Arms (or, with an empty list, disarms) fail-points in a running node of a test build.
    pub fn set_failpoints(&self, index: usize, failpoints: &[(&str, &str)]) -> anyhow::Result<()> {
        let text: Vec<String> = failpoints
            .iter()
            .map(|(name, action)| format!("{name}={action}"))
            .collect();
        std::fs::write(self.failpoints_file(index), text.join(";"))?;
        Ok(())
    }

    /// Starts one more node that joins the running cluster through node 0; answers its
    /// index.
    pub fn join(&mut self) -> anyhow::Result<usize> {
        let index = self.add_member(Joining::Seeds(vec![0]))?;
        // Admitted through any running member before it starts, so the leaders place
        // replicas on it at once.
        let name = self.name(index).to_string();
        self.admit_through_any(&name)?;
        self.restart(index)?;
        Ok(index)
    }

    /// Admits `name` through the first running node that answers.
    fn admit_through_any(&self, name: &str) -> anyhow::Result<()> {
        let mut last_error = None;
        for index in self.running() {
            let admitted = self
                .client
                .at(&self.url(index))
                .and_then(|client| client.with_timeout(ADMIN_TIMEOUT).admit(name));
            match admitted {
                Ok(_) => return Ok(()),
                Err(error) => last_error = Some(error),
            }
        }
        match last_error {
            Some(error) => Err(anyhow::anyhow!("cannot admit {name}: {error}")),
            None => anyhow::bail!("cannot admit {name}: no node runs"),
        }
    }

    /// Asks node `index` to drain and waits until its process has exited. A node that has
    /// not exited by the deadline is killed, so the cluster is back to its size either way,
    /// and the drain reported as failed.
    pub fn drain(&mut self, index: usize, timeout: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.sandbox.is_running(index),
            "the drained node is not running"
        );
        let asked = self.client.at(&self.url(index)).and_then(|client| {
            client
                .with_timeout(ADMIN_TIMEOUT)
                .drain::<serde_json::Value>()
        });
        if self.sandbox.exited_within(index, timeout)? {
            return Ok(());
        }
        let waiting_for = self.drain_waits(index);
        self.sandbox.kill(index);
        bail!(
            "{} did not finish draining within {timeout:?} ({}; {waiting_for}); killed",
            self.name(index),
            asked
                .err()
                .map_or_else(|| "the request was answered".to_string(), |e| e.to_string())
        );
    }

    /// What a draining node says its exit waits for, in words.
    fn drain_waits(&self, index: usize) -> String {
        match self.status(index) {
            Ok(status) if status.drain_waiting_for.is_empty() => {
                "it waits for nothing: drained, but the process did not exit".to_string()
            }
            Ok(status) => format!("waiting for {}", status.drain_waiting_for.join("; ")),
            Err(error) => format!("its status did not answer: {error:#}"),
        }
    }

    /// The cluster status as node `index` sees it.
    pub fn status(&self, index: usize) -> anyhow::Result<ClusterStatus> {
        Ok(self.client.at(&self.url(index))?.cluster_status()?)
    }

    /// Partition → index of its leader, as the first answering node sees it.
    pub fn leaders(&self) -> std::collections::BTreeMap<u64, usize> {
        for index in self.running() {
            if self.sandbox.is_paused(index) {
                continue;
            }
            let Ok(status) = self.status(index) else {
                continue;
            };
            return status
                .partitions
                .iter()
                .filter_map(|entry| {
                    let leader = self.index_of(entry.leader.as_deref()?)?;
                    Some((u64::from(entry.partition), leader))
                })
                .collect();
        }
        Default::default()
    }

    /// Waits until every running node sees a leader for every group it holds and has a
    /// mesh session with every other running node.
    pub fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        // A node of the original cluster that exited on its own is a finding; it is started
        // again so the run goes on with the cluster's size. A joined one stays gone.
        let exited = self.sandbox.reap();
        for index in &exited {
            if *index < self.spec.nodes {
                self.restart(*index)?;
            }
        }
        let names: Vec<String> = exited
            .iter()
            .map(|index| self.name(*index).to_string())
            .collect();
        let deadline = Instant::now() + timeout;
        let running = self.running();
        for index in &running {
            let left = deadline.saturating_duration_since(Instant::now());
            let healthy = |status: ClusterStatus| {
                let partitions = &status.partitions;
                let led =
                    !partitions.is_empty() && partitions.iter().all(|entry| entry.leader.is_some());
                led && status.mesh_peers.len() + 1 >= running.len()
            };
            let seen = inkling_sandbox::wait_until("a healthy view", left, || {
                self.status(*index).ok().map(healthy)?.then_some(())
            });
            if seen.is_err() {
                bail!(
                    "{} did not see every group led and every peer meshed within {timeout:?}",
                    self.name(*index)
                );
            }
        }
        anyhow::ensure!(names.is_empty(), "{} exited on its own", names.join(", "));
        Ok(())
    }

    /// The folder holding every node's data and log.
    pub fn folder(&self) -> &Path {
        self.sandbox.folder()
    }

    /// Keeps the data folder and logs after the run, for a post-mortem; answers its path.
    pub fn keep_folder(&mut self) -> PathBuf {
        self.sandbox.keep_folder()
    }
}
