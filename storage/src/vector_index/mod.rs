//! Approximate nearest-neighbour search over unit vectors, on an HNSW graph (hnsw_rs).
//!
//! Points are keyed by the caller's slot numbers. hnsw_rs cannot remove points, so removing a
//! slot drops its vector from the table at once but leaves a dead point in the graph, which
//! searches skip. Once dead points pass a share of the graph ([`RebuildPolicy`]), a
//! background thread builds a fresh graph from the live points and swaps it in, so memory
//! follows the live points however often they are replaced (a rebuild briefly holds two
//! graphs). Inserts and removals take `&self` and run concurrently with searches and with a
//! rebuild: searches never wait for one, and writers wait only while it adds the last few
//! points inserted since its snapshot, just before the swap.
//!
//! Filters apply after the graph search, which asks for more neighbours than needed and
//! widens until enough pass. A filter that few points pass would make that wander, so
//! below [`EXACT_SCAN_LIMIT`] accepted points the search scans them exactly instead.
//!
//! The graph's upkeep (when dead points call for a rebuild, and the rebuild itself) lives in
//! `rebuild`.

mod rebuild;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::Hnsw;
use parking_lot::{Condvar, Mutex, RwLock};

use rebuild::Maintenance;
pub use rebuild::RebuildPolicy;

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
/// The most a search widens for dead points; past it a rebuild is long overdue anyway.
const MAX_INFLATION: f64 = 8.0;

type Graph = Hnsw<'static, f32, UnitCosine>;
type Point = (usize, Arc<[f32]>);

/// How much of the graph is still useful, and how often it was rebuilt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VectorStats {
    /// Slots with a vector: what an exact scan covers.
    pub live: usize,
    /// Points in the current graph, live or dead.
    pub graph_points: usize,
    /// Graph points whose slot was removed since the graph was built.
    pub dead: usize,
    /// Graphs built and swapped in since the index was created.
    pub rebuilds: u64,
    pub rebuilding: bool,
}

pub struct VectorIndex {
    dimension: usize,
    exact_scan_limit: usize,
    /// Shared with the rebuild thread, which may outlive a dropped index for a moment.
    shared: Arc<Shared>,
}

struct Shared {
    /// Swapped whole by a rebuild; searches clone the `Arc` and never wait for one.
    graph: RwLock<Arc<Graph>>,
    points: RwLock<Points>,
    /// Held by every insert and by the last step of a rebuild, so that no insert can reach
    /// the old graph after the rebuild has taken its final backlog.
    inserts: Mutex<()>,
    maintenance: Mutex<Maintenance>,
    /// Signalled when a rebuild ends.
    idle: Condvar,
    /// Set when the index is dropped: a running rebuild gives up.
    closed: AtomicBool,
    /// Runs on the rebuild thread between building from the snapshot and catching up.
    #[cfg(test)]
    pause: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

#[derive(Default)]
struct Points {
    /// The vector of each live slot, for exact scans and rebuilds.
    live: HashMap<usize, Arc<[f32]>>,
    /// While a rebuild runs: slots inserted since its snapshot, which it adds before it swaps.
    backlog: Option<Vec<usize>>,
}

impl Points {
    fn add(&mut self, slot: usize, vector: Arc<[f32]>) {
        let previous = self.live.insert(slot, vector);
        debug_assert!(previous.is_none(), "slot {slot} inserted twice");
        if let Some(backlog) = &mut self.backlog {
            backlog.push(slot);
        }
    }
}

impl VectorIndex {
    pub fn new(dimension: usize, expected_points: usize) -> Self {
        Self {
            dimension,
            exact_scan_limit: EXACT_SCAN_LIMIT,
            shared: Arc::new(Shared {
                graph: RwLock::new(Arc::new(new_graph(expected_points))),
                points: RwLock::new(Points::default()),
                inserts: Mutex::new(()),
                maintenance: Mutex::new(Maintenance::default()),
                idle: Condvar::new(),
                closed: AtomicBool::new(false),
                #[cfg(test)]
                pause: Mutex::new(None),
            }),
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

    /// The vector stored for `slot`, while the slot is live.
    pub fn vector(&self, slot: usize) -> Option<Arc<[f32]>> {
        self.shared.points.read().live.get(&slot).cloned()
    }

    /// Adds the vector of `slot`; each slot is inserted once.
    pub fn insert(&self, slot: usize, vector: Arc<[f32]>) {
        debug_assert_eq!(vector.len(), self.dimension);
        self.shared.add(&[(slot, vector)]);
    }

    /// Adds many points at once, using every core; for rebuilding on open.
    pub fn insert_many(&self, points: Vec<(usize, Arc<[f32]>)>) {
        self.shared.add(&points);
    }

    /// Forgets the vectors of `slots` (unknown ones are skipped) and starts a background
    /// rebuild if that leaves enough dead points in the graph. Returns how many were live.
    pub fn remove(&self, slots: &[usize]) -> usize {
        let removed = {
            let mut points = self.shared.points.write();
            slots
                .iter()
                .filter(|slot| points.live.remove(slot).is_some())
                .count()
        };
        if removed > 0 {
            Shared::rebuild_if_due(&self.shared);
        }
        removed
    }

    pub fn stats(&self) -> VectorStats {
        let (live, graph_points) = self.shared.counts();
        let maintenance = self.shared.maintenance.lock();
        VectorStats {
            live,
            graph_points,
            dead: graph_points.saturating_sub(live),
            rebuilds: maintenance.completed,
            rebuilding: maintenance.running,
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
        if let Some(candidates) = self.passing(accepted) {
            return nearest(query, limit, &candidates);
        }
        let graph = self.shared.graph.read().clone();
        // Dead points crowd the candidates the graph explores (a price update leaves a dead
        // twin right next to the live point), so explore more in proportion: the live
        // candidates, and with them recall, stay as in a clean graph.
        let inflation = self.dead_inflation(&graph);
        let effort = |fetch: usize| ((EF_SEARCH as f64 * inflation) as usize).max(fetch);
        // Post-filtering: hnsw_rs's own filtered search gives up its early stop and walks
        // the whole graph, so ask the graph for more than needed and filter here, widening
        // the search while too few hits pass (dead points never do).
        let mut fetch = ((limit * 2) as f64 * inflation).ceil() as usize;
        loop {
            let found = graph.search(query, fetch, effort(fetch));
            let hits: Vec<(usize, f32)> = {
                let points = self.shared.points.read();
                found
                    .into_iter()
                    .filter(|neighbour| {
                        points.live.contains_key(&neighbour.d_id) && accepted(neighbour.d_id)
                    })
                    .map(|neighbour| (neighbour.d_id, 1.0 - neighbour.distance))
                    .take(limit)
                    .collect()
            };
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
        if query.len() != self.dimension {
            return Vec::new();
        }
        let candidates: Vec<Point> = {
            let points = self.shared.points.read();
            points
                .live
                .iter()
                .filter(|(slot, _)| accepted(**slot))
                .map(|(slot, vector)| (*slot, vector.clone()))
                .collect()
        };
        nearest(query, limit, &candidates)
    }

    /// Graph points per live point: how much more a search explores to see as many live
    /// candidates as in a graph without dead points.
    fn dead_inflation(&self, graph: &Graph) -> f64 {
        let live = self.shared.points.read().live.len().max(1);
        (graph.get_nb_point() as f64 / live as f64).clamp(1.0, MAX_INFLATION)
    }

    /// The accepted points, if there are few enough for an exact scan.
    fn passing(&self, accepted: &dyn Fn(usize) -> bool) -> Option<Vec<Point>> {
        let points = self.shared.points.read();
        let mut candidates = Vec::new();
        for (slot, vector) in &points.live {
            if accepted(*slot) {
                candidates.push((*slot, vector.clone()));
                if candidates.len() > self.exact_scan_limit {
                    return None;
                }
            }
        }
        Some(candidates)
    }
}

impl Drop for VectorIndex {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl Shared {
    /// Adds points to the table and the current graph; a running rebuild learns of them
    /// through the backlog.
    fn add(&self, points: &[Point]) {
        let _inserts = self.inserts.lock();
        let graph = {
            let mut table = self.points.write();
            for (slot, vector) in points {
                table.add(*slot, vector.clone());
            }
            self.graph.read().clone()
        };
        insert_into(&graph, points);
    }

    /// Live slots and graph points. Read one after the other, so a swap in between may
    /// skew them for a moment; good enough for a trigger and for monitoring.
    fn counts(&self) -> (usize, usize) {
        let live = self.points.read().live.len();
        let graph_points = self.graph.read().get_nb_point();
        (live, graph_points)
    }
}

fn new_graph(expected_points: usize) -> Graph {
    Hnsw::new(
        MAX_CONNECTIONS,
        expected_points.max(1_000),
        MAX_LAYERS,
        EF_CONSTRUCTION,
        UnitCosine,
    )
}

/// Inserts points into `graph`, on every core when there are many.
fn insert_into(graph: &Graph, points: &[Point]) {
    match points {
        [] => {}
        [(slot, vector)] => graph.insert_slice((vector, *slot)),
        _ => {
            let borrowed: Vec<(&[f32], usize)> = points
                .iter()
                .map(|(slot, vector)| (&vector[..], *slot))
                .collect();
            graph.parallel_insert_slice(&borrowed);
        }
    }
}

/// The `limit` candidates most similar to `query`, best first; ties go to the lower slot so
/// that the answer does not depend on hash order.
fn nearest(query: &[f32], limit: usize, candidates: &[Point]) -> Vec<(usize, f32)> {
    let mut hits: Vec<(usize, f32)> = candidates
        .iter()
        .map(|(slot, vector)| (*slot, dot(query, vector)))
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits.truncate(limit);
    hits
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
    use super::testing::points;
    use super::*;

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
                .exact_search(query, 10, &all)
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
