//! The online-signals actor: learns what follows what, what is bought together and what is
//! popular from every shopper's events as they arrive, and proposes recommendation
//! candidates from them.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use inkling_domain::now_ms;
use inkling_models::baskets::{AssociationRules, BasketCounter};
use inkling_models::signals::{ItemTransitions, NeighbourLimits, Popularity, SessionNeighbours};
use lru::LruCache;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
pub struct SignalsConfig {
    /// Items whose followers are tracked; the least recently seen are evicted.
    pub max_items: usize,
    /// Followers kept per item.
    pub max_successors: usize,
    pub popularity_half_life_ms: u64,
    /// Items kept per popularity counter (overall and per category).
    pub popularity_cap: usize,
    /// Categories with their own popularity counter.
    pub max_categories: usize,
    pub neighbours: NeighbourLimits,
    /// Partners kept per item by the online bought-together counter.
    pub max_partners: usize,
    /// Baskets a pair must share before the online counter proposes it.
    pub min_basket_support: u32,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self {
            max_items: 200_000,
            max_successors: 50,
            popularity_half_life_ms: 24 * 60 * 60 * 1000,
            popularity_cap: 500,
            max_categories: 5_000,
            neighbours: NeighbourLimits::default(),
            max_partners: 20,
            min_basket_support: 2,
        }
    }
}

/// Names one shopper's session for the shared signals: the unit session-kNN compares.
///
/// A keyed hash (SipHash under keys drawn when the process starts), never the user id: the
/// shared signals outlive an erasure (they hold no profile and are relearned from traffic,
/// evicting the least recently seen sessions), so what they keep must not name anyone.
/// Every caller in the process gets the same name for the same session, so a shopper's
/// own session is still recognised; a restart forgets the keys along with the signals.
pub fn session_key(user_id: &str, session_id: Option<&str>) -> String {
    static KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::new);
    let name = KEYS.hash_one((user_id, session_id.unwrap_or_default()));
    format!("{name:016x}")
}

/// One event as the shared signals learn from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The shopper's session, as [`session_key`] names it: the unit session-kNN compares.
    pub session_key: String,
    pub item_id: String,
    /// The item the shopper touched just before, in the same session.
    pub previous_item: Option<String>,
    pub categories: Vec<String>,
    /// The shopper's segment, for popularity among shoppers like them.
    pub segment: Option<u32>,
    /// For a cart or purchase event: the items already in the session's basket.
    pub basket: Option<Vec<String>>,
    pub weight: f64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalQuery {
    /// The shopper's current session, which must not count as its own neighbour.
    pub session_key: String,
    /// Items of the current session, newest first.
    pub session_items: Vec<String>,
    /// The shopper's latest items, newest first.
    pub recent_items: Vec<String>,
    /// Categories the shopper asked for or likes, strongest first.
    pub categories: Vec<String>,
    pub segment: Option<u32>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SignalSource {
    /// In past sessions much like the current one, at this rank of session-kNN's list; the
    /// score is V-SKNN's, the others sequence-aware (see
    /// [`inkling_models::signals::NeighbourVote`]).
    Neighbours {
        rank: usize,
        near_score: f32,
        next_score: f32,
    },
    /// Shoppers went to this item right after `item_id`, the shopper's item `steps_back`
    /// items ago (0 for the newest), `count` times; the score is its share of what followed.
    After {
        item_id: String,
        steps_back: usize,
        count: f32,
    },
    /// Carted or bought together with `item_id`, one of the shopper's latest items.
    Together { item_id: String },
    /// Popular now, in a category or overall.
    Popular { category: Option<String> },
    /// Popular now among shoppers of the same segment.
    PopularInSegment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalCandidate {
    pub item_id: String,
    pub score: f32,
    pub source: SignalSource,
}

/// The signals' proposals, and how much interest every proposed item has drawn in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalAnswer {
    pub candidates: Vec<SignalCandidate>,
    /// Summed interest weight of each proposed item's events (views 1, carts 4, ...).
    pub interest: HashMap<String, f32>,
}

#[derive(RactorMessage)]
pub enum SignalsMsg {
    /// Learns from events; a cast, so recording events never waits on it.
    Observe(Vec<Observation>),
    Candidates(SignalQuery, RpcReplyPort<SignalAnswer>),
    /// Forgets sessions, by [`session_key`]: an erased shopper's.
    Forget(Vec<String>),
}

#[derive(Clone)]
pub struct OnlineSignals;

pub struct SignalsState {
    transitions: ItemTransitions,
    popularity: Popularity,
    segment_popularity: Popularity,
    neighbours: SessionNeighbours,
    baskets: BasketCounter,
    /// All-time interest per item, for the least recently touched `max_items` items.
    interest: LruCache<String, f32>,
    /// Rules mined offline by `inkling profile build`; the online counter adds what
    /// happened since.
    rules: AssociationRules,
    min_basket_support: u32,
}

impl Actor for OnlineSignals {
    type Msg = SignalsMsg;
    /// Shared so that candidate queries read concurrently; only learning takes the writer.
    type State = Arc<RwLock<SignalsState>>;
    type Arguments = (SignalsConfig, AssociationRules);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (config, rules): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let popularity = || {
            Popularity::new(
                config.popularity_half_life_ms,
                config.popularity_cap,
                config.max_categories,
            )
        };
        Ok(Arc::new(RwLock::new(SignalsState {
            transitions: ItemTransitions::new(config.max_items, config.max_successors),
            popularity: popularity(),
            segment_popularity: popularity(),
            neighbours: SessionNeighbours::new(config.neighbours),
            baskets: BasketCounter::new(config.max_items, config.max_partners),
            interest: LruCache::new(NonZeroUsize::new(config.max_items.max(1)).expect("non-zero")),
            rules,
            min_basket_support: config.min_basket_support,
        })))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        crate::fail_point!("signals-handle");
        match message {
            SignalsMsg::Observe(observations) => {
                let mut signals = state.write();
                for observation in observations {
                    signals.learn(&observation);
                }
            }
            SignalsMsg::Forget(keys) => {
                let mut signals = state.write();
                for key in keys {
                    signals.neighbours.forget(&key);
                }
            }
            SignalsMsg::Candidates(query, reply) => {
                let state = state.clone();
                // Not awaited: queries run side by side while the mailbox moves on.
                tokio::spawn(async move {
                    let answer = state.read().answer(&query);
                    let _ = reply.send(answer);
                });
            }
        }
        Ok(())
    }
}

/// How many of the shopper's latest items are asked "what comes next".
pub const TRANSITION_ANCHORS: usize = 3;

impl SignalsState {
    fn learn(&mut self, observation: &Observation) {
        self.neighbours
            .observe(&observation.session_key, &observation.item_id);
        if let Some(previous) = &observation.previous_item {
            self.transitions.observe(previous, &observation.item_id);
        }
        *self
            .interest
            .get_or_insert_mut(observation.item_id.clone(), || 0.0) += observation.weight as f32;
        if let Some(basket) = &observation.basket {
            self.baskets
                .observe_basket_add(basket, &observation.item_id);
        }
        self.popularity.observe(
            &observation.item_id,
            &observation.categories,
            observation.weight,
            observation.at_ms,
        );
        if let Some(segment) = observation.segment {
            self.segment_popularity.observe(
                &observation.item_id,
                &[segment.to_string()],
                observation.weight,
                observation.at_ms,
            );
        }
    }

    fn answer(&self, query: &SignalQuery) -> SignalAnswer {
        let candidates = self.candidates(query);
        let interest = candidates
            .iter()
            .filter_map(|c| Some((c.item_id.clone(), *self.interest.peek(&c.item_id)?)))
            .collect();
        SignalAnswer {
            candidates,
            interest,
        }
    }

    fn candidates(&self, query: &SignalQuery) -> Vec<SignalCandidate> {
        let mut candidates: Vec<SignalCandidate> = self
            .neighbours
            .recommend(&query.session_items, &query.session_key, query.limit)
            .into_iter()
            .enumerate()
            .map(|(index, vote)| SignalCandidate {
                item_id: vote.item_id,
                score: vote.score,
                source: SignalSource::Neighbours {
                    rank: index + 1,
                    near_score: vote.near_score,
                    next_score: vote.next_score,
                },
            })
            .collect();
        let anchors = query.recent_items.iter().take(TRANSITION_ANCHORS);
        for (steps_back, anchor) in anchors.enumerate() {
            for follower in self.transitions.successors(anchor, query.limit) {
                candidates.push(SignalCandidate {
                    item_id: follower.item_id,
                    score: follower.share,
                    source: SignalSource::After {
                        item_id: anchor.clone(),
                        steps_back,
                        count: follower.count,
                    },
                });
            }
            self.together(anchor, query.limit, &mut candidates);
        }
        self.popular(query, &mut candidates);
        candidates
    }

    /// Partners of `anchor` by the stronger of the mined rules and the online counts.
    fn together(&self, anchor: &str, limit: usize, candidates: &mut Vec<SignalCandidate>) {
        let mined = self
            .rules
            .consequents(anchor, limit)
            .iter()
            .map(|rule| (rule.consequent.clone(), rule.confidence));
        let online = self
            .baskets
            .together_with(anchor, self.min_basket_support, limit);
        for (item_id, confidence) in mined.chain(online) {
            candidates.push(SignalCandidate {
                item_id,
                score: confidence,
                source: SignalSource::Together {
                    item_id: anchor.to_string(),
                },
            });
        }
    }

    fn popular(&self, query: &SignalQuery, candidates: &mut Vec<SignalCandidate>) {
        let now = now_ms();
        let scopes = query
            .categories
            .iter()
            .map(|c| Some(c.as_str()))
            .chain([None]);
        for category in scopes {
            for (item_id, score) in self.popularity.top(category, now, query.limit) {
                candidates.push(SignalCandidate {
                    item_id,
                    score: score as f32,
                    source: SignalSource::Popular {
                        category: category.map(str::to_string),
                    },
                });
            }
        }
        let Some(segment) = query.segment else {
            return;
        };
        let segment = segment.to_string();
        for (item_id, score) in self
            .segment_popularity
            .top(Some(&segment), now, query.limit)
        {
            candidates.push(SignalCandidate {
                item_id,
                score: score as f32,
                source: SignalSource::PopularInSegment,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_are_stable_distinct_and_name_no_user() {
        let cases = [
            ("victim-7", Some("s1"), "victim-7", Some("s2"), false),
            ("victim-7", Some("s1"), "victim-7", Some("s1"), true),
            ("a/b", None, "a", Some("b"), false),
            ("victim-7", None, "victim-7", Some(""), true),
        ];
        for (user, session, other_user, other_session, same) in cases {
            let key = session_key(user, session);
            assert!(!key.contains(user), "{key} names {user}");
            let other = session_key(other_user, other_session);
            assert_eq!(
                key == other,
                same,
                "{user}/{session:?} vs {other_user}/{other_session:?}"
            );
        }
    }
}
