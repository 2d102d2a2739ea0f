//! Chaos runs: a seeded nemesis against a real cluster, and a checker that proves nothing
//! acknowledged is lost.
//!
//! [`harness`] starts real `inkling serve` processes, each on its own data folder, with all
//! traffic between nodes (raft and API forwarding over HTTP, the actor mesh, gossip)
//! through the fault-injecting [`proxy`]. [`workload`] runs shoppers through every gateway,
//! [`schedule`] draws the faults from a seed, [`run`] injects and heals them one after the
//! other, and [`checker`] reads everything back through every node once the cluster is
//! quiet.
//!
//! `inkling-chaos` drives nodes only from outside, over HTTP and signals (and, in test
//! builds, the fail-point file a node re-reads); it never reaches into a node's internals,
//! so what it proves holds for the binary operators run.

pub mod checker;
mod client;
pub mod harness;
pub mod proxy;
pub mod schedule;
pub mod workload;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inkling_api::Client;
use parking_lot::RwLock;

pub use checker::{FaultRecord, Report};
pub use harness::{ChaosCluster, ClusterSpec};
pub use proxy::LinkRule;
pub use schedule::{FaultKind, Step};
pub use workload::WorkloadConfig;

/// How long the cluster may take to be whole again after a fault is healed.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the shoppers run before the first fault and after the last one.
const WARM_UP: Duration = Duration::from_secs(3);
/// A quiet gap between faults, so each one's failover is measured on its own.
const BETWEEN_FAULTS: Duration = Duration::from_secs(2);
/// How long reading back one profile may keep retrying.
const READ_BACK_BUDGET: Duration = Duration::from_secs(20);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub cluster: ClusterSpec,
    pub seed: u64,
    /// The faults, in order.
    pub schedule: Vec<Step>,
    /// Stop injecting once this much time has passed (a soak), even if faults are left.
    pub time_limit: Option<Duration>,
    pub workload: WorkloadConfig,
    /// Whether the node binary carries fail-points (a test build); without them a
    /// disk-full fault cannot be injected and is skipped, and the report says so.
    pub failpoints: bool,
    /// Keep the nodes' data folders and logs when the checker fails, for a post-mortem.
    pub keep_failed: bool,
}

impl RunConfig {
    /// A run of `schedule` with the default workload, on `nodes` nodes.
    pub fn new(
        binary: std::path::PathBuf,
        subnet: u8,
        nodes: usize,
        seed: u64,
        schedule: Vec<Step>,
    ) -> Self {
        Self {
            cluster: ClusterSpec {
                binary,
                subnet,
                nodes,
                env: Vec::new(),
            },
            seed,
            schedule,
            time_limit: None,
            workload: WorkloadConfig {
                shoppers: 6,
                users_per_shopper: 8,
                retry_budget: Duration::from_secs(10),
                think_time: Duration::from_millis(20),
                prefix: format!("chaos{seed}"),
                seed,
                api_key: None,
                admin_key: None,
            },
            failpoints: true,
            keep_failed: true,
        }
    }
}

/// Runs the schedule against a fresh cluster and checks the outcome. Progress lines, the
/// seed and the schedule first, go to `log`.
pub fn run(config: &RunConfig, log: &mut dyn Write) -> anyhow::Result<Report> {
    let _ = writeln!(
        log,
        "chaos seed {} on {} nodes",
        config.seed, config.cluster.nodes
    );
    let _ = writeln!(log, "schedule:");
    for (number, step) in config.schedule.iter().enumerate() {
        let _ = writeln!(log, "  {:>3}. {step}", number + 1);
    }
    let started = Instant::now();
    let mut cluster = ChaosCluster::start(config.cluster.clone())?;
    let _ = writeln!(
        log,
        "[{:>6.1}s] cluster up, data and logs in {}",
        started.elapsed().as_secs_f64(),
        cluster.folder().display()
    );
    let gateways = Arc::new(RwLock::new(cluster.all_gateways()));
    let shoppers = WorkloadConfig {
        api_key: Some(cluster.storefront_key().to_string()),
        admin_key: Some(cluster.admin_key().to_string()),
        ..config.workload.clone()
    };
    let workload = workload::Workload::start(shoppers, gateways.clone());
    std::thread::sleep(WARM_UP);
    let mut faults = Vec::new();
    for (number, step) in config.schedule.iter().enumerate() {
        if config
            .time_limit
            .is_some_and(|limit| started.elapsed() >= limit)
        {
            let _ = writeln!(log, "time limit reached after {number} faults");
            break;
        }
        let _ = writeln!(
            log,
            "[{:>6.1}s] {:>3}. {step}",
            started.elapsed().as_secs_f64(),
            number + 1
        );
        if step.kind == FaultKind::DiskFull && !config.failpoints {
            let _ = writeln!(log, "        skipped: this binary has no fail-points");
            continue;
        }
        let fault = inject(&mut cluster, step, &gateways);
        if let Some(problem) = &fault.problem {
            let _ = writeln!(log, "        problem: {problem}");
        }
        let _ = writeln!(
            log,
            "        it led {} partitions; healed; whole again after {:.1}s",
            fault.affected_partitions.len(),
            fault.recovered.duration_since(fault.healed).as_secs_f64()
        );
        faults.push(fault);
        std::thread::sleep(BETWEEN_FAULTS);
    }
    std::thread::sleep(WARM_UP);
    let journal = workload.stop();
    let _ = writeln!(
        log,
        "[{:>6.1}s] shoppers stopped: {} requests, {} batches acknowledged; reading back",
        started.elapsed().as_secs_f64(),
        journal.requests.len(),
        journal.acks.len()
    );
    if let Err(error) = cluster.wait_healthy(RECOVERY_TIMEOUT) {
        let _ = writeln!(log, "not quiescent before the read-back: {error}");
    }
    let read_backs = read_back(&cluster, &journal);
    let catalog_read_backs = read_back_catalog(&cluster, &journal);
    let report = checker::check(
        config.seed,
        &config.schedule,
        &journal,
        &faults,
        &read_backs,
        &catalog_read_backs,
    );
    if !report.passed() && config.keep_failed {
        let kept = cluster.keep_folder();
        let _ = writeln!(log, "data and logs kept in {}", kept.display());
    }
    Ok(report)
}

/// Injects one fault, holds it, heals it and waits until the cluster is whole again.
fn inject(cluster: &mut ChaosCluster, step: &Step, gateways: &RwLock<Vec<String>>) -> FaultRecord {
    // The smaller side of a split: (n-1)/2 of the n running nodes, starting at the target.
    // Counted over running nodes only: nodes that joined and drained are members of the
    // harness but not of the cluster, and counting them made a "minority" that was a
    // majority of the live nodes (the first 30-minute soak).
    let live = cluster.running();
    let minority: Vec<usize> = match step.kind {
        FaultKind::Split if !live.is_empty() => {
            let start = live
                .iter()
                .position(|index| *index == step.node)
                .unwrap_or(0);
            (0..((live.len().saturating_sub(1)) / 2).max(1))
                .map(|offset| live[(start + offset) % live.len()])
                .collect()
        }
        _ => vec![step.node],
    };
    let leaders = cluster.leaders();
    let affected_partitions: Vec<u64> = leaders
        .iter()
        .filter(|(_, leader)| minority.contains(leader))
        .map(|(partition, _)| *partition)
        .collect();
    // Moved to the moment the fault took effect (a signal sent, a rule set, a file
    // written), so requests answered before it are not counted as failovers.
    let mut started = Instant::now();
    let outcome = apply(cluster, step, &minority, gateways, &mut started);
    let healed = Instant::now();
    let mut problem = outcome.err().map(|error| format!("{error:#}"));
    if let Err(error) = cluster.wait_healthy(RECOVERY_TIMEOUT) {
        problem.get_or_insert(format!("{error:#}"));
    }
    FaultRecord {
        step: step.clone(),
        started,
        healed,
        recovered: Instant::now(),
        affected_partitions,
        targets: minority
            .iter()
            .map(|index| inkling_replication::node_id_of(cluster.name(*index)))
            .collect(),
        problem,
    }
}

fn apply(
    cluster: &mut ChaosCluster,
    step: &Step,
    minority: &[usize],
    gateways: &RwLock<Vec<String>>,
    took_effect: &mut Instant,
) -> anyhow::Result<()> {
    let node = step.node;
    let mut effective = || *took_effect = Instant::now();
    match step.kind {
        FaultKind::Kill => {
            cluster.kill(node);
            effective();
            std::thread::sleep(step.hold);
            cluster.restart(node)?;
        }
        FaultKind::Pause => {
            cluster.pause(node, true)?;
            effective();
            std::thread::sleep(step.hold);
            cluster.pause(node, false)?;
        }
        FaultKind::Isolate | FaultKind::Split => {
            cluster.set_links_around(minority, true, true, LinkRule::Drop);
            effective();
            std::thread::sleep(step.hold);
            cluster.heal_links();
        }
        FaultKind::OneWay => {
            cluster.set_links_around(minority, true, false, LinkRule::Drop);
            effective();
            std::thread::sleep(step.hold);
            cluster.heal_links();
        }
        FaultKind::Latency => {
            let delay = LinkRule::Delay(Duration::from_millis(step.delay_ms));
            cluster.set_links_around(minority, true, true, delay);
            std::thread::sleep(step.hold);
            cluster.heal_links();
        }
        FaultKind::Loss => {
            cluster.set_links_around(minority, true, true, LinkRule::Loss(step.loss));
            std::thread::sleep(step.hold);
            cluster.heal_links();
        }
        FaultKind::JoinDrain => {
            let joined = cluster.join()?;
            gateways.write().push(cluster.url(joined));
            cluster.wait_healthy(RECOVERY_TIMEOUT)?;
            let drained = cluster.drain(joined, RECOVERY_TIMEOUT);
            // A drained node's gateway is gone: clients stop using it, as a balancer would.
            gateways.write().retain(|url| *url != cluster.url(joined));
            drained?;
        }
        FaultKind::RollingRestart => {
            for index in cluster.running() {
                cluster.stop(index)?;
                cluster.restart(index)?;
                cluster.wait_healthy(RECOVERY_TIMEOUT)?;
            }
        }
        FaultKind::DiskFull => {
            cluster.set_failpoints(node, &[("disk-full", "return")])?;
            // The node re-reads its fail-point file every 100 ms.
            std::thread::sleep(Duration::from_millis(150));
            effective();
            std::thread::sleep(step.hold);
            cluster.set_failpoints(node, &[])?;
            // A node whose log append failed has stopped its raft groups; the operator frees
            // space and restarts it.
            cluster.kill(node);
            cluster.restart(node)?;
        }
    }
    Ok(())
}

/// Every user's profile through every running node's gateway, retried within a budget; a
/// user nobody wrote for reads as an empty profile (404).
fn read_back(cluster: &ChaosCluster, journal: &workload::Journal) -> checker::ReadBacks {
    let mut read_backs = BTreeMap::new();
    for index in cluster.running() {
        let client = client::client(&cluster.url(index), Some(cluster.admin_key()));
        let mut users = BTreeMap::new();
        for user in journal.users() {
            let read = match &client {
                Ok(client) => read_profile(client, user),
                Err(error) => Err(format!("{error:#}")),
            };
            users.insert(user.clone(), read);
        }
        read_backs.insert(cluster.name(index).to_string(), users);
    }
    read_backs
}

/// What every running node's search finds of the merchant's products. A node whose
/// answer contradicts the acknowledged writes is asked again within a budget: replicas
/// apply the catalog log a little after its leader answers.
fn read_back_catalog(
    cluster: &ChaosCluster,
    journal: &workload::Journal,
) -> checker::catalog::CatalogReadBacks {
    let mut read_backs = BTreeMap::new();
    for index in cluster.running() {
        let node = cluster.name(index).to_string();
        let deadline = Instant::now() + READ_BACK_BUDGET;
        let found = loop {
            let found = client::client(&cluster.url(index), Some(cluster.storefront_key()))
                .map_err(|error| format!("{error:#}"))
                .and_then(|client| search_chaosware(&client));
            let clean = checker::catalog::node_findings(journal, &node, &found).is_empty();
            if clean || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        read_backs.insert(node, found);
    }
    read_backs
}

/// The merchant's products a search finds, by id, with the edition their titles carry.
fn search_chaosware(client: &Client) -> Result<BTreeMap<String, u64>, String> {
    let body = inkling_api::SearchBody {
        mode: inkling_api::SearchMode::Lexical,
        ..inkling_api::SearchBody::new("catalog-checker", workload::CHAOSWARE_WORD, 50)
    };
    let answer = client.search(&body).map_err(|error| error.to_string())?;
    if answer.coverage < 1.0 {
        return Err(format!(
            "only {:.0}% of the index answered",
            answer.coverage * 100.0
        ));
    }
    Ok(answer
        .items
        .into_iter()
        .filter(|item| item.product.id.starts_with(workload::CHAOSWARE_WORD))
        .filter_map(|item| {
            let edition = item.product.title.rsplit(' ').next()?.parse().ok()?;
            Some((item.product.id, edition))
        })
        .collect())
}

fn read_profile(client: &Client, user: &str) -> Result<checker::ReadBack, String> {
    let deadline = Instant::now() + READ_BACK_BUDGET;
    loop {
        // The export (an admin route) carries the applied keys; storefront answers do not.
        match client.export_user(user) {
            Ok(export) => {
                return Ok(checker::ReadBack {
                    event_count: export.profile.map_or(0, |profile| profile.event_count),
                    key_hashes: export.applied_event_keys,
                });
            }
            Err(error) if Instant::now() > deadline => return Err(error.to_string()),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
