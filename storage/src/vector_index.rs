//! Approximate nearest-neighbour search over unit vectors, on an HNSW graph (hnsw_rs).
//!
//! Points are keyed by the caller's slot numbers. hnsw_rs cannot remove points, so a
//! replaced or deleted product's slot simply stops passing the caller's filter; the graph is
//! rebuilt without them when the shard reopens. Inserts take `&self` and run concurrently
//! with searches.
//!
//! A filter that few points pass makes graph search wander, so below
//! [`EXACT_SCAN_LIMIT`] accepted points the search scans them exactly instead.

use std::sync::{Arc, RwLock};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::Hnsw;

/// Below this many points passing the filter, an exact scan is both faster and complete.
pub const EXACT_SCAN_LIMIT: usize = 4_096;
/// Graph degree and build effort: the usual HNSW defaults for sentence embeddings.
const MAX_CONNECTIONS: usize = 24;
const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;
/// Search effort: candidates explored per query, at least the number asked for.
const EF_SEARCH: usize = 128;

pub struct VectorIndex {
    dimension: usize,
    graph: Hnsw<'static, f32, UnitCosine>,
    /// The vector of each slot, for exact scans; `None` for slots without one.
    vectors: RwLock<Vec<Option<Arc<[f32]>>>>,
}

impl VectorIndex {
    pub fn new(dimension: usize, expected_points: usize) -> Self {
        Self {
            dimension,
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

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Adds the vector of `slot`; each slot is inserted once.
    pub fn insert(&self, slot: usize, vector: Arc<[f32]>) {
        debug_assert_eq!(vector.len(), self.dimension);
        {
            let mut vectors = self.vectors.write().expect("vector table lock");
            if vectors.len() <= slot {
                vectors.resize(slot + 1, None);
            }
            vectors[slot] = Some(vector.clone());
        }
        self.graph.insert_slice((&vector, slot));
    }

    /// Adds many points at once, using every core; for rebuilding on open.
    pub fn insert_many(&self, points: Vec<(usize, Arc<[f32]>)>) {
        {
            let mut vectors = self.vectors.write().expect("vector table lock");
            for (slot, vector) in &points {
                if vectors.len() <= *slot {
                    vectors.resize(slot + 1, None);
                }
                vectors[*slot] = Some(vector.clone());
            }
        }
        let owned: Vec<(Vec<f32>, usize)> = points
            .into_iter()
            .map(|(slot, vector)| (vector.to_vec(), slot))
            .collect();
        let borrowed: Vec<(&Vec<f32>, usize)> = owned.iter().map(|(v, slot)| (v, *slot)).collect();
        self.graph.parallel_insert(&borrowed);
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
        let passing = self.passing(accepted);
        if let Some(slots) = passing {
            return self.exact(query, limit, &slots);
        }
        let filter = |slot: &usize| accepted(*slot);
        let mut hits: Vec<(usize, f32)> = self
            .graph
            .search_filter(query, limit, EF_SEARCH.max(limit), Some(&filter))
            .into_iter()
            .map(|neighbour| (neighbour.d_id, 1.0 - neighbour.distance))
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits
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
                if slots.len() > EXACT_SCAN_LIMIT {
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
        let index = VectorIndex::new(dimension, data.len());
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
