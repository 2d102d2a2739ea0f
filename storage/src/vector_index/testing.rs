//! Test fixtures for the vector index: deterministic unit vectors, graph-only indexes and
//! a recall measure.

use std::sync::Arc;

use super::{RebuildPolicy, VectorIndex};

fn unit(values: &[f32]) -> Arc<[f32]> {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    values.iter().map(|v| v / norm).collect()
}

/// Random-ish unit vectors from a fixed recurrence, so the test is deterministic.
pub(super) fn points_seeded(count: usize, dimension: usize, seed: u64) -> Vec<Arc<[f32]>> {
    let mut state = 0x2545_f491_u64 ^ seed;
    (0..count)
        .map(|_| {
            let values: Vec<f32> = (0..dimension)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((state >> 33) as f32 / u32::MAX as f32) - 0.25
                })
                .collect();
            unit(&values)
        })
        .collect()
}

pub(super) fn points(count: usize, dimension: usize) -> Vec<Arc<[f32]>> {
    points_seeded(count, dimension, 0)
}

/// An index whose searches always walk the graph, so recall measures the graph.
pub(super) fn graph_only(dimension: usize, policy: RebuildPolicy) -> VectorIndex {
    VectorIndex::new(dimension, 1_000)
        .with_exact_scan_limit(0)
        .with_rebuild_policy(policy)
}

/// Share of the exact top 10 that the graph search finds, over `queries`.
pub(super) fn recall_at_10(index: &VectorIndex, queries: &[Arc<[f32]>]) -> f64 {
    let all = |_: usize| true;
    let (mut found, mut total) = (0, 0);
    for query in queries {
        let truth = index.exact_search(query, 10, &all);
        let hits = index.search(query, 10, &all);
        total += truth.len();
        found += truth
            .iter()
            .filter(|(slot, _)| hits.iter().any(|(hit, _)| hit == slot))
            .count();
    }
    found as f64 / total.max(1) as f64
}
