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

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::Hnsw;
use parking_lot::{Condvar, Mutex, RwLock};

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
/// A rebuild inserts its snapshot in chunks this large, checking between them whether the
/// index was dropped, so a shard that closes does not keep a core busy for long.
const REBUILD_CHUNK: usize = 4_096;
/// A rebuild catches up with the inserts made since its snapshot without holding up writers
/// until no more than this many are left; only those are added while writers wait.
const FINAL_CATCH_UP: usize = 64;

type Graph = Hnsw<'static, f32, UnitCosine>;
type Point = (usize, Arc<[f32]>);

/// When dead points make rebuilding the graph worth its cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildPolicy {
    /// Rebuild once dead points are more than this share of the graph's points...
    pub dead_share: f32,
    /// ...and at least this many, so that a small index does not rebuild on every update.
    pub min_dead: usize,
}

impl Default for RebuildPolicy {
    fn default() -> Self {
        Self {
            dead_share: 0.25,
            min_dead: 1_000,
        }
    }
}

impl RebuildPolicy {
    fn wants(&self, graph_points: usize, dead: usize) -> bool {
        dead >= self.min_dead.max(1)
            && dead as f64 > graph_points as f64 * f64::from(self.dead_share)
    }
}

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

    /// The backlog's points that are still live, leaving the backlog empty.
    fn take_backlog(&mut self) -> Vec<Point> {
        let Some(backlog) = self.backlog.as_mut() else {
            return Vec::new();
        };
        std::mem::take(backlog)
            .into_iter()
            .filter_map(|slot| Some((slot, self.live.get(&slot)?.clone())))
            .collect()
    }
}

#[derive(Default)]
struct Maintenance {
    policy: RebuildPolicy,
    running: bool,
    completed: u64,
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

    pub fn with_rebuild_policy(self, policy: RebuildPolicy) -> Self {
        self.set_rebuild_policy(policy);
        self
    }

    /// Changes when dead points trigger a rebuild; applies from the next removal on.
    pub fn set_rebuild_policy(&self, policy: RebuildPolicy) {
        self.shared.maintenance.lock().policy = policy;
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

    /// Blocks until no rebuild is running. A rebuild that removals made due has already
    /// started when they return, so after this the graph is as compact as the policy asks.
    pub fn wait_for_maintenance(&self) {
        let mut maintenance = self.shared.maintenance.lock();
        while maintenance.running {
            self.shared.idle.wait(&mut maintenance);
        }
    }

    /// Rebuilds the graph now, on the calling thread, if it holds any dead point, whatever
    /// the policy says (after waiting for a running rebuild). Returns whether it rebuilt.
    pub fn compact(&self) -> bool {
        {
            let mut maintenance = self.shared.maintenance.lock();
            while maintenance.running {
                self.shared.idle.wait(&mut maintenance);
            }
            let (live, graph_points) = self.shared.counts();
            if graph_points <= live {
                return false;
            }
            maintenance.running = true;
        }
        let _running = Running(&self.shared);
        self.shared.rebuild()
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

#[cfg(test)]
impl VectorIndex {
    /// Runs `hook` on the rebuild thread once the next rebuild has built its graph from the
    /// snapshot and before it catches up with later inserts, so tests can act in between.
    pub(crate) fn pause_next_rebuild(&self, hook: impl FnOnce() + Send + 'static) {
        *self.shared.pause.lock() = Some(Box::new(hook));
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

    /// Starts a rebuild on its own thread if the policy wants one and none is running.
    fn rebuild_if_due(shared: &Arc<Self>) {
        if !shared.claim() {
            return;
        }
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("hnsw-rebuild".into())
            .spawn(move || worker.maintain());
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start an HNSW rebuild; retrying at the next removal");
            shared.finish();
        }
    }

    /// Marks a rebuild as running if one is due and none runs yet.
    fn claim(&self) -> bool {
        let (live, graph_points) = self.counts();
        let mut maintenance = self.maintenance.lock();
        if maintenance.running
            || !maintenance
                .policy
                .wants(graph_points, graph_points.saturating_sub(live))
        {
            return false;
        }
        maintenance.running = true;
        true
    }

    fn due(&self) -> bool {
        let (live, graph_points) = self.counts();
        let policy = self.maintenance.lock().policy;
        policy.wants(graph_points, graph_points.saturating_sub(live))
    }

    /// The rebuild thread's body: rebuilds until the graph no longer needs it, since removals
    /// made while it ran may already call for the next one.
    fn maintain(&self) {
        let _running = Running(self);
        while self.rebuild() && self.due() {}
    }

    /// Builds a fresh graph of the live points and swaps it in; false if the index was
    /// dropped first. Writers wait only for the last few backlog points, searches not at all.
    fn rebuild(&self) -> bool {
        let snapshot = self.snapshot();
        let fresh = new_graph(snapshot.len());
        for chunk in snapshot.chunks(REBUILD_CHUNK) {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            insert_into(&fresh, chunk);
        }
        #[cfg(test)]
        if let Some(hook) = self.pause.lock().take() {
            hook();
        }
        self.catch_up(&fresh);
        let inserts = self.inserts.lock();
        let rest = {
            let mut points = self.points.write();
            let rest = points.take_backlog();
            points.backlog = None;
            rest
        };
        insert_into(&fresh, &rest);
        let retired = std::mem::replace(&mut *self.graph.write(), Arc::new(fresh));
        drop(inserts);
        self.maintenance.lock().completed += 1;
        // Usually the last reference: freeing the old graph here spares a search the cost.
        drop(retired);
        true
    }

    /// The live points, starting the backlog of inserts the rebuild must add later.
    fn snapshot(&self) -> Vec<Point> {
        let mut points = self.points.write();
        points.backlog = Some(Vec::new());
        points
            .live
            .iter()
            .map(|(slot, vector)| (*slot, vector.clone()))
            .collect()
    }

    /// Adds the backlog to `fresh` without holding up writers, until little is left.
    fn catch_up(&self, fresh: &Graph) {
        loop {
            let backlog = self.points.write().take_backlog();
            insert_into(fresh, &backlog);
            if backlog.len() <= FINAL_CATCH_UP {
                return;
            }
        }
    }

    /// Ends a rebuild, whether it swapped, gave up or panicked.
    fn finish(&self) {
        self.points.write().backlog = None;
        let mut maintenance = self.maintenance.lock();
        maintenance.running = false;
        self.idle.notify_all();
    }
}

/// Ends the rebuild when dropped, so a panicking rebuild cannot leave waiters hanging or a
/// backlog growing forever.
struct Running<'a>(&'a Shared);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.finish();
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
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn unit(values: &[f32]) -> Arc<[f32]> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    /// Random-ish unit vectors from a fixed recurrence, so the test is deterministic.
    fn points_seeded(count: usize, dimension: usize, seed: u64) -> Vec<Arc<[f32]>> {
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

    fn points(count: usize, dimension: usize) -> Vec<Arc<[f32]>> {
        points_seeded(count, dimension, 0)
    }

    /// An index whose searches always walk the graph, so recall measures the graph.
    fn graph_only(dimension: usize, policy: RebuildPolicy) -> VectorIndex {
        VectorIndex::new(dimension, 1_000)
            .with_exact_scan_limit(0)
            .with_rebuild_policy(policy)
    }

    /// Share of the exact top 10 that the graph search finds, over `queries`.
    fn recall_at_10(index: &VectorIndex, queries: &[Arc<[f32]>]) -> f64 {
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

    #[test]
    fn the_policy_decides_when_dead_points_trigger_a_rebuild() {
        let policy = |dead_share, min_dead| RebuildPolicy {
            dead_share,
            min_dead,
        };
        // (why, policy, slots removed out of 200, rebuilt)
        let cases = [
            (
                "a small index stays under the default minimum",
                RebuildPolicy::default(),
                150,
                false,
            ),
            (
                "past both the share and the minimum",
                policy(0.25, 10),
                60,
                true,
            ),
            (
                "exactly at the share is not past it",
                policy(0.25, 10),
                50,
                false,
            ),
            ("under the minimum", policy(0.1, 100), 60, false),
            ("under a high share", policy(0.9, 10), 150, false),
            ("removing nothing", policy(0.0, 0), 0, false),
        ];
        let data = points(200, 8);
        for (why, policy, removed, rebuilt) in cases {
            let index = graph_only(8, policy);
            index.insert_many(data.iter().cloned().enumerate().collect());
            let slots: Vec<usize> = (0..removed).collect();
            assert_eq!(index.remove(&slots), removed, "{why}");
            index.wait_for_maintenance();
            let stats = index.stats();
            assert_eq!(stats.rebuilds, u64::from(rebuilt), "{why}: {stats:?}");
            assert_eq!(stats.live, 200 - removed, "{why}");
            let dead = if rebuilt { 0 } else { removed };
            assert_eq!(stats.dead, dead, "{why}: {stats:?}");
            assert_eq!(stats.graph_points, stats.live + dead, "{why}");
            // Compaction ignores the policy: any dead point is worth it when asked.
            assert_eq!(index.compact(), dead > 0, "{why}");
            assert_eq!(index.stats().graph_points, 200 - removed, "{why}");
            assert!(
                index.search(&data[0], 5, &|slot| slot < removed).is_empty(),
                "{why}"
            );
        }
    }

    #[test]
    fn repeated_replacement_keeps_the_graph_compact_and_recall_high() {
        let policy = RebuildPolicy {
            dead_share: 0.25,
            min_dead: 100,
        };
        // (points, dimension, rounds, batch): every round gives each point a new slot with
        // the same vector, as a price update does, a batch at a time.
        let cases = [(800, 16, 5, 100), (300, 24, 10, 300)];
        for (count, dimension, rounds, batch) in cases {
            let data = points(count, dimension);
            let queries = points_seeded(50, dimension, 7);
            let index = graph_only(dimension, policy);
            index.insert_many(data.iter().cloned().enumerate().collect());
            let mut slots: Vec<usize> = (0..count).collect();
            let mut next = count;
            for round in 1..=rounds {
                for chunk in slots.chunks_mut(batch) {
                    let retired: Vec<usize> = chunk.to_vec();
                    for slot in chunk.iter_mut() {
                        index.insert(next, data[*slot % count].clone());
                        *slot = next;
                        next += 1;
                    }
                    index.remove(&retired);
                }
                index.wait_for_maintenance();
                let stats = index.stats();
                assert_eq!(stats.live, count, "round {round}");
                assert!(
                    !policy.wants(stats.graph_points, stats.dead),
                    "round {round}: a due rebuild did not run: {stats:?}"
                );
            }
            let stats = index.stats();
            assert!(stats.rebuilds >= 1, "{stats:?}");
            assert!(stats.graph_points < count * 2, "{stats:?}");
            let fresh = graph_only(dimension, policy);
            fresh.insert_many(
                slots
                    .iter()
                    .map(|&slot| (slot, index.vector(slot).unwrap()))
                    .collect(),
            );
            let (updated, rebuilt) = (
                recall_at_10(&index, &queries),
                recall_at_10(&fresh, &queries),
            );
            assert!(updated >= 0.95, "recall@10 {updated} after {rounds} rounds");
            assert!(
                updated >= rebuilt - 0.02,
                "recall@10 {updated}, fresh {rebuilt}"
            );
            // Whatever the policy left dead, compaction clears.
            index.compact();
            assert_eq!(index.stats().graph_points, count);
        }
    }

    #[test]
    fn inserts_during_a_rebuild_are_kept_and_searches_go_on() {
        let dimension = 16;
        let data = points(1_200, dimension);
        let index = graph_only(
            dimension,
            RebuildPolicy {
                dead_share: 0.25,
                min_dead: 100,
            },
        );
        index.insert_many(data[..1_000].iter().cloned().enumerate().collect());
        let (paused_tx, paused) = mpsc::channel();
        let (resume, resume_rx) = mpsc::channel::<()>();
        index.pause_next_rebuild(move || {
            paused_tx.send(()).unwrap();
            let _ = resume_rx.recv_timeout(Duration::from_secs(120));
        });
        // 300 dead of 1,000 is past a quarter: the rebuild starts before `remove` returns.
        index.remove(&(0..300).collect::<Vec<_>>());
        paused
            .recv_timeout(Duration::from_secs(120))
            .expect("the rebuild reaches its pause");
        assert!(index.stats().rebuilding);
        // The rebuild has built from its snapshot; writes and searches go on meanwhile.
        index.insert_many(
            (1_000..1_200)
                .map(|slot| (slot, data[slot].clone()))
                .collect(),
        );
        index.remove(&(300..320).collect::<Vec<_>>());
        let all = |_: usize| true;
        for query in &data[..50] {
            let hits = index.search(query, 10, &all);
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|(slot, _)| *slot >= 320));
        }
        resume.send(()).unwrap();
        index.wait_for_maintenance();
        let stats = index.stats();
        // The snapshot's 700 points and the 200 added since; the 20 removed since are dead.
        assert_eq!(
            stats,
            VectorStats {
                live: 880,
                graph_points: 900,
                dead: 20,
                rebuilds: 1,
                rebuilding: false,
            }
        );
        // Nothing inserted during the rebuild was lost: each point finds itself first.
        for (slot, vector) in data.iter().enumerate().skip(1_000) {
            let hits = index.search(vector, 1, &all);
            assert_eq!(hits.first().map(|hit| hit.0), Some(slot));
        }
    }
}
