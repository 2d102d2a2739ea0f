//! Test fixtures: journals, faults and read-backs with every instant given in milliseconds
//! after one shared origin, so cases read as timelines.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::evidence::{FaultRecord, ReadBack, ReadBacks};
use crate::schedule::{FaultKind, Step};
use crate::workload::{Ack, Attempt, CommitRecord, Journal, RequestRecord};

/// `ms` milliseconds after the origin every fixture shares.
pub fn at(ms: u64) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
}

/// A fault of `kind` on the nodes with raft ids `targets`, injected at `started` ms,
/// healed at `healed` ms, the cluster whole again at `recovered` ms.
pub fn fault(
    kind: FaultKind,
    (started, healed, recovered): (u64, u64, u64),
    targets: &[u64],
) -> FaultRecord {
    FaultRecord {
        step: Step {
            kind,
            node: 0,
            hold: Duration::from_millis(healed - started),
            delay_ms: 0,
            loss: 0.0,
        },
        started: at(started),
        healed: at(healed),
        recovered: at(recovered),
        affected_partitions: Vec::new(),
        targets: targets.to_vec(),
        problem: None,
    }
}

/// The commit record of a write to `user`'s own partition.
pub fn commit_for(user: &str, term: u64, leader: u64) -> CommitRecord {
    CommitRecord {
        partition: u64::from(inkling_replication::partition_of(user)),
        term,
        leader,
    }
}

/// A batch acknowledged for `user`, sent at `started` ms and answered at `finished` ms.
pub fn ack(
    user: &str,
    keys: &[&str],
    (started, finished): (u64, u64),
    commits: &[CommitRecord],
) -> Ack {
    Ack {
        user: user.to_string(),
        keys: keys.iter().map(|key| key.to_string()).collect(),
        started: at(started),
        finished: at(finished),
        commits: commits.to_vec(),
    }
}

/// A request for `user` sent at `started` ms and answered (or given up) at `finished` ms,
/// through one attempt at one gateway.
pub fn request(user: &str, (started, finished): (u64, u64), ok: bool) -> RequestRecord {
    let error = (!ok).then(|| format!("{user} refused"));
    RequestRecord {
        user: user.to_string(),
        kind: "events",
        started: at(started),
        finished: at(finished),
        ok,
        error: error.clone(),
        attempts: vec![Attempt {
            gateway: "node-1".to_string(),
            started: at(started),
            finished: at(finished),
            error,
        }],
    }
}

/// A journal of `acks` and `requests`; every user either names was sent something.
pub fn journal(acks: Vec<Ack>, requests: Vec<RequestRecord>) -> Journal {
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ack in &acks {
        sent.entry(ack.user.clone())
            .or_default()
            .extend(ack.keys.iter().cloned());
    }
    for request in &requests {
        sent.entry(request.user.clone()).or_default();
    }
    Journal {
        acks,
        sent,
        requests,
        catalog: Vec::new(),
    }
}

/// A profile that remembers `keys` and counts `event_count` applied events.
pub fn reading(keys: &[&str], event_count: u64) -> ReadBack {
    ReadBack {
        event_count,
        key_hashes: keys
            .iter()
            .map(|key| inkling_domain::event_key_hash(key))
            .collect(),
    }
}

/// A profile that remembers exactly `keys`, each applied once.
pub fn clean(keys: &[&str]) -> Result<ReadBack, String> {
    Ok(reading(keys, keys.len() as u64))
}

/// One user's reading through one node, or why it could not be read.
pub type Reading<'a> = (&'a str, Result<ReadBack, String>);

/// Every node's readings: (node, [(user, reading)]).
pub fn read_backs(nodes: &[(&str, &[Reading])]) -> ReadBacks {
    nodes
        .iter()
        .map(|(node, users)| {
            let users = users
                .iter()
                .map(|(user, reading)| (user.to_string(), reading.clone()))
                .collect();
            (node.to_string(), users)
        })
        .collect()
}
