//! (c) One owner per partition: no two leaders acknowledge writes in one term, the terms of
//! acknowledgements never go backwards in real time, and a node the nemesis took away
//! commits nothing while the fault holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::evidence::FaultRecord;
use crate::workload::Journal;

/// How long after a fault starts before it surely holds: writes that began earlier may
/// still be committed by the node it takes away.
const FAULT_SETTLES: Duration = Duration::from_millis(200);

/// Violations of one rule of (c), with what a human needs to see about them.
#[derive(Debug, Default)]
pub(super) struct Violations {
    pub count: usize,
    pub findings: Vec<String>,
}

impl Violations {
    fn add(&mut self, other: Violations) {
        self.count += other.count;
        self.findings.extend(other.findings);
    }

    /// Property (c)'s failure, if it failed.
    pub fn failure(&self) -> Option<String> {
        (self.count > 0).then(|| format!("(c) {} ownership violations", self.count))
    }
}

/// Every rule of (c), plus a note on acknowledgements that carried no commit record (they
/// escape the rules, so a human should know how many there were).
pub(super) fn check_ownership(journal: &Journal, faults: &[FaultRecord]) -> Violations {
    let mut violations = two_leaders_in_a_term(journal);
    violations.add(terms_going_backwards(journal));
    violations.add(commits_by_faulty_nodes(journal, faults));
    violations.findings.extend(acks_without_commit(journal));
    violations
}

/// One violation for each (partition, term) in which more than one leader acknowledged
/// writes.
fn two_leaders_in_a_term(journal: &Journal) -> Violations {
    let mut owners: HashMap<(u64, u64), HashSet<u64>> = HashMap::new();
    for commit in journal.acks.iter().flat_map(|ack| &ack.commits) {
        owners
            .entry((commit.partition, commit.term))
            .or_default()
            .insert(commit.leader);
    }
    let mut violations = Violations::default();
    for ((partition, term), leaders) in &owners {
        if leaders.len() > 1 {
            violations.count += 1;
            violations.findings.push(format!(
                "partition {partition}: {} leaders acknowledged writes in term {term}",
                leaders.len()
            ));
        }
    }
    violations
}

/// One violation for each write acknowledged in a lower term than one of the same
/// partition that had completed before the write was sent.
fn terms_going_backwards(journal: &Journal) -> Violations {
    let mut by_partition: BTreeMap<u64, Vec<(Instant, Instant, u64)>> = BTreeMap::new();
    for ack in &journal.acks {
        for commit in &ack.commits {
            by_partition.entry(commit.partition).or_default().push((
                ack.started,
                ack.finished,
                commit.term,
            ));
        }
    }
    let mut violations = Violations::default();
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
                violations.count += 1;
                violations.findings.push(format!(
                    "partition {partition}: a write acknowledged in term {term} after one in term {highest_finished} had completed"
                ));
            }
        }
    }
    violations
}

/// One violation for each write acknowledged as committed by a node a fault had taken
/// away, sent after the fault settled and answered before it was healed. A node cut off,
/// frozen or dead cannot reach a quorum, so such a write shows a stale owner writing, or a
/// fault that did not take.
fn commits_by_faulty_nodes(journal: &Journal, faults: &[FaultRecord]) -> Violations {
    let mut violations = Violations::default();
    for fault in faults
        .iter()
        .filter(|fault| fault.step.kind.takes_a_node_away())
    {
        let settled = fault.started + FAULT_SETTLES;
        let stale = journal
            .acks
            .iter()
            .filter(|ack| ack.started >= settled && ack.finished <= fault.healed)
            .flat_map(|ack| &ack.commits)
            .filter(|commit| fault.targets.contains(&commit.leader))
            .count();
        if stale > 0 {
            violations.count += stale;
            violations.findings.push(format!(
                "{}: {stale} writes acknowledged as committed by the faulty node during the fault",
                fault.step
            ));
        }
    }
    violations
}

/// A note on how many acknowledgements carried no commit record, if any did.
fn acks_without_commit(journal: &Journal) -> Option<String> {
    let missing_commits = journal
        .acks
        .iter()
        .filter(|ack| ack.commits.is_empty())
        .count();
    (missing_commits > 0).then(|| {
        format!("{missing_commits} acknowledgements carried no commit record (term, leader)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{ack, fault, journal};
    use crate::schedule::FaultKind;
    use crate::workload::{Ack, CommitRecord};

    /// An ack of one key, sent at `started` ms and answered at `finished` ms, committed
    /// as (partition, term, leader).
    fn committed(
        (started, finished): (u64, u64),
        (partition, term, leader): (u64, u64, u64),
    ) -> Ack {
        let commit = CommitRecord {
            partition,
            term,
            leader,
        };
        ack("ann", &["a"], (started, finished), &[commit])
    }

    #[test]
    fn two_leaders_acknowledging_in_one_term_is_one_violation() {
        // ((partition, term, leader) of each ack, violations)
        type Commits = &'static [(u64, u64, u64)];
        let cases: &[(Commits, usize)] = &[
            (&[], 0),
            (&[(1, 1, 7), (1, 1, 7)], 0),
            (&[(1, 1, 7), (1, 2, 8)], 0),
            (&[(1, 1, 7), (2, 1, 8)], 0),
            (&[(1, 1, 7), (1, 1, 8)], 1),
            (&[(1, 1, 7), (1, 1, 8), (1, 1, 9)], 1),
            (&[(1, 1, 7), (1, 1, 8), (2, 3, 7), (2, 3, 9)], 2),
        ];
        for (commits, expected) in cases {
            let acks = commits
                .iter()
                .map(|commit| committed((0, 10), *commit))
                .collect();
            let found = two_leaders_in_a_term(&journal(acks, vec![]));
            assert_eq!(found.count, *expected, "{commits:?}");
            assert_eq!(found.findings.len(), *expected, "{commits:?}");
        }
    }

    #[test]
    fn a_term_lower_than_one_completed_before_the_write_was_sent_is_a_violation() {
        // ((started ms, finished ms, partition, term) of each ack, violations)
        type Acks = &'static [(u64, u64, u64, u64)];
        let cases: &[(&str, Acks, usize)] = &[
            ("no acks", &[], 0),
            (
                "terms rise",
                &[(0, 10, 1, 1), (20, 30, 1, 2), (40, 50, 1, 2)],
                0,
            ),
            (
                "a lower term after a higher one",
                &[(0, 10, 1, 2), (20, 30, 1, 1)],
                1,
            ),
            (
                "every later write in the lower term counts",
                &[(0, 10, 1, 2), (20, 30, 1, 1), (40, 50, 1, 1)],
                2,
            ),
            (
                "overlapping writes may finish in either order",
                &[(0, 30, 1, 2), (20, 40, 1, 1)],
                0,
            ),
            (
                "sent the instant the higher one finished",
                &[(0, 10, 1, 2), (10, 20, 1, 1)],
                0,
            ),
            (
                "partitions have their own terms",
                &[(0, 10, 1, 5), (20, 30, 2, 1)],
                0,
            ),
        ];
        for (name, acks, expected) in cases {
            let acks = acks
                .iter()
                .map(|(started, finished, partition, term)| {
                    committed((*started, *finished), (*partition, *term, 7))
                })
                .collect();
            let found = terms_going_backwards(&journal(acks, vec![]));
            assert_eq!(found.count, *expected, "{name}");
            assert_eq!(found.findings.len(), *expected, "{name}");
        }
    }

    #[test]
    fn a_node_taken_away_must_commit_nothing_while_the_fault_holds() {
        // A fault on node 7 from 1000 ms, settled at 1200 ms, healed at 5000 ms.
        // (name, fault kind, (started ms, finished ms, leader) of each ack, violations)
        type Acks = &'static [(u64, u64, u64)];
        let cases: &[(&str, FaultKind, Acks, usize)] = &[
            (
                "committed by the faulty node",
                FaultKind::Kill,
                &[(2000, 2100, 7)],
                1,
            ),
            (
                "sent the instant it settled",
                FaultKind::Pause,
                &[(1200, 1300, 7)],
                1,
            ),
            (
                "answered the instant it healed",
                FaultKind::Isolate,
                &[(2000, 5000, 7)],
                1,
            ),
            (
                "each such write counts",
                FaultKind::Split,
                &[(2000, 2100, 7), (3000, 3100, 7)],
                2,
            ),
            (
                "sent before it settled",
                FaultKind::OneWay,
                &[(1199, 1300, 7)],
                0,
            ),
            (
                "answered after it healed",
                FaultKind::DiskFull,
                &[(2000, 5001, 7)],
                0,
            ),
            (
                "committed by another node",
                FaultKind::Kill,
                &[(2000, 2100, 8)],
                0,
            ),
            (
                "a fault that takes no node away",
                FaultKind::Latency,
                &[(2000, 2100, 7)],
                0,
            ),
            (
                "nor does a rolling restart",
                FaultKind::RollingRestart,
                &[(2000, 2100, 7)],
                0,
            ),
        ];
        for (name, kind, acks, expected) in cases {
            let acks = acks
                .iter()
                .map(|(started, finished, leader)| {
                    committed((*started, *finished), (1, 1, *leader))
                })
                .collect();
            let faults = [fault(*kind, (1000, 5000, 6000), &[7])];
            let found = commits_by_faulty_nodes(&journal(acks, vec![]), &faults);
            assert_eq!(found.count, *expected, "{name}");
            assert_eq!(found.findings.len(), usize::from(*expected > 0), "{name}");
        }
    }

    #[test]
    fn acks_without_a_commit_record_are_noted_but_not_violations() {
        // (commit records of each ack, note)
        let cases: &[(&[usize], Option<&str>)] = &[
            (&[], None),
            (&[1, 2], None),
            (
                &[1, 0],
                Some("1 acknowledgements carried no commit record (term, leader)"),
            ),
            (
                &[0, 0, 1],
                Some("2 acknowledgements carried no commit record (term, leader)"),
            ),
        ];
        for (commit_counts, expected) in cases {
            let acks: Vec<Ack> = commit_counts
                .iter()
                .map(|count| {
                    let commits = vec![
                        CommitRecord {
                            partition: 1,
                            term: 1,
                            leader: 7
                        };
                        *count
                    ];
                    ack("ann", &["a"], (0, 10), &commits)
                })
                .collect();
            let journal = journal(acks, vec![]);
            assert_eq!(
                acks_without_commit(&journal).as_deref(),
                *expected,
                "{commit_counts:?}"
            );
            assert_eq!(check_ownership(&journal, &[]).count, 0, "{commit_counts:?}");
        }
    }

    #[test]
    fn ownership_adds_up_every_rule_in_order() {
        let acks = vec![
            // Two leaders in term 2 of partition 1...
            committed((0, 10), (1, 2, 7)),
            committed((0, 10), (1, 2, 8)),
            // ...then term 1 after term 2 had completed, committed by the faulty node.
            committed((2000, 2100), (1, 1, 7)),
            ack("ann", &["b"], (0, 10), &[]),
        ];
        let faults = [fault(FaultKind::Kill, (1000, 5000, 6000), &[7])];
        let found = check_ownership(&journal(acks, vec![]), &faults);
        assert_eq!(found.count, 3);
        assert_eq!(
            found.failure().as_deref(),
            Some("(c) 3 ownership violations")
        );
        let starts: Vec<&str> = found
            .findings
            .iter()
            .map(|finding| finding.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            starts,
            [
                "partition 1",
                "partition 1",
                "kill -9 node-1, restart after 4.0s",
                "1 acknowledgements carried no commit record (term, leader)"
            ]
        );
        assert!(found.findings[0].contains("2 leaders acknowledged writes in term 2"));
        assert!(found.findings[1].contains("in term 1 after one in term 2"));
        assert_eq!(
            check_ownership(&journal(vec![], vec![]), &faults).failure(),
            None
        );
    }
}
