//! The checker: after the faults are healed and the cluster is quiet, proves from what the
//! clients saw and what the nodes answer that nothing acknowledged was lost or applied
//! twice, that no partition had two owners at once, and measures availability and failover.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::schedule::{FaultKind, Step};
use crate::workload::Journal;

/// Required share of requests answered within the retry budget while a node is faulty.
pub const MIN_AVAILABILITY: f64 = 0.99;
/// Required 99th percentile of failover time.
pub const MAX_FAILOVER_P99: Duration = Duration::from_secs(3);

/// A fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub step: Step,
    pub started: Instant,
    /// When the nemesis healed it and when the cluster was whole again.
    pub healed: Instant,
    pub recovered: Instant,
    /// Partitions whose leader the fault took away, as one node's status showed them
    /// (failover is measured from the acknowledgements' own leaders instead).
    pub affected_partitions: Vec<u64>,
    /// Raft ids of the nodes the fault took away.
    pub targets: Vec<u64>,
    /// What went wrong while injecting or healing, if anything.
    pub problem: Option<String>,
}

/// A user's profile as one node's gateway answered it.
#[derive(Debug, Clone, Default)]
pub struct ReadBack {
    pub event_count: u64,
    pub key_hashes: Vec<u64>,
}

/// Every node's reading of every user: node name → user → profile (or why it was not read).
pub type ReadBacks = BTreeMap<String, BTreeMap<String, Result<ReadBack, String>>>;

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub schedule: Vec<String>,
    pub faults_by_kind: BTreeMap<String, usize>,
    pub events_acknowledged: usize,
    /// Acknowledged (user, key) pairs missing from a profile read through any node.
    pub lost: usize,
    /// Keys applied more than once, over all users and nodes.
    pub duplicated: usize,
    /// Profiles no node could read back: unverified, counted as a failure.
    pub unverified: usize,
    pub ownership_violations: usize,
    pub requests: usize,
    pub requests_ok: usize,
    pub availability: f64,
    /// Among requests that started while a node was faulty (until the cluster recovered).
    pub availability_during_faults: f64,
    pub failover_samples: usize,
    pub failover_p50_ms: Option<u64>,
    pub failover_p99_ms: Option<u64>,
    /// Up to 20 examples of what went wrong, for a human.
    pub findings: Vec<String>,
    /// The properties that failed: (a) lost, (b) duplicated, (c) one owner,
    /// (d) availability, (e) failover.
    pub failed: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }

    /// Whether the safety properties (a)–(c) hold, whatever availability and speed were.
    pub fn safe(&self) -> bool {
        !self.failed.iter().any(|failed| {
            failed.starts_with("(a)") || failed.starts_with("(b)") || failed.starts_with("(c)")
        })
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        rows.push(("seed".into(), self.seed.to_string()));
        for (kind, count) in &self.faults_by_kind {
            rows.push((format!("faults: {kind}"), count.to_string()));
        }
        rows.push((
            "events acknowledged".into(),
            self.events_acknowledged.to_string(),
        ));
        rows.push(("lost".into(), self.lost.to_string()));
        rows.push(("duplicated".into(), self.duplicated.to_string()));
        rows.push(("unverified profiles".into(), self.unverified.to_string()));
        rows.push((
            "ownership violations".into(),
            self.ownership_violations.to_string(),
        ));
        rows.push((
            "requests ok / sent".into(),
            format!("{} / {}", self.requests_ok, self.requests),
        ));
        rows.push(("availability".into(), percent(self.availability)));
        rows.push((
            "availability during faults".into(),
            percent(self.availability_during_faults),
        ));
        let ms = |value: Option<u64>| value.map_or("-".to_string(), |ms| format!("{ms} ms"));
        rows.push((
            "failover p50 / p99".into(),
            format!(
                "{} / {} ({} samples)",
                ms(self.failover_p50_ms),
                ms(self.failover_p99_ms),
                self.failover_samples
            ),
        ));
        rows.push((
            "verdict".into(),
            if self.passed() {
                "pass".to_string()
            } else {
                format!("FAIL {}", self.failed.join("; "))
            },
        ));
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut table = String::new();
        for (name, value) in rows {
            table.push_str(&format!("{name:<width$}  {value}\n"));
        }
        table
    }
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// Checks a run: the journal of the shoppers, the faults, and every node's read-back.
pub fn check(
    seed: u64,
    schedule: &[Step],
    journal: &Journal,
    faults: &[FaultRecord],
    read_backs: &ReadBacks,
) -> Report {
    let mut findings = Vec::new();
    let mut note = |finding: String| {
        if findings.len() < 20 {
            findings.push(finding);
        }
    };
    for fault in faults {
        if let Some(problem) = &fault.problem {
            note(format!("{}: {problem}", fault.step));
        }
    }

    // (a) and (b): every acknowledged key in every node's reading, exactly once.
    let mut acked: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for ack in &journal.acks {
        let keys = acked.entry(ack.user.as_str()).or_default();
        keys.extend(ack.keys.iter().map(String::as_str));
    }
    let events_acknowledged = acked.values().map(HashSet::len).sum();
    let (mut lost, mut duplicated, mut unverified) = (HashSet::new(), 0usize, 0usize);
    for (node, users) in read_backs {
        for user in journal.users() {
            let reading = match users.get(user) {
                Some(Ok(reading)) => reading,
                Some(Err(error)) => {
                    unverified += 1;
                    note(format!("{node}: profile of {user} unreadable: {error}"));
                    continue;
                }
                None => continue,
            };
            let mut seen: HashMap<u64, usize> = HashMap::new();
            for hash in &reading.key_hashes {
                *seen.entry(*hash).or_default() += 1;
            }
            let twice: usize = seen.values().map(|count| count - 1).sum();
            // Every event carries a key and no user gets near the key window, so the count
            // of applied events must equal the distinct keys remembered.
            let extra = reading.event_count.saturating_sub(seen.len() as u64) as usize;
            if twice + extra > 0 {
                duplicated += twice + extra;
                note(format!(
                    "{node}: {user} has {} events for {} distinct keys",
                    reading.event_count,
                    seen.len()
                ));
            }
            for key in acked.get(user.as_str()).into_iter().flatten() {
                if !seen.contains_key(&inkling_domain::event_key_hash(key)) {
                    if lost.len() < 5 {
                        note(format!("{node}: acknowledged {user}/{key} is missing"));
                    }
                    lost.insert((user.as_str(), *key));
                }
            }
        }
    }

    // (c): one owner per partition and term, and terms of acknowledgements never go
    // backwards in real time.
    let mut owners: HashMap<(u64, u64), HashSet<u64>> = HashMap::new();
    let mut by_partition: BTreeMap<u64, Vec<(Instant, Instant, u64)>> = BTreeMap::new();
    for ack in &journal.acks {
        for commit in &ack.commits {
            owners
                .entry((commit.partition, commit.term))
                .or_default()
                .insert(commit.leader);
            by_partition.entry(commit.partition).or_default().push((
                ack.started,
                ack.finished,
                commit.term,
            ));
        }
    }
    let mut ownership_violations = 0;
    for ((partition, term), leaders) in &owners {
        if leaders.len() > 1 {
            ownership_violations += 1;
            note(format!(
                "partition {partition}: {} leaders acknowledged writes in term {term}",
                leaders.len()
            ));
        }
    }
    for (partition, mut acks) in by_partition {
        acks.sort_by_key(|(_, finished, _)| *finished);
        // The highest term of any ack that had finished before each ack started.
        let mut highest_finished = 0u64;
        let mut finished_index = 0;
        let mut by_start = acks.clone();
        by_start.sort_by_key(|(started, _, _)| *started);
        for (started, _, term) in by_start {
            while finished_index < acks.len() && acks[finished_index].1 < started {
                highest_finished = highest_finished.max(acks[finished_index].2);
                finished_index += 1;
            }
            if term < highest_finished {
                ownership_violations += 1;
                note(format!(
                    "partition {partition}: a write acknowledged in term {term} after one in term {highest_finished} had completed"
                ));
            }
        }
    }
    // A node cut off, frozen or dead cannot reach a quorum: no write may be acknowledged as
    // committed by it while the fault holds. One that is shows a stale owner writing, or a
    // fault that did not take.
    for fault in faults
        .iter()
        .filter(|fault| fault.step.kind.takes_a_node_away())
    {
        let settled = fault.started + Duration::from_millis(200);
        let stale = journal
            .acks
            .iter()
            .filter(|ack| ack.started >= settled && ack.finished <= fault.healed)
            .flat_map(|ack| &ack.commits)
            .filter(|commit| fault.targets.contains(&commit.leader))
            .count();
        if stale > 0 {
            ownership_violations += stale;
            note(format!(
                "{}: {stale} writes acknowledged as committed by the faulty node during the fault",
                fault.step
            ));
        }
    }
    let missing_commits = journal
        .acks
        .iter()
        .filter(|ack| ack.commits.is_empty())
        .count();
    if missing_commits > 0 {
        note(format!(
            "{missing_commits} acknowledgements carried no commit record (term, leader)"
        ));
    }

    // (d): availability, overall and while a node was faulty.
    let requests = journal.requests.len();
    let requests_ok = journal.requests.iter().filter(|request| request.ok).count();
    let during: Vec<_> = journal
        .requests
        .iter()
        .filter(|request| {
            faults
                .iter()
                .any(|fault| request.started >= fault.started && request.started <= fault.recovered)
        })
        .collect();
    let during_ok = during.iter().filter(|request| request.ok).count();
    for failed in journal
        .requests
        .iter()
        .filter(|request| !request.ok)
        .take(3)
    {
        note(format!(
            "{} for {} failed: {}",
            failed.kind,
            failed.user,
            failed.error.as_deref().unwrap_or("?")
        ));
    }
    let share = |ok: usize, total: usize| {
        if total == 0 {
            1.0
        } else {
            ok as f64 / total as f64
        }
    };

    // (e): for each user whose partition's leader the fault took away, from when the user
    // was first waiting after the fault (the fault itself, for a request in flight then) to
    // the first successful answer after the fault.
    let mut failovers: Vec<Duration> = Vec::new();
    let mut failovers_by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    // The slowest failover of each kind, with what its user's requests went through.
    let mut worst_by_kind: BTreeMap<&str, (Duration, String)> = BTreeMap::new();
    for fault in faults
        .iter()
        .filter(|fault| fault.step.kind.takes_a_node_away())
    {
        let affected = led_by_targets(journal, fault);
        let mut waiting: BTreeMap<&str, Instant> = BTreeMap::new();
        let mut answered: BTreeMap<&str, Instant> = BTreeMap::new();
        for request in journal.requests.iter().filter(|request| {
            request.finished > fault.started
                && affected.contains(&u64::from(inkling_cluster::partition_of(&request.user)))
        }) {
            let since = request.started.max(fault.started);
            let entry = waiting.entry(request.user.as_str()).or_insert(since);
            *entry = (*entry).min(since);
            // Any success after the fault ends the wait, a request in flight at the fault
            // included: counting only requests sent after it measured, for a user answered
            // at once, the time until the shopper happened to pick that user again.
            if request.ok {
                let entry = answered
                    .entry(request.user.as_str())
                    .or_insert(request.finished);
                *entry = (*entry).min(request.finished);
            }
        }
        for (user, answered) in answered {
            let taken = answered.duration_since(waiting[user]);
            failovers.push(taken);
            let kind = fault.step.kind.name();
            failovers_by_kind.entry(kind).or_default().push(taken);
            if worst_by_kind
                .get(kind)
                .is_none_or(|(worst, _)| taken > *worst)
            {
                let story = failover_story(journal, fault, user, answered);
                worst_by_kind.insert(kind, (taken, story));
            }
        }
    }
    for (kind, (taken, story)) in &worst_by_kind {
        note(format!(
            "slowest failover after {kind} ({} ms): {story}",
            taken.as_millis()
        ));
    }
    for (kind, mut taken) in failovers_by_kind {
        taken.sort();
        let worst = taken.last().copied().unwrap_or_default();
        let median = taken[taken.len() / 2];
        note(format!(
            "failover after {kind}: median {} ms, worst {} ms over {} users",
            median.as_millis(),
            worst.as_millis(),
            taken.len()
        ));
    }
    failovers.sort();
    let quantile = |q: f64| {
        (!failovers.is_empty()).then(|| {
            let index =
                ((failovers.len() as f64 * q).ceil() as usize).clamp(1, failovers.len()) - 1;
            failovers[index].as_millis() as u64
        })
    };

    let mut faults_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for fault in faults {
        *faults_by_kind
            .entry(fault.step.kind.name().to_string())
            .or_default() += 1;
    }
    let availability_during_faults = share(during_ok, during.len());
    let failover_p99_ms = quantile(0.99);
    let mut failed = Vec::new();
    if !lost.is_empty() || unverified > 0 {
        failed.push(format!(
            "(a) {} acknowledged events lost, {unverified} profiles unverified",
            lost.len()
        ));
    }
    if duplicated > 0 {
        failed.push(format!("(b) {duplicated} events applied twice"));
    }
    if ownership_violations > 0 {
        failed.push(format!("(c) {ownership_violations} ownership violations"));
    }
    if availability_during_faults < MIN_AVAILABILITY {
        failed.push(format!(
            "(d) availability during faults {} < {}",
            percent(availability_during_faults),
            percent(MIN_AVAILABILITY)
        ));
    }
    if let Some(p99) = failover_p99_ms
        && p99 > MAX_FAILOVER_P99.as_millis() as u64
    {
        failed.push(format!("(e) failover p99 {p99} ms > {MAX_FAILOVER_P99:?}"));
    }
    Report {
        seed,
        schedule: schedule.iter().map(Step::to_string).collect(),
        faults_by_kind,
        events_acknowledged,
        lost: lost.len(),
        duplicated,
        unverified,
        ownership_violations,
        requests,
        requests_ok,
        availability: share(requests_ok, requests),
        availability_during_faults,
        failover_samples: failovers.len(),
        failover_p50_ms: quantile(0.5),
        failover_p99_ms,
        findings,
        failed,
    }
}

/// The partitions whose newest acknowledgement before the fault was committed by a node
/// the fault took away: the nodes' own answer to who led them, rather than a status
/// snapshot that may lag.
fn led_by_targets(journal: &Journal, fault: &FaultRecord) -> HashSet<u64> {
    let mut newest: HashMap<u64, (Instant, u64)> = HashMap::new();
    for ack in journal
        .acks
        .iter()
        .filter(|ack| ack.finished < fault.started)
    {
        for commit in &ack.commits {
            let entry = newest
                .entry(commit.partition)
                .or_insert((ack.finished, commit.leader));
            if ack.finished >= entry.0 {
                *entry = (ack.finished, commit.leader);
            }
        }
    }
    newest
        .into_iter()
        .filter(|(_, (_, leader))| fault.targets.contains(leader))
        .map(|(partition, _)| partition)
        .collect()
}

/// Whether any fault of `kind` was injected.
pub fn injected(faults: &[FaultRecord], kind: FaultKind) -> bool {
    faults.iter().any(|fault| fault.step.kind == kind)
}

/// What one user's requests went through between a fault and their first answer after it:
/// each attempt's gateway, start and end (ms since the fault) and error.
fn failover_story(journal: &Journal, fault: &FaultRecord, user: &str, answered: Instant) -> String {
    let since_fault = |at: Instant| at.saturating_duration_since(fault.started).as_millis();
    let attempts: Vec<String> = journal
        .requests
        .iter()
        .filter(|request| request.user == user)
        .filter(|request| request.finished > fault.started && request.started <= answered)
        .flat_map(|request| {
            request.attempts.iter().map(move |attempt| {
                let outcome = attempt.error.as_deref().unwrap_or("ok");
                format!(
                    "{} {} {}–{} ms {}",
                    request.kind,
                    attempt.gateway,
                    since_fault(attempt.started),
                    since_fault(attempt.finished),
                    outcome.chars().take(120).collect::<String>()
                )
            })
        })
        .collect();
    format!("{user}: {}", attempts.join("; "))
}
