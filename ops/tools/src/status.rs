//! `inkling status`: a running cluster as one node sees it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use inkling_api::{Client, ClientConfig};
use inkling_replication::ClusterStatus;

/// How long a status call may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

pub fn show(node: &str, api_key: Option<&str>, json: bool) -> Result<()> {
    let status = off_the_runtime(|| {
        let client = node_client(node, api_key, STATUS_TIMEOUT)?;
        client.cluster_status::<ClusterStatus>().map_err(|error| {
            let context = match error.is_unreadable() {
                true => format!("{node} answered something other than a cluster status"),
                false => format!("cannot reach {node}"),
            };
            anyhow::Error::new(error).context(context)
        })
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print_table(&status);
    Ok(())
}

/// A client of the node whose `--listen` address is `node`, calling with an admin key
/// when the node has keys.
fn node_client(node: &str, api_key: Option<&str>, timeout: Duration) -> Result<Client> {
    let config = ClientConfig {
        api_key: api_key.map(str::to_string),
        ..ClientConfig::timeout(timeout)
    };
    Ok(Client::new(&format!("http://{node}"), config)?)
}

/// Runs `work` on a thread of its own: the CLI calls these commands from its async
/// runtime, where a blocking client may be neither used nor dropped.
fn off_the_runtime<T: Send>(work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .map_err(|_| anyhow::anyhow!("the HTTP client's thread panicked"))?
    })
}

/// The status as a table. Built whole and written once, so `inkling status | head`, which
/// closes the pipe early, ends quietly instead of panicking in `println!`.
fn print_table(status: &ClusterStatus) {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "as seen by {}", status.node);
    let _ = writeln!(
        out,
        "{:<12} {:<22} {:<10} roles",
        "member", "address", "state"
    );
    for member in &status.members {
        let state = if member.draining {
            "draining"
        } else if status.waiting_for_admission.contains(&member.name) {
            "unadmitted"
        } else {
            "live"
        };
        let _ = writeln!(
            out,
            "{:<12} {:<22} {:<10} {}",
            member.name, member.http_addr, state, member.roles
        );
    }
    for name in &status.dead {
        let _ = writeln!(out, "{name:<12} {:<22} {:<10}", "", "down");
    }
    let _ = writeln!(out, "actor mesh sessions: {}", status.mesh_peers.join(" "));
    for (group, pools) in &status.model_pools {
        let _ = writeln!(out, "model pools in {group}: {pools}");
    }
    if let Some(pool) = &status.local_model_pool {
        let _ = writeln!(
            out,
            "this node's model pool: {} worker(s) on {}, {} texts queued, {} refused as overloaded",
            pool.workers, pool.device, pool.queued_texts, pool.rejected
        );
    }
    let mailboxes: Vec<String> = status
        .mailbox_depths
        .iter()
        .map(|(kind, depth)| format!("{kind}={depth}"))
        .collect();
    let _ = writeln!(out, "requests in actor mailboxes: {}", mailboxes.join(" "));
    for (group, replicas) in &status.shard_replicas {
        let _ = writeln!(out, "shard replicas in {group}: {replicas}");
    }
    let held: Vec<String> = status
        .index_shards_held
        .iter()
        .map(usize::to_string)
        .collect();
    let _ = writeln!(out, "index shards held here: {}", held.join(" "));
    if !status.drain_waiting_for.is_empty() {
        let _ = writeln!(out, "draining, waiting for:");
        for wait in &status.drain_waiting_for {
            let _ = writeln!(out, "  {wait}");
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:>9} {:<10} {:>5} {:<22} {:>8} {:>8}  voters",
        "partition", "here", "term", "leader", "applied", "sessions"
    );
    for partition in &status.partitions {
        let _ = writeln!(
            out,
            "{:>9} {:<10} {:>5} {:<22} {:>8} {:>8}  {}",
            partition.partition,
            partition.state,
            partition.term,
            partition.leader.as_deref().unwrap_or("none"),
            partition
                .last_applied
                .map_or_else(|| "-".to_string(), |index| index.to_string()),
            partition.sessions,
            partition.voters.join(" ")
        );
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

/// How long `inkling drain` waits for the node to hand everything over and exit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Admits the node named `name` through the node at `node`; answers the name admitted.
pub fn admit(node: &str, api_key: Option<&str>, name: &str) -> Result<String> {
    off_the_runtime(|| {
        let answer = node_client(node, api_key, STATUS_TIMEOUT)?
            .admit(name)
            .with_context(|| format!("{node} did not admit {name}"))?;
        Ok(answer.admitted)
    })
}

/// Asks the node to drain and waits until it has exited.
pub fn drain(node: &str, api_key: Option<&str>) -> Result<()> {
    off_the_runtime(|| {
        node_client(node, api_key, Duration::from_secs(10))?
            .drain::<serde_json::Value>()
            .with_context(|| format!("cannot reach {node}"))?;
        println!("{node} is draining: its replicas move to other nodes");
        let started = Instant::now();
        let client = node_client(node, api_key, STATUS_TIMEOUT)?;
        while started.elapsed() < DRAIN_TIMEOUT {
            std::thread::sleep(Duration::from_millis(500));
            match client.cluster_status::<ClusterStatus>() {
                Ok(status) => {
                    let held = status.partitions.len();
                    println!("{node} still holds {held} groups");
                }
                // Any failure but an unreadable answer: the node no longer serves.
                Err(error) if !error.is_unreadable() => {
                    println!(
                        "{node} has drained and stopped after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(_) => {}
            }
        }
        anyhow::bail!("{node} did not finish draining within {DRAIN_TIMEOUT:?}")
    })
}
