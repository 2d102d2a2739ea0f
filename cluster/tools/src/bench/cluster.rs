//! Benchmarks on a local cluster of real node processes: `inkling bench failover`, the time
//! from the loss of a partition's leader (`kill -9`, or SIGSTOP, which leaves its sockets
//! open) to the first successful answer for one of its users through another node's
//! gateway; and `inkling bench hop`, what forwarding to the leader's node adds to a request.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use inkling_cluster::{ClusterStatus, partition_of};
use inkling_node::local_cluster::LocalCluster;

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

struct Sandbox {
    cluster: LocalCluster,
    children: Vec<Child>,
    _folder: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for child in &mut self.children {
            signal(child, "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build()
}

impl Sandbox {
    fn start(nodes: usize, port: u16) -> Result<Self> {
        let folder = tempfile::tempdir()?;
        let cluster = LocalCluster {
            nodes,
            port,
            data_dir: folder.path().to_path_buf(),
            serve_args: ["--model", "none", "--catalog", "demo"]
                .map(String::from)
                .to_vec(),
            cookie: inkling_node::random_cookie()?,
        };
        let children = (0..nodes)
            .map(|index| cluster.spawn(index))
            .collect::<Result<Vec<_>>>()?;
        let sandbox = Self {
            cluster,
            children,
            _folder: folder,
        };
        for index in 0..nodes {
            sandbox.wait_led(index)?;
        }
        Ok(sandbox)
    }

    fn url(&self, index: usize) -> String {
        format!("http://{}", self.cluster.listen(index))
    }

    fn status(&self, index: usize) -> Option<ClusterStatus> {
        agent()
            .get(&format!("{}/internal/status", self.url(index)))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    /// Waits until node `index` sees a leader for each of its partitions and has a mesh
    /// session with every other node.
    fn wait_led(&self, index: usize) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.status(index)
                && !status.partitions.is_empty()
                && status.partitions.iter().all(|p| p.leader.is_some())
                && status.mesh_peers.len() + 1 == self.children.len()
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
        (0..self.children.len()).find(|index| self.cluster.listen(*index) == leader)
    }

    fn record_event(&self, index: usize, user: &str) -> bool {
        let body = serde_json::json!({
            "events": [{ "user_id": user, "type": "view", "item_id": "xiaomi-12" }]
        });
        agent()
            .post(&format!("{}/v1/events", self.url(index)))
            .send_json(body)
            .is_ok()
    }

    fn served(&self, index: usize, user: &str) -> bool {
        agent()
            .get(&format!("{}/v1/users/{user}/profile", self.url(index)))
            .call()
            .is_ok()
    }

    /// One trial: the leader of `user`'s partition is lost; answers the time until another
    /// node serves the user, then brings the lost node back.
    fn trial(&mut self, fault: Fault, user: &str) -> Result<Duration> {
        let partition = partition_of(user);
        let leader = self
            .leader_index(0, partition)
            .or_else(|| self.leader_index(1, partition))
            .context("no leader known for the trial's partition")?;
        let reader = (leader + 1) % self.children.len();
        anyhow::ensure!(
            self.record_event(reader, user),
            "could not write before the fault"
        );
        let lost_at = Instant::now();
        match fault {
            Fault::Kill => {
                self.children[leader].kill()?;
                self.children[leader].wait()?;
            }
            Fault::Freeze => signal(&self.children[leader], "STOP"),
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
            Fault::Kill => self.children[leader] = self.cluster.spawn(leader)?,
            Fault::Freeze => signal(&self.children[leader], "CONT"),
        }
        for index in 0..self.children.len() {
            self.wait_led(index)?;
        }
        Ok(recovery)
    }
}

/// Milliseconds one recommendation for `user` takes through node `index`'s gateway.
fn recommend_ms(sandbox: &Sandbox, index: usize, user: &str) -> Result<f64> {
    let body = serde_json::json!({ "user_id": user, "k": 10 });
    let started = Instant::now();
    agent()
        .post(&format!("{}/v1/recommend", sandbox.url(index)))
        .send_json(body)
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
