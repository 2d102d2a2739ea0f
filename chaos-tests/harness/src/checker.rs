//! The checker: after the faults are healed and the cluster is quiet, proves from what the
//! clients saw and what the nodes answer that nothing acknowledged was lost or applied
//! twice, that no partition had two owners at once, and measures availability and failover.
//!
//! One module per group of properties: `durability` (a) lost and (b) duplicated,
//! `ownership` (c) one owner, `availability` (d), `failover` (e), `catalog` (h) every
//! acknowledged product write read back; (g), every drain finishes, is checked here from
//! the faults. [`check`] runs them all
//! and composes their findings and failures into one [`Report`].

mod availability;
pub mod catalog;
mod durability;
mod evidence;
mod failover;
#[cfg(test)]
mod fixtures;
mod ownership;
mod report;

use std::collections::BTreeMap;

pub use availability::MIN_AVAILABILITY;
pub use evidence::{FaultRecord, ReadBack, ReadBacks};
pub use failover::MAX_FAILOVER_P99;
pub use report::Report;

use crate::schedule::{FaultKind, Step};
use crate::workload::Journal;

/// How many findings a report keeps for a human, first come first kept.
const MAX_FINDINGS: usize = 20;

/// Checks a run: the journal of the shoppers, the faults, and every node's read-back.
pub fn check(
    seed: u64,
    schedule: &[Step],
    journal: &Journal,
    faults: &[FaultRecord],
    read_backs: &ReadBacks,
    catalog_read_backs: &catalog::CatalogReadBacks,
) -> Report {
    let durability = durability::check_read_backs(journal, read_backs);
    let catalog = catalog::check_catalog(journal, catalog_read_backs);
    let ownership = ownership::check_ownership(journal, faults);
    let availability = availability::check_availability(journal, faults);
    let failover = failover::check_failover(journal, faults);
    let (failover_p50_ms, failover_p99_ms) = (failover.p50_ms(), failover.p99_ms());
    let failed = [
        durability.lost_failure(),
        durability.duplicate_failure(),
        ownership.failure(),
        availability.failure(),
        failover.failure(),
        unfinished_drains(faults),
        catalog.failure(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let findings = fault_problems(faults)
        .into_iter()
        .chain(durability.findings)
        .chain(ownership.findings)
        .chain(availability.findings)
        .chain(failover.findings)
        .chain(catalog.findings)
        .take(MAX_FINDINGS)
        .collect();
    Report {
        seed,
        schedule: schedule.iter().map(Step::to_string).collect(),
        faults_by_kind: faults_by_kind(faults),
        events_acknowledged: durability.events_acknowledged,
        lost: durability.lost,
        duplicated: durability.duplicated,
        unverified: durability.unverified,
        ownership_violations: ownership.count,
        requests: availability.requests,
        requests_ok: availability.requests_ok,
        availability: availability.overall,
        availability_during_faults: availability.during_faults,
        failover_samples: failover.samples.len(),
        failover_p50_ms,
        failover_p99_ms,
        catalog_writes_acknowledged: catalog.acknowledged,
        catalog_violations: catalog.violations,
        findings,
        failed,
    }
}

/// What went wrong while the nemesis injected or healed each fault.
fn fault_problems(faults: &[FaultRecord]) -> Vec<String> {
    faults
        .iter()
        .filter_map(|fault| {
            let problem = fault.problem.as_ref()?;
            Some(format!("{}: {problem}", fault.step))
        })
        .collect()
}

/// (g) Every drain finishes: a join-then-drain fault whose node did not join, drain and
/// exit by itself fails the run, whatever else held.
fn unfinished_drains(faults: &[FaultRecord]) -> Option<String> {
    let drains = faults
        .iter()
        .filter(|fault| fault.step.kind == FaultKind::JoinDrain);
    let total = drains.clone().count();
    let unfinished = drains.filter(|fault| fault.problem.is_some()).count();
    (unfinished > 0)
        .then(|| format!("(g) {unfinished} of {total} join-then-drain faults did not finish"))
}

/// How many faults of each kind were injected, by kind name.
fn faults_by_kind(faults: &[FaultRecord]) -> BTreeMap<String, usize> {
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for fault in faults {
        *by_kind
            .entry(fault.step.kind.name().to_string())
            .or_default() += 1;
    }
    by_kind
}

/// Whether any fault of `kind` was injected.
pub fn injected(faults: &[FaultRecord], kind: FaultKind) -> bool {
    faults.iter().any(|fault| fault.step.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::fixtures::{ack, clean, commit_for, fault, journal, read_backs, reading, request};
    use super::*;
    use crate::workload::{Ack, RequestRecord};

    /// The inputs of one run, for a case to spoil.
    struct Run {
        acks: Vec<Ack>,
        requests: Vec<RequestRecord>,
        faults: Vec<FaultRecord>,
        read_backs: ReadBacks,
    }

    /// A run that passes: node 7 acknowledged ann's events "a" and "b", then was killed
    /// from 1000 to 4000 ms (the cluster whole at 5000 ms); ann's next request, sent at
    /// 1100 ms, was answered 100 ms later; both nodes read ann back cleanly.
    fn clean_run() -> Run {
        Run {
            acks: vec![ack("ann", &["a", "b"], (0, 10), &[commit_for("ann", 1, 7)])],
            requests: vec![
                request("ann", (0, 10), true),
                request("ann", (1100, 1200), true),
            ],
            faults: vec![fault(FaultKind::Kill, (1000, 4000, 5000), &[7])],
            read_backs: read_backs(&[
                ("node-1", &[("ann", clean(&["a", "b"]))]),
                ("node-2", &[("ann", clean(&["a", "b"]))]),
            ]),
        }
    }

    fn check_run(run: Run) -> Report {
        let schedule: Vec<Step> = run.faults.iter().map(|fault| fault.step.clone()).collect();
        let journal = journal(run.acks, run.requests);
        check(
            42,
            &schedule,
            &journal,
            &run.faults,
            &run.read_backs,
            &catalog::CatalogReadBacks::new(),
        )
    }

    #[test]
    fn each_failed_property_shows_in_the_verdict() {
        // (name, how the clean run is spoiled, failed properties, safe)
        type Spoil = fn(&mut Run);
        let cases: Vec<(&str, Spoil, &[&str], bool)> = vec![
            ("a clean run", |_| {}, &[], true),
            (
                "an acknowledged event lost",
                |run| run.read_backs = read_backs(&[("node-1", &[("ann", clean(&["a"]))])]),
                &["(a) 1 acknowledged events lost, 0 profiles unverified"],
                false,
            ),
            (
                "a profile unreadable",
                |run| run.read_backs = read_backs(&[("node-1", &[("ann", Err("down".into()))])]),
                &["(a) 0 acknowledged events lost, 1 profiles unverified"],
                false,
            ),
            (
                "an event applied twice",
                |run| {
                    run.read_backs =
                        read_backs(&[("node-1", &[("ann", Ok(reading(&["a", "b"], 3)))])])
                },
                &["(b) 1 events applied twice"],
                false,
            ),
            (
                "the killed node acknowledging during the fault",
                |run| {
                    run.acks
                        .push(ack("ann", &["c"], (2000, 2100), &[commit_for("ann", 1, 7)]))
                },
                &[
                    "(a) 1 acknowledged events lost, 0 profiles unverified",
                    "(c) 1 ownership violations",
                ],
                false,
            ),
            (
                "requests failing during the fault",
                |run| run.requests.push(request("bob", (2000, 2100), false)),
                &["(d) availability during faults 50.00% < 99.00%"],
                true,
            ),
            (
                "a slow failover",
                |run| run.requests[1] = request("ann", (1100, 4200), true),
                &["(e) failover p99 3100 ms > 3s"],
                true,
            ),
        ];
        for (name, spoil, failed, safe) in cases {
            let mut run = clean_run();
            spoil(&mut run);
            let report = check_run(run);
            assert_eq!(report.failed, failed, "{name}");
            assert_eq!(report.passed(), failed.is_empty(), "{name}");
            assert_eq!(report.safe(), safe, "{name}");
        }
    }

    #[test]
    fn the_report_carries_every_measure() {
        let report = check_run(clean_run());
        assert_eq!(report.seed, 42);
        assert_eq!(report.schedule, ["kill -9 node-1, restart after 3.0s"]);
        assert_eq!(
            report.faults_by_kind,
            BTreeMap::from([("kill".to_string(), 1)])
        );
        assert_eq!(report.events_acknowledged, 2);
        assert_eq!(
            (report.lost, report.duplicated, report.unverified),
            (0, 0, 0)
        );
        assert_eq!(report.ownership_violations, 0);
        assert_eq!((report.requests, report.requests_ok), (2, 2));
        assert_eq!(
            (report.availability, report.availability_during_faults),
            (1.0, 1.0)
        );
        assert_eq!(report.failover_samples, 1);
        assert_eq!(
            (report.failover_p50_ms, report.failover_p99_ms),
            (Some(100), Some(100))
        );
        assert_eq!(
            report.findings,
            [
                "slowest failover after kill (100 ms): ann: events node-1 100–200 ms ok",
                "failover after kill: median 100 ms, worst 100 ms over 1 users",
            ]
        );
    }

    #[test]
    fn findings_come_property_by_property_and_stop_at_twenty() {
        // (name, fault problems, findings kept, the first finding)
        let cases: &[(&str, usize, usize, &str)] = &[
            ("no fault problems", 0, 6, "node-1: acknowledged ann/"),
            (
                "fault problems first",
                1,
                7,
                "kill -9 node-1, restart after 3.0s: problem 0",
            ),
            (
                "at most twenty",
                30,
                20,
                "kill -9 node-1, restart after 3.0s: problem 0",
            ),
        ];
        for (name, problems, kept, first) in cases {
            let mut run = clean_run();
            let faulty = run.faults[0].clone();
            run.faults = (0..*problems)
                .map(|problem| FaultRecord {
                    problem: Some(format!("problem {problem}")),
                    ..faulty.clone()
                })
                .collect();
            if run.faults.is_empty() {
                run.faults.push(faulty);
            }
            // One finding from each group of properties (the failover ones: two).
            run.read_backs = read_backs(&[("node-1", &[("ann", clean(&["a"]))])]);
            run.acks.push(ack("ann", &["c"], (0, 10), &[]));
            run.requests.push(request("bob", (2000, 2100), false));
            let report = check_run(run);
            assert_eq!(report.findings.len(), *kept, "{name}");
            assert!(report.findings[0].starts_with(first), "{name}");
            if *problems == 0 {
                let expected_order = [
                    "node-1: acknowledged ann/",
                    "node-1: acknowledged ann/",
                    "1 acknowledgements carried no commit record (term, leader)",
                    "events for bob failed: bob refused",
                    "slowest failover after kill",
                    "failover after kill",
                ];
                for (finding, expected) in report.findings.iter().zip(expected_order) {
                    assert!(finding.starts_with(expected), "{name}: {finding}");
                }
            }
        }
    }

    #[test]
    fn a_drain_that_did_not_finish_fails_the_run() {
        let drain = |problem: Option<&str>| FaultRecord {
            problem: problem.map(str::to_string),
            ..fault(FaultKind::JoinDrain, (0, 1, 2), &[])
        };
        let killed = FaultRecord {
            problem: Some("node-1 did not see every group led".to_string()),
            ..fault(FaultKind::Kill, (0, 1, 2), &[1])
        };
        // (name, faults, the failure expected)
        let cases = [
            ("every drain finished", vec![drain(None), drain(None)], None),
            ("no drains", vec![killed.clone()], None),
            (
                "one drain killed",
                vec![
                    drain(None),
                    drain(Some("node-4 did not finish draining")),
                    killed,
                ],
                Some("(g) 1 of 2 join-then-drain faults did not finish"),
            ),
        ];
        for (name, faults, expected) in cases {
            assert_eq!(unfinished_drains(&faults).as_deref(), expected, "{name}");
        }
    }

    #[test]
    fn injected_tells_whether_a_kind_ran() {
        let faults = [fault(FaultKind::Kill, (0, 1, 2), &[1])];
        let cases = [(FaultKind::Kill, true), (FaultKind::Pause, false)];
        for (kind, expected) in cases {
            assert_eq!(injected(&faults, kind), expected, "{kind:?}");
        }
    }
}
