//! The graph's upkeep. hnsw_rs cannot forget a point, so once the [`RebuildPolicy`] finds
//! enough dead points, a background thread builds a fresh graph from the live points,
//! catches up with the inserts made meanwhile, and swaps it in.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Graph, Point, Points, Shared, VectorIndex, insert_into, new_graph};

/// A rebuild inserts its snapshot in chunks this large, checking between them whether the
/// index was dropped, so a shard that closes does not keep a core busy for long.
const REBUILD_CHUNK: usize = 4_096;
/// A rebuild catches up with the inserts made since its snapshot without holding up writers
/// until no more than this many are left; only those are added while writers wait.
const FINAL_CATCH_UP: usize = 64;

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

#[derive(Default)]
pub(super) struct Maintenance {
    pub(super) policy: RebuildPolicy,
    pub(super) running: bool,
    pub(super) completed: u64,
}

impl VectorIndex {
    pub fn with_rebuild_policy(self, policy: RebuildPolicy) -> Self {
        self.set_rebuild_policy(policy);
        self
    }

    /// Changes when dead points trigger a rebuild; applies from the next removal on.
    pub fn set_rebuild_policy(&self, policy: RebuildPolicy) {
        self.shared.maintenance.lock().policy = policy;
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
}

#[cfg(test)]
impl VectorIndex {
    /// Runs `hook` on the rebuild thread once the next rebuild has built its graph from the
    /// snapshot and before it catches up with later inserts, so tests can act in between.
    pub(crate) fn pause_next_rebuild(&self, hook: impl FnOnce() + Send + 'static) {
        *self.shared.pause.lock() = Some(Box::new(hook));
    }
}

impl Points {
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

impl Shared {
    /// Starts a rebuild on its own thread if the policy wants one and none is running.
    pub(super) fn rebuild_if_due(shared: &Arc<Self>) {
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::vector_index::VectorStats;
    use crate::vector_index::testing::{graph_only, points, points_seeded, recall_at_10};

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
