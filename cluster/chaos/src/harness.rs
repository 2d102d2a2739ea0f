//! Real `inkling node` processes behind the fault proxy: each node has its own data folder,
//! really listens on 127.S.1.i and advertises 127.S.0.i, where the proxy forwards to it.
//! Clients (the workload, the checker) talk to the real addresses directly, so a fault on a
//! link between nodes never touches a client's own connection.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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

struct Member {
    name: String,
    data_dir: PathBuf,
    /// The failpoint file the node re-reads (test builds only; see `inkling-node`).
    failpoints: PathBuf,
    /// `--initial-members` for the first nodes, `--seeds` for one that joined.
    placement: Vec<String>,
    process: Option<Child>,
    paused: bool,
}

/// A cluster of real node processes and the proxy between them.
pub struct ChaosCluster {
    spec: ClusterSpec,
    addresses: Addresses,
    port: u16,
    cookie: String,
    folder: tempfile::TempDir,
    proxy: Proxy,
    members: Vec<Member>,
}

impl ChaosCluster {
    /// Starts `spec.nodes` nodes and waits until every partition has a leader and the
    /// actor mesh is complete.
    pub fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        let addresses = Addresses {
            subnet: spec.subnet,
        };
        let port = free_port(&addresses)?;
        let folder = tempfile::tempdir().context("cannot create the chaos data folder")?;
        let proxy = Proxy::new(addresses)?;
        let cookie = format!("chaos-{}-{}", std::process::id(), spec.subnet);
        let mut cluster = Self {
            spec,
            addresses,
            port,
            cookie,
            folder,
            proxy,
            members: Vec::new(),
        };
        let initial: Vec<String> = (0..cluster.spec.nodes)
            .map(|index| format!("{}={}", node_name(index), cluster.advertised(index)))
            .collect();
        let placement = vec!["--initial-members".to_string(), initial.join(",")];
        for index in 0..cluster.spec.nodes {
            cluster.add_member(index, placement.clone())?;
        }
        // Start every process before waiting: each waits for its peers once it runs.
        let starting: Vec<_> = (0..cluster.spec.nodes)
            .map(|index| cluster.spawn(index))
            .collect::<anyhow::Result<_>>()?;
        for (index, (child, listening)) in starting.into_iter().enumerate() {
            cluster.members[index].process = Some(child);
            wait_listening(&listening, &cluster.members[index].name)?;
        }
        cluster.wait_healthy(STARTUP_TIMEOUT)?;
        Ok(cluster)
    }

    fn add_member(&mut self, index: usize, placement: Vec<String>) -> anyhow::Result<()> {
        self.proxy.forward_tcp(index, self.port)?;
        self.proxy.forward_udp(index, self.port)?;
        self.proxy.forward_tcp(index, self.port + 1)?;
        let name = node_name(index);
        self.members.push(Member {
            data_dir: self.folder.path().join(&name),
            failpoints: self.folder.path().join(format!("{name}.failpoints")),
            name,
            placement,
            process: None,
            paused: false,
        });
        Ok(())
    }

    /// Starts node `index`'s process on its data folder; answers it and a receiver of its
    /// "listening" line.
    fn spawn(&self, index: usize) -> anyhow::Result<(Child, mpsc::Receiver<()>)> {
        let member = &self.members[index];
        std::fs::create_dir_all(self.folder.path())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.folder.path().join(format!("{}.log", member.name)))?;
        let real = SocketAddr::new(self.addresses.real_ip(index), self.port);
        let real_actor = SocketAddr::new(self.addresses.real_ip(index), self.port + 1);
        let advertised_actor = SocketAddr::new(self.addresses.advertised_ip(index), self.port + 1);
        let mut child = Command::new(&self.spec.binary)
            .arg("serve")
            .args(["--listen", &real.to_string()])
            .args(["--advertise", &self.advertised(index)])
            .args(["--actor-addr", &real_actor.to_string()])
            .args(["--advertise-actor", &advertised_actor.to_string()])
            .args(["--node-name", &member.name])
            .args(["--cookie", &self.cookie])
            .args(["--catalog", "demo", "--model", "none"])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(&member.placement)
            .env("RUST_LOG", "warn,openraft=off")
            .env("INKLING_FAILPOINTS_FILE", &member.failpoints)
            .envs(self.spec.env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", self.spec.binary.display()))?;
        let stdout = child.stdout.take().context("node stdout")?;
        let (listening, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("inkling listening on ") {
                    let _ = listening.send(());
                }
            }
        });
        Ok((child, receiver))
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn name(&self, index: usize) -> &str {
        &self.members[index].name
    }

    /// Where node `index`'s peers reach it (through the proxy): raft names it by this.
    pub fn advertised(&self, index: usize) -> String {
        SocketAddr::new(self.addresses.advertised_ip(index), self.port).to_string()
    }

    /// The node's gateway, for clients: straight to the node, never through the proxy.
    pub fn url(&self, index: usize) -> String {
        format!(
            "http://{}",
            SocketAddr::new(self.addresses.real_ip(index), self.port)
        )
    }

    /// The index of the node advertised at `addr`.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        (0..self.members.len()).find(|index| self.advertised(*index) == addr)
    }

    /// Indexes of nodes whose process runs (paused ones included).
    pub fn running(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|index| self.members[*index].process.is_some())
            .collect()
    }

    /// The gateways of running, unpaused nodes.
    pub fn gateways(&self) -> Vec<String> {
        self.running()
            .into_iter()
            .filter(|index| !self.members[*index].paused)
            .map(|index| self.url(index))
            .collect()
    }

    /// Every gateway a client may try, running or not: clients do not know what failed.
    pub fn all_gateways(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|index| self.url(index))
            .collect()
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
            for outside in (0..self.members.len()).filter(|other| !group.contains(other)) {
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
        if let Some(mut child) = self.members[index].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.members[index].paused = false;
    }

    /// SIGTERM, then waits for the node to stop on its own (SIGKILL after a timeout).
    pub fn stop(&mut self, index: usize) -> anyhow::Result<()> {
        let Some(mut child) = self.members[index].process.take() else {
            return Ok(());
        };
        signal(&child, "TERM")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not stop within {STOP_TIMEOUT:?}",
                    self.members[index].name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts a stopped node again on the same data folder and waits until it listens.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        if self.members[index].process.is_some() {
            return Ok(());
        }
        let (child, listening) = self.spawn(index)?;
        self.members[index].process = Some(child);
        wait_listening(&listening, &self.members[index].name)
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a frozen process keeps its sockets open.
    pub fn pause(&mut self, index: usize, paused: bool) -> anyhow::Result<()> {
        if let Some(child) = &self.members[index].process {
            signal(child, if paused { "STOP" } else { "CONT" })?;
            self.members[index].paused = paused;
        }
        Ok(())
    }

    /// Arms (or, with an empty list, disarms) fail-points in a running node of a test build.
    pub fn set_failpoints(&self, index: usize, failpoints: &[(&str, &str)]) -> anyhow::Result<()> {
        let text: Vec<String> = failpoints
            .iter()
            .map(|(name, action)| format!("{name}={action}"))
            .collect();
        std::fs::write(&self.members[index].failpoints, text.join(";"))?;
        Ok(())
    }

    /// Starts one more node that joins the running cluster through node 0; answers its
    /// index.
    pub fn join(&mut self) -> anyhow::Result<usize> {
        let index = self.members.len();
        let seeds = vec!["--seeds".to_string(), self.advertised(0)];
        self.add_member(index, seeds)?;
        self.restart(index)?;
        Ok(index)
    }

    /// Asks node `index` to drain and waits until its process has exited. A node that has
    /// not exited by the deadline is killed, so the cluster is back to its size either way,
    /// and the drain reported as failed.
    pub fn drain(&mut self, index: usize, timeout: Duration) -> anyhow::Result<()> {
        let asked =
            crate::http::post_admin(&self.url(index), "/internal/drain", &serde_json::json!({}));
        let deadline = Instant::now() + timeout;
        let name = self.members[index].name.clone();
        let child = self.members[index]
            .process
            .as_mut()
            .context("the drained node is not running")?;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.members[index].process = None;
                bail!(
                    "{name} did not finish draining within {timeout:?} ({}); killed",
                    asked
                        .err()
                        .unwrap_or_else(|| "the request was answered".to_string())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.members[index].process = None;
        Ok(())
    }

    /// Forgets processes that have exited on their own (a node that failed, or drained
    /// after its drain request was not answered), so they are not waited for.
    fn reap(&mut self) -> Vec<usize> {
        let mut exited = Vec::new();
        for (index, member) in self.members.iter_mut().enumerate() {
            let gone = match &mut member.process {
                Some(child) => !member.paused && matches!(child.try_wait(), Ok(Some(_))),
                None => false,
            };
            if gone {
                member.process = None;
                exited.push(index);
            }
        }
        exited
    }

    /// The cluster status as node `index` sees it.
    pub fn status(&self, index: usize) -> Result<serde_json::Value, String> {
        crate::http::get(&self.url(index), "/internal/status")
    }

    /// Partition → index of its leader, as the first answering node sees it.
    pub fn leaders(&self) -> std::collections::BTreeMap<u64, usize> {
        for index in self.running() {
            if self.members[index].paused {
                continue;
            }
            let Ok(status) = self.status(index) else {
                continue;
            };
            let Some(partitions) = status["partitions"].as_array() else {
                continue;
            };
            return partitions
                .iter()
                .filter_map(|entry| {
                    let leader = self.index_of(entry["leader"].as_str()?)?;
                    Some((entry["partition"].as_u64()?, leader))
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
        let exited = self.reap();
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
            loop {
                let healthy = self.status(*index).ok().is_some_and(|status| {
                    let partitions = status["partitions"].as_array().cloned().unwrap_or_default();
                    let led = !partitions.is_empty()
                        && partitions.iter().all(|entry| entry["leader"].is_string());
                    let peers = status["mesh_peers"].as_array().map_or(0, Vec::len);
                    led && peers + 1 >= running.len()
                });
                if healthy {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} did not see every group led and every peer meshed within {timeout:?}",
                        self.members[*index].name
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        anyhow::ensure!(names.is_empty(), "{} exited on its own", names.join(", "));
        Ok(())
    }

    /// The folder holding every node's data and log.
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// Keeps the data folder and logs after the run, for a post-mortem; answers its path.
    pub fn keep_folder(&mut self) -> PathBuf {
        self.folder.disable_cleanup(true);
        self.folder.path().to_path_buf()
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.process.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn node_name(index: usize) -> String {
    format!("node-{}", index + 1)
}

fn wait_listening(listening: &mpsc::Receiver<()>, name: &str) -> anyhow::Result<()> {
    listening
        .recv_timeout(STARTUP_TIMEOUT)
        .map_err(|_| anyhow::anyhow!("{name} did not start listening within {STARTUP_TIMEOUT:?}"))
}

fn signal(child: &Child, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {} failed", child.id());
    Ok(())
}

/// A port free on the first node's real address, with the next one for the mesh; the
/// other addresses are distinct IPs, so the same ports are free there too.
fn free_port(addresses: &Addresses) -> anyhow::Result<u16> {
    for _ in 0..20 {
        let listener = std::net::TcpListener::bind((addresses.real_ip(0), 0))?;
        let port = listener.local_addr()?.port();
        if port < u16::MAX && std::net::TcpListener::bind((addresses.real_ip(0), port + 1)).is_ok()
        {
            return Ok(port);
        }
    }
    bail!("no free pair of ports on {}", addresses.real_ip(0))
}
