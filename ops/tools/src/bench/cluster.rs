//! Benchmarks on a local cluster of real node processes: `inkling bench failover`, the time
//! from the loss of a partition's leader (`kill -9`, or SIGSTOP, which leaves its sockets
//! open) to the first successful answer for one of its users through another node's
//! gateway; and `inkling bench hop`, what forwarding to the leader's node adds to a request.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use inkling_api::{Client, ClientConfig, EventBatch, EventBody, EventType, RecommendBody};
use inkling_replication::{ClusterStatus, partition_of};
use inkling_sandbox::{NodeSpec, SandboxConfig};

use super::percentile;

#[derive(clap::Args)]
pub struct HopArgs {
    /// Recommendations asked through each gateway.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 17480)]
    port: u16,
}

#[derive(clap::Args)]
pub struct FailoverArgs {
    /// Trials per fault kind.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 17380)]
    port: u16,
}

/// How long any one wait of the benchmark may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Kill,
    Freeze,
}

/// Nodes of this binary on 127.0.0.1, 127.0.0.2, ... with the same port, in a temporary
/// folder.
struct Sandbox {
    nodes: inkling_sandbox::Sandbox,
    /// A client of each node.
    clients: Vec<Client>,
}

/// Every request on a new connection, as the figures in docs/benchmarks.md were measured.
fn client_config() -> ClientConfig {
    ClientConfig {
        max_idle_per_host: Some(0),
        ..ClientConfig::timeout(Duration::from_secs(2))
    }
}

impl Sandbox {
    fn start(nodes: usize, port: u16) -> Result<Self> {
        anyhow::ensure!(
            (1..=254).contains(&nodes),
            "--nodes must be between 1 and 254"
        );
        let binary = std::env::current_exe().context("cannot find the inkling binary")?;
        let config = SandboxConfig {
            flags: ["--model", "none", "--catalog", "demo"]
                .map(String::from)
                .to_vec(),
            startup_timeout: PATIENCE,
            ..SandboxConfig::new(binary)
        };
        let specs = (0..nodes)
            .map(|index| NodeSpec::founder(format!("127.0.0.{}:{port}", index + 1)))
            .collect();
        let processes = inkling_sandbox::Sandbox::start(config, specs)?;
        let admin_key = processes.credentials().admin_key.expose().to_string();
        let first = Client::new(processes.url(0), client_config().with_api_key(admin_key))?;
        let clients = (0..processes.len())
            .map(|index| first.at(processes.url(index)))
            .collect::<Result<_, _>>()?;
        let sandbox = Self {
            nodes: processes,
            clients,
        };
        for index in 0..nodes {
            sandbox.wait_led(index)?;
        }
        Ok(sandbox)
    }

    fn status(&self, index: usize) -> Option<ClusterStatus> {
        self.clients[index].cluster_status().ok()
    }

    /// Waits until node `index` sees a leader for each of its partitions and has a mesh
    /// session with every other node.
    fn wait_led(&self, index: usize) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.status(index)
                && !status.partitions.is_empty()
                && status.partitions.iter().all(|p| p.leader.is_some())
                && status.mesh_peers.len() + 1 == self.nodes.len()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("node {index} saw no leader for every partition within {PATIENCE:?}")
    }

    fn leader_index(&self, observer: usize, partition: u16) -> Option<usize> {
        let status = self.status(observer)?;
        let leader = status
            .partitions
            .iter()
            .find(|p| p.partition == partition)?
            .leader
            .clone()?;
        (0..self.nodes.len()).find(|index| self.nodes.peer_addr(*index) == leader)
    }

    fn record_event(&self, index: usize, user: &str) -> bool {
        let events = vec![EventBody::on_item(user, EventType::View, "xiaomi-12")];
        self.clients[index].events(&EventBatch::new(events)).is_ok()
    }

    fn served(&self, index: usize, user: &str) -> bool {
        self.clients[index].profile(user).is_ok()
    }

    /// One trial: the leader of `user`'s partition is lost; answers the time until another
    /// node serves the user, then brings the lost node back.
    fn trial(&mut self, fault: Fault, user: &str) -> Result<Duration> {
        let partition = partition_of(user);
        let leader = self
            .leader_index(0, partition)
            .or_else(|| self.leader_index(1, partition))
            .context("no leader known for the trial's partition")?;
        let reader = (leader + 1) % self.nodes.len();
        anyhow::ensure!(
            self.record_event(reader, user),
            "could not write before the fault"
        );
        let lost_at = Instant::now();
        match fault {
            Fault::Kill => self.nodes.kill(leader),
            Fault::Freeze => self.nodes.pause(leader)?,
        }
        let recovery = loop {
            if self.served(reader, user) {
                break lost_at.elapsed();
            }
            anyhow::ensure!(
                lost_at.elapsed() < PATIENCE,
                "user not served within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        match fault {
            Fault::Kill => self.nodes.restart(leader)?,
            Fault::Freeze => self.nodes.resume(leader)?,
        }
        for index in 0..self.nodes.len() {
            self.wait_led(index)?;
        }
        Ok(recovery)
    }
}

/// Milliseconds one recommendation for `user` takes through node `index`'s gateway.
fn recommend_ms(sandbox: &Sandbox, index: usize, user: &str) -> Result<f64> {
    let body = RecommendBody::new(user, 10);
    let started = Instant::now();
    sandbox.clients[index]
        .recommend(&body)
        .with_context(|| format!("recommend through node {index}"))?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

pub fn run_hop(args: HopArgs) -> Result<()> {
    let sandbox = Sandbox::start(args.nodes, args.port)?;
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    for request in 0..args.requests {
        let user = format!("hop-{}", request % 50);
        let leader = sandbox
            .leader_index(0, partition_of(&user))
            .context("no leader known")?;
        let other = (leader + 1) % args.nodes;
        if request < 50 {
            // Warm up: the user's session starts on the leader before anything is timed.
            anyhow::ensure!(sandbox.record_event(leader, &user), "could not write");
            recommend_ms(&sandbox, leader, &user)?;
        }
        direct.push(recommend_ms(&sandbox, leader, &user)?);
        forwarded.push(recommend_ms(&sandbox, other, &user)?);
    }
    direct.sort_by(f64::total_cmp);
    forwarded.sort_by(f64::total_cmp);
    println!(
        "POST /v1/recommend, sequential, {} requests each\n",
        args.requests
    );
    println!("| gateway | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    for (name, times) in [
        ("the leader's node", &direct),
        ("another node (one hop)", &forwarded),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} |",
            percentile(times, 0.50),
            percentile(times, 0.99)
        );
    }
    Ok(())
}

pub fn run(args: FailoverArgs) -> Result<()> {
    let mut sandbox = Sandbox::start(args.nodes, args.port)?;
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>9}",
        "fault", "trials", "p50 ms", "p99 ms", "max ms"
    );
    for (name, fault) in [("kill -9", Fault::Kill), ("SIGSTOP", Fault::Freeze)] {
        let mut times = Vec::new();
        for trial in 0..args.trials {
            let user = format!("failover-{name}-{trial}");
            times.push(sandbox.trial(fault, &user)?.as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:<8} {:>7} {:>9.0} {:>9.0} {:>9.0}",
            name,
            times.len(),
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            times.last().copied().unwrap_or(0.0)
        );
    }
    Ok(())
}
