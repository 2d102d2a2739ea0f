//! The dashboard and the operations guide name only metrics the code registers.

use std::collections::BTreeSet;

const DASHBOARD: &str = include_str!("../../docs/grafana-dashboard.json");
const OPERATIONS: &str = include_str!("../../docs/operations.md");
const METRICS_SOURCE: &str = include_str!("../src/metrics.rs");

/// Every `inkling_...` name in `text`, without the suffixes Prometheus adds to histograms.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("inkling_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(base.to_string());
    }
    names
}

#[test]
fn every_metric_the_docs_name_is_registered() {
    // Crate names (`inkling_ops`) are not metrics.
    let is_metric = |name: &String| !name.ends_with("_ops") && name.len() > "inkling_".len();
    let cases = [
        ("docs/grafana-dashboard.json", DASHBOARD),
        ("docs/operations.md", OPERATIONS),
    ];
    for (file, text) in cases {
        let named: Vec<String> = metric_names(text).into_iter().filter(is_metric).collect();
        assert!(named.len() >= 15, "{file} names only {named:?}");
        for name in named {
            assert!(
                METRICS_SOURCE.contains(&format!("\"{name}\"")),
                "{file} names {name}, which ops/src/metrics.rs does not register"
            );
        }
    }
}

#[test]
fn every_registered_metric_is_on_the_dashboard_and_in_the_guide() {
    let registered: BTreeSet<String> = metric_names(METRICS_SOURCE)
        .into_iter()
        .filter(|name| METRICS_SOURCE.contains(&format!("\"{name}\"")))
        .collect();
    assert!(registered.len() >= 20, "{registered:?}");
    for name in &registered {
        assert!(
            DASHBOARD.contains(name.as_str()),
            "the dashboard lacks {name}"
        );
        assert!(
            OPERATIONS.contains(name.as_str()),
            "docs/operations.md lacks {name}"
        );
    }
}
