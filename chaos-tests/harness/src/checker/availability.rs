//! (d) Availability: the share of requests answered within the retry budget, overall and
//! among those that started while a node was faulty.

use super::evidence::FaultRecord;
use crate::workload::{Journal, RequestRecord};

/// Required share of requests answered within the retry budget while a node is faulty.
pub const MIN_AVAILABILITY: f64 = 0.99;
/// How many failed requests the findings name.
const FAILED_EXAMPLES: usize = 3;

/// What the requests showed about (d).
#[derive(Debug, Default)]
pub(super) struct Availability {
    pub requests: usize,
    pub requests_ok: usize,
    pub overall: f64,
    /// Among requests that started while a node was faulty (until the cluster recovered).
    pub during_faults: f64,
    pub findings: Vec<String>,
}

impl Availability {
    /// Property (d)'s failure, if it failed.
    pub fn failure(&self) -> Option<String> {
        (self.during_faults < MIN_AVAILABILITY).then(|| {
            format!(
                "(d) availability during faults {} < {}",
                percent(self.during_faults),
                percent(MIN_AVAILABILITY)
            )
        })
    }
}

/// Every request's outcome, overall and during the faults, naming the first few failures.
pub(super) fn check_availability(journal: &Journal, faults: &[FaultRecord]) -> Availability {
    let requests = journal.requests.len();
    let requests_ok = journal.requests.iter().filter(|request| request.ok).count();
    let during: Vec<_> = journal
        .requests
        .iter()
        .filter(|request| started_during_a_fault(request, faults))
        .collect();
    let during_ok = during.iter().filter(|request| request.ok).count();
    let findings = journal
        .requests
        .iter()
        .filter(|request| !request.ok)
        .take(FAILED_EXAMPLES)
        .map(|failed| {
            format!(
                "{} for {} failed: {}",
                failed.kind,
                failed.user,
                failed.error.as_deref().unwrap_or("?")
            )
        })
        .collect();
    Availability {
        requests,
        requests_ok,
        overall: share(requests_ok, requests),
        during_faults: share(during_ok, during.len()),
        findings,
    }
}

/// Whether `request` started between a fault's injection and the cluster's recovery from
/// it, both included.
fn started_during_a_fault(request: &RequestRecord, faults: &[FaultRecord]) -> bool {
    faults
        .iter()
        .any(|fault| request.started >= fault.started && request.started <= fault.recovered)
}

/// `ok` out of `total`; no requests at all counts as fully available.
fn share(ok: usize, total: usize) -> f64 {
    if total == 0 {
        1.0
    } else {
        ok as f64 / total as f64
    }
}

/// A share as a percentage with two decimals.
pub(super) fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{fault, journal, request};
    use crate::schedule::FaultKind;

    /// `ok` answered and `failed` failed requests, all sent at `started` ms.
    fn requests(ok: usize, failed: usize, started: u64) -> Vec<RequestRecord> {
        let answered = (0..ok).map(|_| request("ann", (started, started + 5), true));
        let refused = (0..failed).map(|_| request("ann", (started, started + 5), false));
        answered.chain(refused).collect()
    }

    struct Case {
        name: &'static str,
        requests: Vec<RequestRecord>,
        /// (started, recovered) of each fault, in ms.
        faults: &'static [(u64, u64)],
        /// (requests, answered, overall, during faults)
        expected: (usize, usize, f64, f64),
        failure: Option<&'static str>,
        findings: usize,
    }

    #[test]
    fn availability_is_the_share_answered_overall_and_during_faults() {
        let cases = vec![
            Case {
                name: "no requests at all",
                requests: vec![],
                faults: &[(1000, 2000)],
                expected: (0, 0, 1.0, 1.0),
                failure: None,
                findings: 0,
            },
            Case {
                name: "failures outside every fault count only overall",
                requests: requests(3, 1, 500),
                faults: &[(1000, 2000)],
                expected: (4, 3, 0.75, 1.0),
                failure: None,
                findings: 1,
            },
            Case {
                name: "no faults: every request is outside one",
                requests: requests(1, 1, 500),
                faults: &[],
                expected: (2, 1, 0.5, 1.0),
                failure: None,
                findings: 1,
            },
            Case {
                name: "exactly the minimum during a fault passes",
                requests: requests(990, 10, 1500),
                faults: &[(1000, 2000)],
                expected: (1000, 990, 0.99, 0.99),
                failure: None,
                findings: 3,
            },
            Case {
                name: "just above the minimum passes",
                requests: requests(991, 9, 1500),
                faults: &[(1000, 2000)],
                expected: (1000, 991, 0.991, 0.991),
                failure: None,
                findings: 3,
            },
            Case {
                name: "just below the minimum fails",
                requests: requests(989, 11, 1500),
                faults: &[(1000, 2000)],
                expected: (1000, 989, 0.989, 0.989),
                failure: Some("(d) availability during faults 98.90% < 99.00%"),
                findings: 3,
            },
            Case {
                name: "sent the instant a fault started",
                requests: requests(0, 1, 1000),
                faults: &[(1000, 2000)],
                expected: (1, 0, 0.0, 0.0),
                failure: Some("(d) availability during faults 0.00% < 99.00%"),
                findings: 1,
            },
            Case {
                name: "sent the instant the cluster recovered",
                requests: requests(1, 1, 2000),
                faults: &[(1000, 2000)],
                expected: (2, 1, 0.5, 0.5),
                failure: Some("(d) availability during faults 50.00% < 99.00%"),
                findings: 1,
            },
            Case {
                name: "sent just after the cluster recovered",
                requests: requests(0, 1, 2001),
                faults: &[(1000, 2000)],
                expected: (1, 0, 0.0, 1.0),
                failure: None,
                findings: 1,
            },
            Case {
                name: "during any of several faults",
                requests: [
                    requests(1, 0, 1500),
                    requests(0, 1, 3500),
                    requests(5, 0, 2500),
                ]
                .concat(),
                faults: &[(1000, 2000), (3000, 4000)],
                expected: (7, 6, 6.0 / 7.0, 0.5),
                failure: Some("(d) availability during faults 50.00% < 99.00%"),
                findings: 1,
            },
        ];
        for case in cases {
            check_case(case);
        }
    }

    fn check_case(case: Case) {
        let faults: Vec<FaultRecord> = case
            .faults
            .iter()
            .map(|(started, recovered)| {
                fault(FaultKind::Kill, (*started, *started, *recovered), &[1])
            })
            .collect();
        let found = check_availability(&journal(vec![], case.requests), &faults);
        let name = case.name;
        assert_eq!(
            (
                found.requests,
                found.requests_ok,
                found.overall,
                found.during_faults
            ),
            case.expected,
            "{name}"
        );
        assert_eq!(found.failure().as_deref(), case.failure, "{name}");
        assert_eq!(found.findings.len(), case.findings, "{name}");
        for finding in &found.findings {
            assert_eq!(finding, "events for ann failed: ann refused", "{name}");
        }
    }

    #[test]
    fn percent_shows_two_decimals() {
        let cases = [
            (1.0, "100.00%"),
            (0.99, "99.00%"),
            (0.98765, "98.77%"),
            (0.0, "0.00%"),
        ];
        for (share, expected) in cases {
            assert_eq!(percent(share), expected, "{share}");
        }
    }
}
