//! `inkling status`: a running cluster as one node sees it.

use anyhow::{Context, Result};
use inkling_cluster::ClusterStatus;

pub fn show(node: &str, json: bool) -> Result<()> {
    let url = format!("http://{node}/internal/status");
    let status: ClusterStatus = ureq::get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .call()
        .with_context(|| format!("cannot reach {node}"))?
        .into_json()
        .with_context(|| format!("{node} answered something other than a cluster status"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print_table(&status);
    Ok(())
}

fn print_table(status: &ClusterStatus) {
    println!("as seen by {}", status.node);
    println!("{:<12} {:<22} {:<10} roles", "member", "address", "state");
    for member in &status.members {
        let state = if member.draining { "draining" } else { "live" };
        println!(
            "{:<12} {:<22} {:<10} {}",
            member.name, member.http_addr, state, member.roles
        );
    }
    for name in &status.dead {
        println!("{name:<12} {:<22} {:<10}", "", "down");
    }
    println!("actor mesh sessions: {}", status.mesh_peers.join(" "));
    for (group, pools) in &status.model_pools {
        println!("model pools in {group}: {pools}");
    }
    for (group, replicas) in &status.shard_replicas {
        println!("shard replicas in {group}: {replicas}");
    }
    println!();
    println!(
        "{:>9} {:<10} {:>5} {:<22} {:>8} {:>8}  voters",
        "partition", "here", "term", "leader", "applied", "sessions"
    );
    for partition in &status.partitions {
        println!(
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
}

/// How long `inkling drain` waits for the node to hand everything over and exit.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Asks the node to drain and waits until it has exited.
pub fn drain(node: &str) -> Result<()> {
    let url = format!("http://{node}/internal/drain");
    ureq::post(&url)
        .timeout(std::time::Duration::from_secs(10))
        .call()
        .with_context(|| format!("cannot reach {node}"))?;
    println!("{node} is draining: its replicas move to other nodes");
    let started = std::time::Instant::now();
    let status_url = format!("http://{node}/internal/status");
    while started.elapsed() < DRAIN_TIMEOUT {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let reply = ureq::get(&status_url)
            .timeout(std::time::Duration::from_secs(5))
            .call();
        let Ok(reply) = reply else {
            println!(
                "{node} has drained and stopped after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        };
        if let Ok(status) = reply.into_json::<ClusterStatus>() {
            let held = status.partitions.len();
            println!("{node} still holds {held} groups");
        }
    }
    anyhow::bail!("{node} did not finish draining within {DRAIN_TIMEOUT:?}")
}
