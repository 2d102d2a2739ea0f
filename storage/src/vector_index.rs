//! Approximate nearest-neighbour search over unit vectors, on an HNSW graph (hnsw_rs).
//!
//! Points are keyed by the caller's slot numbers. hnsw_rs cannot remove points, so a
//! replaced or deleted product's slot simply stops passing the caller's filter; the graph is
//! rebuilt without them when the shard reopens. Inserts take `&self` and run concurrently
//! with searches.
//!
//! Filters apply after the graph search, which asks for more neighbours than needed and
//! widens until enough pass. A filter that few points pass would make that wander, so
//! below [`EXACT_SCAN_LIMIT`] accepted points the search scans them exactly instead.

use std::sync::{Arc, RwLock};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::Hnsw;

/// Below this many points passing the filter, an exact scan is both faster and complete.
pub const EXACT_SCAN_LIMIT: usize = 4_096;
/// Graph degree and build effort: the usual HNSW defaults for sentence embeddings.
const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 100;
const MAX_LAYERS: usize = 16;
/// Search effort: candidates explored per query, at least the number asked for.
const EF_SEARCH: usize = 128;
/// The widest post-filtered graph search before settling for fewer hits than asked.
const MAX_FETCH: usize = 8_192;

pub struct VectorIndex {
    dimension: usize,
    exact_scan_limit: usize,
    graph: Hnsw<'static, f32, UnitCosine>,
    /// The vector of each slot, for exact scans; `None` for slots without one.
    vectors: RwLock<Vec<Option<Arc<[f32]>>>>,
}

impl VectorIndex {
    pub fn new(dimension: usize, expected_points: usize) -> Self {
        Self {
            dimension,
            exact_scan_limit: EXACT_SCAN_LIMIT,
            graph: Hnsw::new(
                MAX_CONNECTIONS,
                expected_points.max(1_000),
                MAX_LAYERS,
                EF_CONSTRUCTION,
                UnitCosine,
            ),
            vectors: RwLock::new(Vec::new()),
        }
    }

    /// Changes when filtered searches scan instead of walking the graph.
    pub fn with_exact_scan_limit(mut self, limit: usize) -> Self {
        self.exact_scan_limit = limit;
        self
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The vector stored for `slot`.
    pub fn vector(&self, slot: usize) -> Option<Arc<[f32]>> {
        let vectors = self.vectors.read().expect("vector lock");
        vectors.get(slot)?.clone()
    }

    /// Adds the vector of `slot`; each slot is inserted once.
    pub fn insert(&self, slot: usize, vector: Arc<[f32]>) {
        debug_assert_eq!(vector.len(), self.dimension);
        self.remember(&[(slot, vector.clone())]);
        self.graph.insert_slice((&vector, slot));
    }

    /// Adds many points at once, using every core; for rebuilding on open.
    pub fn insert_many(&self, points: Vec<(usize, Arc<[f32]>)>) {
        self.remember(&points);
        let owned: Vec<(Vec<f32>, usize)> = points
            .into_iter()
            .map(|(slot, vector)| (vector.to_vec(), slot))
            .collect();
        let borrowed: Vec<(&Vec<f32>, usize)> = owned.iter().map(|(v, slot)| (v, *slot)).collect();
        self.graph.parallel_insert(&borrowed);
    }

    /// Keeps each point's vector for exact scans.
    fn remember(&self, points: &[(usize, Arc<[f32]>)]) {
        let mut vectors = self.vectors.write().expect("vector table lock");
        for (slot, vector) in points {
            if vectors.len() <= *slot {
                vectors.resize(slot + 1, None);
            }
            vectors[*slot] = Some(vector.clone());
        }
    }

    /// The `limit` accepted slots most similar to `query`, best first, with cosine similarity.
    pub fn search(
        &self,
        query: &[f32],
        limit: usize,
        accepted: &dyn Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        if query.len() != self.dimension || limit == 0 {
            return Vec::new();
        }
        if let Some(slots) = self.passing(accepted) {
            return self.exact(query, limit, &slots);
        }
        // Post-filtering: hnsw_rs's own filtered search gives up its early stop and walks
        // the whole graph, so ask the graph for more than needed and filter here, widening
        // the search while too few hits pass.
        let mut fetch = limit * 2;
        loop {
            let hits: Vec<(usize, f32)> = self
                .graph
                .search(query, fetch, EF_SEARCH.max(fetch))
                .into_iter()
                .filter(|neighbour| accepted(neighbour.d_id))
                .map(|neighbour| (neighbour.d_id, 1.0 - neighbour.distance))
                .take(limit)
                .collect();
            if hits.len() == limit || fetch >= MAX_FETCH {
                return hits;
            }
            fetch *= 4;
        }
    }

    /// The exact answer to [`Self::search`], by scanning every accepted vector; the yardstick
    /// for the graph's recall.
    pub fn exact_search(
        &self,
        query: &[f32],
        limit: usize,
        accepted: &dyn Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        let slots: Vec<usize> = {
            let vectors = self.vectors.read().expect("vector table lock");
            (0..vectors.len())
                .filter(|&slot| vectors[slot].is_some() && accepted(slot))
                .collect()
        };
        self.exact(query, limit, &slots)
    }

    /// The accepted slots, if there are few enough for an exact scan.
    fn passing(&self, accepted: &dyn Fn(usize) -> bool) -> Option<Vec<usize>> {
        let vectors = self.vectors.read().expect("vector table lock");
        let mut slots = Vec::new();
        for (slot, vector) in vectors.iter().enumerate() {
            if vector.is_some() && accepted(slot) {
                slots.push(slot);
                if slots.len() > self.exact_scan_limit {
                    return None;
                }
            }
        }
        Some(slots)
    }

    fn exact(&self, query: &[f32], limit: usize, slots: &[usize]) -> Vec<(usize, f32)> {
        let vectors = self.vectors.read().expect("vector table lock");
        let mut hits: Vec<(usize, f32)> = slots
            .iter()
            .filter_map(|&slot| {
                let vector = vectors.get(slot)?.as_ref()?;
                Some((slot, dot(query, vector)))
            })
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits.truncate(limit);
        hits
    }
}

/// Cosine distance between unit vectors. hnsw_rs's own `DistDot` asserts `dot <= 1`, which
/// rounding breaks for near-identical vectors; a panic must never be the answer to that.
struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Arc<[f32]> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    /// Random-ish unit vectors from a fixed recurrence, so the test is deterministic.
    fn points(count: usize, dimension: usize) -> Vec<Arc<[f32]>> {
        let mut state = 0x2545_f491_u64;
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

    #[test]
    fn graph_search_finds_the_exact_neighbours_and_respects_filters() {
        let dimension = 16;
        let data = points(3_000, dimension);
        // A low scan limit, so that every filter but the narrowest goes through the graph.
        let index = VectorIndex::new(dimension, data.len()).with_exact_scan_limit(100);
        index.insert_many(data.iter().cloned().enumerate().collect());
        let all = |_: usize| true;
        let even = |slot: usize| slot % 2 == 0;
        let few = |slot: usize| slot < 50;
        let mut found = 0;
        for query in data.iter().take(50) {
            let truth: Vec<usize> = index
                .exact(query, 10, &(0..data.len()).collect::<Vec<_>>())
                .into_iter()
                .map(|(slot, _)| slot)
                .collect();
            let hits = index.search(query, 10, &all);
            found += hits.iter().filter(|(slot, _)| truth.contains(slot)).count();
            assert!(
                index
                    .search(query, 10, &even)
                    .iter()
                    .all(|(s, _)| s % 2 == 0)
            );
            let filtered = index.search(query, 10, &few);
            assert_eq!(filtered.len(), 10);
            assert!(filtered.iter().all(|(slot, _)| *slot < 50));
        }
        // HNSW is approximate; on this easy set it should miss almost nothing.
        assert!(found >= 490, "recall@10 {found}/500");
        assert!(index.search(&data[0][..4], 10, &all).is_empty());
    }
}
