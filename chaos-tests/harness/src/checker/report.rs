//! The checker's report: what a run found, its verdict, and the summary table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::availability::percent;

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
    /// Product writes and deletions the merchant had acknowledged.
    pub catalog_writes_acknowledged: usize,
    /// Products some node's search found as no acknowledged write left them (h).
    pub catalog_violations: usize,
    /// Up to 20 examples of what went wrong, for a human.
    pub findings: Vec<String>,
    /// The properties that failed: (a) lost, (b) duplicated, (c) one owner,
    /// (d) availability, (e) failover, (g) every drain finishes, (h) the catalog.
    pub failed: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }

    /// Whether every join-then-drain fault's node drained and exited by itself (g).
    pub fn drains_finished(&self) -> bool {
        !self.failed.iter().any(|failed| failed.starts_with("(g)"))
    }

    /// Whether the safety properties (a)–(c) and (h) hold, whatever availability and
    /// speed were.
    pub fn safe(&self) -> bool {
        !self.failed.iter().any(|failed| {
            ["(a)", "(b)", "(c)", "(h)"]
                .iter()
                .any(|property| failed.starts_with(property))
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
        rows.push((
            "catalog writes acknowledged".into(),
            self.catalog_writes_acknowledged.to_string(),
        ));
        rows.push((
            "catalog violations".into(),
            self.catalog_violations.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failed: &[&str]) -> Report {
        Report {
            seed: 7,
            schedule: vec!["kill -9 node-1, restart after 3.0s".to_string()],
            faults_by_kind: BTreeMap::from([("kill".to_string(), 1)]),
            events_acknowledged: 120,
            lost: 0,
            duplicated: 0,
            unverified: 0,
            ownership_violations: 0,
            requests: 200,
            requests_ok: 199,
            availability: 0.995,
            availability_during_faults: 0.98765,
            failover_samples: 4,
            failover_p50_ms: Some(250),
            failover_p99_ms: None,
            catalog_writes_acknowledged: 3,
            catalog_violations: 0,
            findings: vec![],
            failed: failed.iter().map(|failed| failed.to_string()).collect(),
        }
    }

    #[test]
    fn the_verdict_passes_only_without_failures_and_is_safe_without_a_to_c_and_h() {
        // (failed properties, passed, safe, the table's verdict)
        let cases: &[(&[&str], bool, bool, &str)] = &[
            (&[], true, true, "pass"),
            (&["(a) 1 lost"], false, false, "FAIL (a) 1 lost"),
            (&["(b) 2 twice"], false, false, "FAIL (b) 2 twice"),
            (&["(c) 1 owner"], false, false, "FAIL (c) 1 owner"),
            (
                &["(d) slow", "(e) slower"],
                false,
                true,
                "FAIL (d) slow; (e) slower",
            ),
            (
                &["(d) slow", "(c) 1 owner"],
                false,
                false,
                "FAIL (d) slow; (c) 1 owner",
            ),
            (
                &["(h) 1 catalog read-backs contradict an acknowledged write"],
                false,
                false,
                "FAIL (h) 1 catalog read-backs contradict an acknowledged write",
            ),
        ];
        for (failed, passed, safe, verdict) in cases {
            let report = report(failed);
            assert_eq!(report.passed(), *passed, "{failed:?}");
            assert_eq!(report.safe(), *safe, "{failed:?}");
            let last_row = report
                .table()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string();
            assert_eq!(last_row, format!("verdict                      {verdict}"));
        }
    }

    #[test]
    fn the_table_aligns_every_measure() {
        let expected = "\
seed                         7
faults: kill                 1
events acknowledged          120
lost                         0
duplicated                   0
unverified profiles          0
ownership violations         0
requests ok / sent           199 / 200
catalog writes acknowledged  3
catalog violations           0
availability                 99.50%
availability during faults   98.77%
failover p50 / p99           250 ms / - (4 samples)
verdict                      pass
";
        assert_eq!(report(&[]).table(), expected);
    }
}
