//! The online-signals actor: learns what follows what and what is popular from every
//! shopper's events as they arrive, and proposes recommendation candidates from them.

use inkling_models::signals::{ItemTransitions, NeighbourLimits, Popularity, SessionNeighbours};
use inkling_storage::now_ms;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
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
        }
    }
}

/// One event as the shared signals learn from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The shopper's session, as `user/session`: the unit session-kNN compares.
    pub session_key: String,
    pub item_id: String,
    /// The item the shopper touched just before, in the same session.
    pub previous_item: Option<String>,
    pub categories: Vec<String>,
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
    /// Categories the shopper likes, strongest first.
    pub categories: Vec<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SignalSource {
    /// Shoppers went to this item right after `item_id`.
    After { item_id: String },
    /// Popular now, in a category or overall.
    Popular { category: Option<String> },
    /// In past sessions much like the current one.
    Neighbours,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalCandidate {
    pub item_id: String,
    pub score: f32,
    pub source: SignalSource,
}

#[derive(RactorClusterMessage)]
pub enum SignalsMsg {
    /// Learns from events; a cast, so recording events never waits on it.
    Observe(Vec<Observation>),
    #[rpc]
    Candidates(SignalQuery, RpcReplyPort<Vec<SignalCandidate>>),
}

pub struct OnlineSignals;

pub struct SignalsState {
    transitions: ItemTransitions,
    popularity: Popularity,
    neighbours: SessionNeighbours,
}

impl Actor for OnlineSignals {
    type Msg = SignalsMsg;
    type State = SignalsState;
    type Arguments = SignalsConfig;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        config: SignalsConfig,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SignalsState {
            transitions: ItemTransitions::new(config.max_items, config.max_successors),
            popularity: Popularity::new(
                config.popularity_half_life_ms,
                config.popularity_cap,
                config.max_categories,
            ),
            neighbours: SessionNeighbours::new(config.neighbours),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SignalsMsg::Observe(observations) => {
                for observation in observations {
                    state.learn(&observation);
                }
            }
            SignalsMsg::Candidates(query, reply) => {
                let _ = reply.send(state.candidates(&query));
            }
        }
        Ok(())
    }
}

/// How much each older item of the shopper counts when asking "what comes next".
const RECENCY_WEIGHTS: [f32; 3] = [1.0, 0.5, 0.25];

impl SignalsState {
    fn learn(&mut self, observation: &Observation) {
        self.neighbours
            .observe(&observation.session_key, &observation.item_id);
        if let Some(previous) = &observation.previous_item {
            self.transitions.observe(previous, &observation.item_id);
        }
        self.popularity.observe(
            &observation.item_id,
            &observation.categories,
            observation.weight,
            observation.at_ms,
        );
    }

    fn candidates(&self, query: &SignalQuery) -> Vec<SignalCandidate> {
        let mut candidates: Vec<SignalCandidate> = self
            .neighbours
            .recommend(&query.session_items, &query.session_key, query.limit)
            .into_iter()
            .map(|(item_id, score)| SignalCandidate {
                item_id,
                score,
                source: SignalSource::Neighbours,
            })
            .collect();
        for (anchor, weight) in query.recent_items.iter().zip(RECENCY_WEIGHTS) {
            for (item_id, share) in self.transitions.successors(anchor, query.limit) {
                candidates.push(SignalCandidate {
                    item_id,
                    score: share * weight,
                    source: SignalSource::After {
                        item_id: anchor.clone(),
                    },
                });
            }
        }
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
        candidates
    }
}
