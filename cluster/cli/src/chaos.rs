//! `inkling chaos soak`: seeded faults against a local cluster of this binary's nodes,
//! checked for lost or doubled writes.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ChaosCommand {
    /// Runs this binary's nodes behind a fault proxy on 127.SUBNET.x.x for M minutes,
    /// injecting faults of every kind in a seeded order while shoppers write, then checks
    /// that nothing acknowledged was lost or applied twice and prints a summary table.
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Replays a run's schedule; a fresh seed (printed) by default.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=16))]
        nodes: u16,
        /// Fault kinds to draw from, comma-separated (default: every kind).
        #[arg(long, value_delimiter = ',', value_parser = inkling_chaos::FaultKind::parse)]
        kinds: Vec<inkling_chaos::FaultKind>,
        /// Second octet of the loopback addresses the cluster uses.
        #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=254))]
        subnet: u8,
        /// Also print the summary as one JSON object on the last line.
        #[arg(long)]
        json: bool,
    },
}

/// Blocks: the harness runs processes, threads and its proxy's own runtime.
pub fn run(command: ChaosCommand) -> anyhow::Result<()> {
    let ChaosCommand::Soak {
        minutes,
        seed,
        nodes,
        kinds,
        subnet,
        json,
    } = command;
    let seed = seed.unwrap_or_else(inkling_domain::now_ms);
    let kinds = if kinds.is_empty() {
        inkling_chaos::FaultKind::ALL.to_vec()
    } else {
        kinds
    };
    let limit = Duration::from_secs(minutes * 60);
    // More faults than the time allows (none is shorter than about 5 s, a hold and a
    // pause): the run stops at the time limit, not when the schedule runs out, and the
    // printed schedule is the one any replay draws. One fault per 10 s left a 30-minute
    // soak 90 s short on a fast build.
    let count = (limit.as_secs() / 5).max(kinds.len() as u64) as usize;
    let schedule = inkling_chaos::schedule::rounds(seed, &kinds, usize::from(nodes), count);
    let binary = std::env::current_exe().context("cannot find this binary to run nodes")?;
    let mut config =
        inkling_chaos::RunConfig::new(binary, subnet, usize::from(nodes), seed, schedule);
    config.time_limit = Some(limit);
    config.workload.shoppers = 8;
    config.workload.users_per_shopper = 25;
    config.failpoints = inkling_actors::FAILPOINTS;
    let report = inkling_chaos::run(&config, &mut std::io::stdout())?;
    println!("{}", report.table());
    for finding in &report.findings {
        println!("finding: {finding}");
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    }
    anyhow::ensure!(
        report.passed(),
        "the chaos checker failed: {}",
        report.failed.join("; ")
    );
    Ok(())
}
