//! Online recommendation signals learned from the event stream as it arrives, with no batch
//! retraining: what follows what within sessions, which past sessions are like the current
//! one, and what is popular now.
//!
//! All keep their memory bounded by configurable caps and evict the least useful state.
//! Costs: [`ItemTransitions::observe`] is O(max successors) per event and
//! [`ItemTransitions::successors`] O(max successors log max successors) per item asked;
//! [`SessionNeighbours::observe`] is O(1) amortised per event and
//! [`SessionNeighbours::recommend`] O(session items × sample + neighbours × session length)
//! per request; [`Popularity::observe`] is amortised O(1) per event and [`Popularity::top`]
//! O(cap log cap) per request.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use inkling_domain::Decayed;

/// For each item, the items shoppers went to next, with counts; least recently seen items
/// are evicted past `max_items`, and each item keeps its `max_successors` strongest followers.
pub struct ItemTransitions {
    successors: LruCache<String, Vec<(String, f32)>>,
    max_successors: usize,
}

impl ItemTransitions {
    pub fn new(max_items: usize, max_successors: usize) -> Self {
        Self {
            successors: LruCache::new(NonZeroUsize::new(max_items.max(1)).expect("non-zero")),
            max_successors: max_successors.max(1),
        }
    }

    pub fn observe(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        let followers = self
            .successors
            .get_or_insert_mut(from.to_string(), Vec::new);
        if let Some(entry) = followers.iter_mut().find(|(item, _)| item == to) {
            entry.1 += 1.0;
            return;
        }
        if followers.len() < self.max_successors {
            followers.push((to.to_string(), 1.0));
            return;
        }
        // Full: a newcomer replaces the weakest follower, inheriting its count plus one, so a
        // rising item can displace a stale one (the space-saving heavy-hitters scheme).
        if let Some(weakest) = followers.iter_mut().min_by(|a, b| a.1.total_cmp(&b.1)) {
            *weakest = (to.to_string(), weakest.1 + 1.0);
        }
    }

    /// The strongest followers of `item`, with their share of its transitions.
    pub fn successors(&self, item: &str, limit: usize) -> Vec<Follower> {
        let Some(followers) = self.successors.peek(item) else {
            return Vec::new();
        };
        let total: f32 = followers.iter().map(|(_, count)| count).sum();
        let mut ranked: Vec<Follower> = followers
            .iter()
            .map(|(next, count)| Follower {
                item_id: next.clone(),
                share: count / total.max(1.0),
                count: *count,
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.count
                .total_cmp(&a.count)
                .then_with(|| a.item_id.cmp(&b.item_id))
        });
        ranked.truncate(limit);
        ranked
    }

    pub fn len(&self) -> usize {
        self.successors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.successors.is_empty()
    }
}

/// An item that followed another, with how often it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Follower {
    pub item_id: String,
    /// Its share of all transitions out of the other item.
    pub share: f32,
    pub count: f32,
}

/// Session-based k-nearest neighbours in the style of V-SKNN: recent sessions are indexed by
/// the items they contain; a shopper's current session finds the past sessions that share
/// its items (the newest of its items weighing most), and the items of the closest sessions
/// are scored by those sessions' similarity.
///
/// Bounded: at most `max_sessions` sessions of at most `max_session_len` items, and for each
/// of at most `max_items` items the `per_item` most recent sessions. A query reads at most
/// `sample` sessions per item of the current session and scores `neighbours` of them.
pub struct SessionNeighbours {
    sessions: LruCache<String, Vec<String>>,
    by_item: LruCache<String, std::collections::VecDeque<String>>,
    limits: NeighbourLimits,
}

#[derive(Debug, Clone, Copy)]
pub struct NeighbourLimits {
    pub max_sessions: usize,
    pub max_session_len: usize,
    pub max_items: usize,
    pub per_item: usize,
    pub sample: usize,
    pub neighbours: usize,
}

impl Default for NeighbourLimits {
    fn default() -> Self {
        Self {
            max_sessions: 300_000,
            max_session_len: 50,
            max_items: 200_000,
            per_item: 1_000,
            sample: 1_000,
            neighbours: 200,
        }
    }
}

impl SessionNeighbours {
    pub fn new(limits: NeighbourLimits) -> Self {
        let non_zero = |n: usize| NonZeroUsize::new(n.max(1)).expect("non-zero");
        Self {
            sessions: LruCache::new(non_zero(limits.max_sessions)),
            by_item: LruCache::new(non_zero(limits.max_items)),
            limits,
        }
    }

    /// Appends `item` to the session `key`.
    pub fn observe(&mut self, key: &str, item: &str) {
        let items = self.sessions.get_or_insert_mut(key.to_string(), Vec::new);
        if items.iter().any(|known| known == item) || items.len() >= self.limits.max_session_len {
            return;
        }
        items.push(item.to_string());
        let keys = self
            .by_item
            .get_or_insert_mut(item.to_string(), Default::default);
        keys.push_back(key.to_string());
        if keys.len() > self.limits.per_item {
            keys.pop_front();
        }
    }

    /// Drops the session `key`, so no item points back to it any more: what an erased
    /// shopper's sessions leave behind.
    pub fn forget(&mut self, key: &str) {
        let Some(items) = self.sessions.pop(key) else {
            return;
        };
        for item in items {
            if let Some(keys) = self.by_item.peek_mut(&item) {
                keys.retain(|known| known != key);
            }
        }
    }

    /// Items of the sessions most like `current` (newest item first), strongest first;
    /// sessions named `exclude` (the shopper's own) do not count.
    pub fn recommend(&self, current: &[String], exclude: &str, limit: usize) -> Vec<NeighbourVote> {
        let mut votes: HashMap<&str, NeighbourVote> = HashMap::new();
        for (key, similarity) in self.closest_sessions(current, exclude) {
            let Some(items) = self.sessions.peek(key) else {
                continue;
            };
            // Sequence-aware weighting (as in STAN): the neighbour's items near the point
            // where it meets the shopper's newest shared item say most about what comes next.
            let meeting = current
                .iter()
                .find_map(|item| items.iter().position(|known| known == item))
                .unwrap_or(0);
            let normalised = similarity / ((current.len() * items.len()) as f32).sqrt();
            for (position, item) in items.iter().enumerate() {
                let vote = votes.entry(item.as_str()).or_insert_with(|| NeighbourVote {
                    item_id: item.clone(),
                    ..Default::default()
                });
                vote.score += similarity;
                let distance = position.abs_diff(meeting) as f32;
                vote.near_score += normalised * (-distance / ITEM_NEIGHBOURHOOD).exp();
                if position > meeting {
                    vote.next_score += normalised * (-(distance - 1.0) / ITEM_NEIGHBOURHOOD).exp();
                }
            }
        }
        let mut ranked: Vec<NeighbourVote> = votes.into_values().collect();
        ranked.sort_by(|a, b| {
            b.near_score
                .total_cmp(&a.near_score)
                .then_with(|| a.item_id.cmp(&b.item_id))
        });
        ranked.truncate(limit);
        ranked
    }

    /// The sessions sharing most of `current`'s items, its newest items weighing most, with
    /// their similarity; a bounded sample of recent sessions per item is read.
    fn closest_sessions<'a>(&'a self, current: &[String], exclude: &str) -> Vec<(&'a str, f32)> {
        let length = current.len() as f32;
        let mut similarity: HashMap<&str, f32> = HashMap::new();
        for (position, item) in current.iter().enumerate() {
            // Linear decay: the newest item weighs 1, the oldest 1/length.
            let weight = (length - position as f32) / length;
            let Some(keys) = self.by_item.peek(item) else {
                continue;
            };
            for key in keys.iter().rev().take(self.limits.sample) {
                if key != exclude {
                    *similarity.entry(key.as_str()).or_default() += weight;
                }
            }
        }
        let mut neighbours: Vec<(&str, f32)> = similarity.into_iter().collect();
        neighbours.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        neighbours.truncate(self.limits.neighbours);
        neighbours
    }
}

/// How many positions from where a neighbour meets the shopper's session an item may sit
/// and still count about 1/e as much.
const ITEM_NEIGHBOURHOOD: f32 = 2.0;

/// What similar sessions say about one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeighbourVote {
    pub item_id: String,
    /// V-SKNN: the summed similarity of the neighbour sessions holding the item.
    pub score: f32,
    /// STAN: cosine-normalised similarity, each vote weighted by how close the item sits to
    /// where the neighbour meets the shopper's newest shared item.
    pub near_score: f32,
    /// The same, counted only for items the neighbour went to after that point.
    pub next_score: f32,
}

/// Time-decayed interest per item, overall and per category.
pub struct Popularity {
    half_life_ms: u64,
    cap: usize,
    overall: HashMap<String, Decayed>,
    by_category: LruCache<String, HashMap<String, Decayed>>,
}

impl Popularity {
    /// Keeps about `cap` items per counter and counters for `max_categories` categories.
    pub fn new(half_life_ms: u64, cap: usize, max_categories: usize) -> Self {
        Self {
            half_life_ms,
            cap: cap.max(1),
            overall: HashMap::new(),
            by_category: LruCache::new(NonZeroUsize::new(max_categories.max(1)).expect("non-zero")),
        }
    }

    pub fn observe(&mut self, item: &str, categories: &[String], weight: f64, at_ms: u64) {
        let (half_life, cap) = (self.half_life_ms, self.cap);
        bump(&mut self.overall, item, weight, at_ms, half_life, cap);
        for category in categories {
            let counter = self
                .by_category
                .get_or_insert_mut(category.clone(), HashMap::new);
            bump(counter, item, weight, at_ms, half_life, cap);
        }
    }

    /// The most popular items as of `now_ms`, overall or in one category.
    pub fn top(&self, category: Option<&str>, now_ms: u64, limit: usize) -> Vec<(String, f64)> {
        let counter = match category {
            Some(category) => match self.by_category.peek(category) {
                Some(counter) => counter,
                None => return Vec::new(),
            },
            None => &self.overall,
        };
        let mut ranked: Vec<(String, f64)> = counter
            .iter()
            .map(|(item, score)| (item.clone(), score.value_at(now_ms, self.half_life_ms)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(limit);
        ranked
    }
}

fn bump(
    counter: &mut HashMap<String, Decayed>,
    item: &str,
    weight: f64,
    at_ms: u64,
    half_life_ms: u64,
    cap: usize,
) {
    counter
        .entry(item.to_string())
        .or_default()
        .add(weight, at_ms, half_life_ms);
    if counter.len() <= 2 * cap {
        return;
    }
    // Amortised pruning: drop the weaker half once the counter doubles its cap.
    let mut scores: Vec<(String, f64)> = counter
        .iter()
        .map(|(item, score)| (item.clone(), score.value_at(at_ms, half_life_ms)))
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (item, _) in scores.into_iter().skip(cap) {
        counter.remove(&item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays `sessions` (item sequences) into transitions and checks the followers of `item`.
    fn check_successors(sessions: &[&[&str]], caps: (usize, usize), item: &str, expected: &[&str]) {
        let mut transitions = ItemTransitions::new(caps.0, caps.1);
        for session in sessions {
            for pair in session.windows(2) {
                transitions.observe(pair[0], pair[1]);
            }
        }
        let followers: Vec<String> = transitions
            .successors(item, 10)
            .into_iter()
            .map(|follower| follower.item_id)
            .collect();
        assert_eq!(followers, expected, "{sessions:?}");
    }

    #[test]
    fn transitions_rank_followers_and_stay_bounded() {
        type Case<'a> = (Vec<&'a [&'a str]>, (usize, usize), &'a str, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                vec![&["a", "b"], &["a", "b"], &["a", "c"]],
                (10, 10),
                "a",
                vec!["b", "c"],
            ),
            (vec![&["a", "a", "b"]], (10, 10), "a", vec!["b"]),
            (vec![&["x", "y"]], (10, 10), "a", vec![]),
            // Two followers at most: "d" displaces the weakest and inherits its count.
            (
                vec![&["a", "b"], &["a", "b"], &["a", "c"], &["a", "d"]],
                (10, 2),
                "a",
                vec!["b", "d"],
            ),
            // One item tracked: the older "a" is evicted by "x".
            (vec![&["a", "b"], &["x", "y"]], (1, 10), "a", vec![]),
        ];
        for (sessions, caps, item, expected) in cases {
            check_successors(&sessions, caps, item, &expected);
        }
    }

    #[test]
    fn neighbours_of_the_current_session_vote_for_their_items() {
        let mut neighbours = SessionNeighbours::new(NeighbourLimits::default());
        for (key, items) in [
            ("s1", ["a", "b", "x"]),
            ("s2", ["a", "b", "y"]),
            ("s3", ["c", "d", "z"]),
        ] {
            for item in items {
                neighbours.observe(key, item);
            }
        }
        let current: Vec<String> = ["b", "a"].map(String::from).to_vec();
        let items: Vec<String> = neighbours
            .recommend(&current, "none", 10)
            .into_iter()
            .map(|vote| vote.item_id)
            .collect();
        assert_eq!(items, ["b", "a", "x", "y"]);
        let excluded = neighbours.recommend(&current, "s1", 10);
        assert!(!excluded.iter().any(|vote| vote.item_id == "x"));
        assert!(
            neighbours
                .recommend(&["q".to_string()], "none", 10)
                .is_empty()
        );
    }

    #[test]
    fn a_forgotten_session_votes_no_more() {
        let mut neighbours = SessionNeighbours::new(NeighbourLimits::default());
        for (key, items) in [("erased", ["a", "x"]), ("kept", ["a", "y"])] {
            for item in items {
                neighbours.observe(key, item);
            }
        }
        neighbours.forget("erased");
        neighbours.forget("never seen");
        let items: Vec<String> = neighbours
            .recommend(&["a".to_string()], "none", 10)
            .into_iter()
            .map(|vote| vote.item_id)
            .collect();
        assert_eq!(items, ["a", "y"]);
    }

    #[test]
    fn neighbour_state_stays_bounded() {
        let limits = NeighbourLimits {
            max_sessions: 3,
            per_item: 2,
            max_session_len: 2,
            ..Default::default()
        };
        let mut neighbours = SessionNeighbours::new(limits);
        for index in 0..10 {
            for item in ["a", "b", "c"] {
                neighbours.observe(&format!("s{index}"), item);
            }
        }
        assert_eq!(neighbours.sessions.len(), 3);
        assert!(
            neighbours
                .sessions
                .iter()
                .all(|(_, items)| items.len() <= 2)
        );
        assert!(neighbours.by_item.iter().all(|(_, keys)| keys.len() <= 2));
    }

    #[test]
    fn popularity_decays_and_splits_by_category() {
        const DAY: u64 = 24 * 60 * 60 * 1000;
        let mut popularity = Popularity::new(DAY, 100, 10);
        let phones = vec!["手机".to_string()];
        for _ in 0..3 {
            popularity.observe("old-hit", &phones, 1.0, 0);
        }
        popularity.observe("new-hit", &phones, 1.0, 3 * DAY);
        popularity.observe("laptop", &["电脑".to_string()], 1.0, 3 * DAY);
        let top = |category| -> Vec<String> {
            popularity
                .top(category, 3 * DAY, 5)
                .into_iter()
                .map(|(item, _)| item)
                .collect()
        };
        assert_eq!(top(Some("手机")), ["new-hit", "old-hit"]);
        assert_eq!(top(Some("电脑")), ["laptop"]);
        assert_eq!(top(None)[2], "old-hit");
        assert!(top(Some("平板")).is_empty());
    }

    #[test]
    fn popularity_counters_stay_bounded() {
        let mut popularity = Popularity::new(1000, 10, 2);
        for index in 0..1000 {
            popularity.observe(
                &format!("item-{index}"),
                &[format!("c{}", index % 5)],
                1.0,
                index,
            );
        }
        assert!(popularity.overall.len() <= 20);
        assert_eq!(popularity.by_category.len(), 2);
    }
}
