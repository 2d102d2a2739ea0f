//! (e) Failover: after a fault takes away the leader of a user's partition, how long until
//! that user is answered again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::evidence::FaultRecord;
use crate::workload::Journal;

/// Required 99th percentile of failover time.
pub const MAX_FAILOVER_P99: Duration = Duration::from_secs(3);
/// How much of each attempt's error a failover story quotes.
const STORY_ERROR_CHARS: usize = 120;

/// Every failover measured, with what a human needs to see about them.
#[derive(Debug, Default)]
pub(super) struct Failover {
    /// Shortest first.
    pub samples: Vec<Duration>,
    pub findings: Vec<String>,
}

impl Failover {
    pub fn p50_ms(&self) -> Option<u64> {
        quantile(&self.samples, 0.5)
    }

    pub fn p99_ms(&self) -> Option<u64> {
        quantile(&self.samples, 0.99)
    }

    /// Property (e)'s failure, if it failed.
    pub fn failure(&self) -> Option<String> {
        self.p99_ms()
            .filter(|p99| *p99 > MAX_FAILOVER_P99.as_millis() as u64)
            .map(|p99| format!("(e) failover p99 {p99} ms > {MAX_FAILOVER_P99:?}"))
    }
}

/// One user's failover after one fault.
#[derive(Debug, Clone, PartialEq)]
struct UserFailover<'j> {
    user: &'j str,
    /// The user's first successful answer after the fault.
    answered: Instant,
    taken: Duration,
}

/// Every user's failover after every fault that takes a node away, with the slowest one of
/// each kind told in full and each kind's median and worst.
pub(super) fn check_failover(journal: &Journal, faults: &[FaultRecord]) -> Failover {
    let mut samples: Vec<Duration> = Vec::new();
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    // The slowest failover of each kind, with what its user's requests went through.
    let mut worst_by_kind: BTreeMap<&str, (Duration, String)> = BTreeMap::new();
    for fault in faults
        .iter()
        .filter(|fault| fault.step.kind.takes_a_node_away())
    {
        let kind = fault.step.kind.name();
        for failover in user_failovers(journal, fault) {
            samples.push(failover.taken);
            by_kind.entry(kind).or_default().push(failover.taken);
            if worst_by_kind
                .get(kind)
                .is_none_or(|(worst, _)| failover.taken > *worst)
            {
                let story = failover_story(journal, fault, failover.user, failover.answered);
                worst_by_kind.insert(kind, (failover.taken, story));
            }
        }
    }
    let mut findings: Vec<String> = worst_by_kind
        .iter()
        .map(|(kind, (taken, story))| {
            format!(
                "slowest failover after {kind} ({} ms): {story}",
                taken.as_millis()
            )
        })
        .collect();
    findings.extend(
        by_kind
            .into_iter()
            .map(|(kind, taken)| kind_summary(kind, taken)),
    );
    samples.sort();
    Failover { samples, findings }
}

/// For each user whose partition's leader the fault took away: from when the user was
/// first waiting after the fault (the fault itself, for a request in flight then) to the
/// first successful answer after the fault. Users never answered have no failover.
fn user_failovers<'j>(journal: &'j Journal, fault: &FaultRecord) -> Vec<UserFailover<'j>> {
    let affected = led_by_targets(journal, fault);
    let mut waiting: BTreeMap<&str, Instant> = BTreeMap::new();
    let mut answered: BTreeMap<&str, Instant> = BTreeMap::new();
    for request in journal.requests.iter().filter(|request| {
        request.finished > fault.started
            && affected.contains(&u64::from(inkling_replication::partition_of(&request.user)))
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
    answered
        .into_iter()
        .map(|(user, answered)| UserFailover {
            user,
            answered,
            taken: answered.duration_since(waiting[user]),
        })
        .collect()
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
                    outcome.chars().take(STORY_ERROR_CHARS).collect::<String>()
                )
            })
        })
        .collect();
    format!("{user}: {}", attempts.join("; "))
}

/// One kind's median and worst failover, over its (non-empty) samples.
fn kind_summary(kind: &str, mut taken: Vec<Duration>) -> String {
    taken.sort();
    let worst = taken.last().copied().unwrap_or_default();
    let median = taken[taken.len() / 2];
    format!(
        "failover after {kind}: median {} ms, worst {} ms over {} users",
        median.as_millis(),
        worst.as_millis(),
        taken.len()
    )
}

/// The `q` quantile of `sorted`, in milliseconds: the smallest sample with at least `q` of
/// them at or below it. None without samples.
fn quantile(sorted: &[Duration], q: f64) -> Option<u64> {
    (!sorted.is_empty()).then(|| {
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index].as_millis() as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{ack, at, commit_for, fault, journal, request};
    use crate::schedule::FaultKind;
    use crate::workload::{Ack, RequestRecord};

    /// Node 7, the one the faults take away, leads ann's and cat's partitions; node 8 leads
    /// bob's: each said so by acknowledging a write before the faults (at 1000 ms).
    fn leaders_before_the_fault() -> Vec<Ack> {
        vec![
            ack("ann", &["a"], (0, 10), &[commit_for("ann", 1, 7)]),
            ack("bob", &["b"], (0, 10), &[commit_for("bob", 1, 8)]),
            ack("cat", &["c"], (0, 10), &[commit_for("cat", 1, 7)]),
        ]
    }

    #[test]
    fn the_fixture_users_live_in_distinct_partitions() {
        let partitions: HashSet<_> = ["ann", "bob", "cat"]
            .into_iter()
            .map(inkling_replication::partition_of)
            .collect();
        assert_eq!(partitions.len(), 3);
    }

    #[test]
    fn a_users_failover_runs_from_their_first_wait_to_their_first_answer() {
        let kill = || fault(FaultKind::Kill, (1000, 4000, 5000), &[7]);
        // (name, extra acks, requests (user, started ms, finished ms, ok), (user, ms) expected)
        type Requests = &'static [(&'static str, u64, u64, bool)];
        type Failovers = &'static [(&'static str, u64)];
        let cases: Vec<(&str, Vec<Ack>, Requests, Failovers)> = vec![
            (
                "sent after the fault and answered",
                vec![],
                &[("ann", 1500, 1700, true)],
                &[("ann", 200)],
            ),
            (
                "in flight at the fault: waiting from the fault",
                vec![],
                &[("ann", 900, 1300, true)],
                &[("ann", 300)],
            ),
            (
                "failed tries before the answer count",
                vec![],
                &[("ann", 1100, 1600, false), ("ann", 1700, 2500, true)],
                &[("ann", 1400)],
            ),
            (
                "a slow early request answered after a quick later one",
                vec![],
                &[("ann", 1100, 3000, true), ("ann", 1200, 1400, true)],
                &[("ann", 300)],
            ),
            (
                "answered before the fault does not count",
                vec![],
                &[("ann", 500, 900, true), ("ann", 1500, 1600, true)],
                &[("ann", 100)],
            ),
            (
                "never answered: no failover",
                vec![],
                &[("ann", 1100, 1600, false)],
                &[],
            ),
            (
                "a user whose leader the fault left alone",
                vec![],
                &[("bob", 1100, 1600, true)],
                &[],
            ),
            (
                "every affected user, by name",
                vec![],
                &[
                    ("cat", 1100, 1300, true),
                    ("bob", 1100, 1600, true),
                    ("ann", 1100, 1200, true),
                ],
                &[("ann", 100), ("cat", 200)],
            ),
            (
                "the newest acknowledgement before the fault names the leader",
                vec![ack("ann", &["a2"], (20, 30), &[commit_for("ann", 2, 8)])],
                &[("ann", 1100, 1600, true)],
                &[],
            ),
            (
                "an acknowledgement finished at the fault does not name the leader",
                vec![ack("bob", &["b2"], (900, 1000), &[commit_for("bob", 2, 7)])],
                &[("bob", 1100, 1600, true)],
                &[],
            ),
            (
                "one finished just before it does",
                vec![ack("bob", &["b2"], (900, 999), &[commit_for("bob", 2, 7)])],
                &[("bob", 1100, 1600, true)],
                &[("bob", 500)],
            ),
        ];
        for (name, extra_acks, requests, expected) in cases {
            let mut acks = leaders_before_the_fault();
            acks.extend(extra_acks);
            let requests = requests
                .iter()
                .map(|(user, started, finished, ok)| request(user, (*started, *finished), *ok))
                .collect();
            let journal = journal(acks, requests);
            let found: Vec<(&str, u64)> = user_failovers(&journal, &kill())
                .iter()
                .map(|failover| (failover.user, failover.taken.as_millis() as u64))
                .collect();
            assert_eq!(found, expected, "{name}");
        }
    }

    /// Requests for ann: one in flight at the fault at 1000 ms and failing, then one
    /// answered `taken_ms` after the fault.
    fn ann_answered_after(taken_ms: u64) -> Vec<RequestRecord> {
        vec![
            request("ann", (900, 1100), false),
            request("ann", (1100, 1000 + taken_ms), true),
        ]
    }

    #[test]
    fn failover_p99_must_stay_within_the_limit() {
        let kill = fault(FaultKind::Kill, (1000, 4000, 5000), &[7]);
        let latency = fault(FaultKind::Latency, (1000, 4000, 5000), &[7]);
        // (name, faults, ann's failover, samples, p50 / p99 ms, failure, findings)
        type Expected = (usize, Option<u64>, Option<&'static str>, usize);
        let cases: Vec<(&str, Vec<FaultRecord>, u64, Expected)> = vec![
            ("no faults", vec![], 200, (0, None, None, 0)),
            (
                "a fault that takes no node away",
                vec![latency],
                200,
                (0, None, None, 0),
            ),
            (
                "one quick failover",
                vec![kill.clone()],
                200,
                (1, Some(200), None, 2),
            ),
            (
                "exactly the limit passes",
                vec![kill.clone()],
                3000,
                (1, Some(3000), None, 2),
            ),
            (
                "just over the limit fails",
                vec![kill.clone()],
                3001,
                (1, Some(3001), Some("(e) failover p99 3001 ms > 3s"), 2),
            ),
        ];
        for (name, faults, taken_ms, expected) in cases {
            let journal = journal(leaders_before_the_fault(), ann_answered_after(taken_ms));
            let found = check_failover(&journal, &faults);
            let (samples, p99, failure, findings) = expected;
            assert_eq!(found.samples.len(), samples, "{name}");
            assert_eq!(found.p50_ms(), p99, "{name}");
            assert_eq!(found.p99_ms(), p99, "{name}");
            assert_eq!(found.failure().as_deref(), failure, "{name}");
            assert_eq!(found.findings.len(), findings, "{name}");
        }
    }

    #[test]
    fn findings_tell_the_slowest_failover_of_each_kind_then_each_kinds_summary() {
        let faults = [
            fault(FaultKind::Pause, (1000, 4000, 5000), &[7]),
            fault(FaultKind::Kill, (10_000, 14_000, 15_000), &[7]),
        ];
        let requests = vec![
            request("ann", (900, 1100), false),
            request("ann", (1100, 1300), true),
            request("cat", (1100, 1500), true),
            request("ann", (10_100, 10_200), true),
        ];
        let found = check_failover(&journal(leaders_before_the_fault(), requests), &faults);
        let samples: Vec<u128> = found.samples.iter().map(Duration::as_millis).collect();
        assert_eq!(samples, [100, 300, 400]);
        assert_eq!(
            found.findings,
            [
                "slowest failover after kill (100 ms): ann: events node-1 100–200 ms ok",
                "slowest failover after pause (400 ms): cat: events node-1 100–500 ms ok",
                "failover after kill: median 100 ms, worst 100 ms over 1 users",
                "failover after pause: median 400 ms, worst 400 ms over 2 users",
            ]
        );
    }

    #[test]
    fn a_failover_story_lists_every_attempt_until_the_answer() {
        let kill = fault(FaultKind::Kill, (1000, 4000, 5000), &[7]);
        let mut long_error = request("ann", (1300, 1400), false);
        long_error.attempts[0].error = Some("x".repeat(200));
        // (name, requests, answered at ms, story)
        let cases: Vec<(&str, Vec<RequestRecord>, u64, String)> = vec![
            (
                "in flight at the fault, then answered",
                vec![
                    request("ann", (900, 1100), false),
                    request("ann", (1100, 1300), true),
                ],
                1300,
                "ann: events node-1 0–100 ms ann refused; events node-1 100–300 ms ok".into(),
            ),
            (
                "finished before the fault or sent after the answer: left out",
                vec![
                    request("ann", (500, 900), false),
                    request("ann", (1100, 1200), true),
                    request("ann", (1300, 1400), false),
                ],
                1200,
                "ann: events node-1 100–200 ms ok".into(),
            ),
            (
                "other users' requests: left out",
                vec![
                    request("bob", (1100, 1200), false),
                    request("ann", (1100, 1200), true),
                ],
                1200,
                "ann: events node-1 100–200 ms ok".into(),
            ),
            (
                "errors cut short",
                vec![long_error],
                1400,
                format!("ann: events node-1 300–400 ms {}", "x".repeat(120)),
            ),
        ];
        for (name, requests, answered, expected) in cases {
            let journal = journal(vec![], requests);
            assert_eq!(
                failover_story(&journal, &kill, "ann", at(answered)),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn quantiles_pick_the_smallest_sample_covering_the_share() {
        // (samples in ms, p50, p99)
        let cases: Vec<(Vec<u64>, Option<u64>, Option<u64>)> = vec![
            (vec![], None, None),
            (vec![5], Some(5), Some(5)),
            (vec![1, 2], Some(1), Some(2)),
            ((1..=10).collect(), Some(5), Some(10)),
            ((1..=100).collect(), Some(50), Some(99)),
            ((1..=200).collect(), Some(100), Some(198)),
        ];
        for (samples, p50, p99) in cases {
            let sorted: Vec<Duration> = samples
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect();
            assert_eq!(quantile(&sorted, 0.5), p50, "{samples:?}");
            assert_eq!(quantile(&sorted, 0.99), p99, "{samples:?}");
        }
    }

    #[test]
    fn a_kinds_summary_gives_its_median_and_worst() {
        // (samples in ms, summary)
        let cases: &[(&[u64], &str)] = &[
            (&[100], "median 100 ms, worst 100 ms over 1 users"),
            (&[200, 100], "median 200 ms, worst 200 ms over 2 users"),
            (&[300, 100, 200], "median 200 ms, worst 300 ms over 3 users"),
        ];
        for (samples, expected) in cases {
            let taken = samples
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect();
            assert_eq!(
                kind_summary("kill", taken),
                format!("failover after kill: {expected}")
            );
        }
    }
}
