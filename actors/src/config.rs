//! Tunables of the actor system, with defaults that serve the demo catalog well.

use std::time::Duration;

use inkling_models::RankingWeights;
use inkling_models::recommend::RankerModel;

use crate::model_pool::ModelPoolConfig;
use crate::signals::SignalsConfig;
use inkling_storage::{ChineseSegmentation, ProfileConfig};

#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// Number of index shards the catalog is split into by a stable hash of the product id.
    pub shards: usize,
    /// A session actor with no traffic for this long is stopped; its profile stays in storage.
    pub session_idle_timeout: Duration,
    /// Deadline for one request to a session, the ranker or the catalog.
    pub request_timeout: Duration,
    /// Deadline for one shard's answer; a late shard is reported, never waited for.
    pub shard_timeout: Duration,
    /// Candidates each shard returns per request, before ranking.
    pub candidates_per_shard: usize,
    pub profile: ProfileConfig,
    pub ranking: RankingWeights,
    /// The learned recommendation model (`inkling train ranker`); an untrained prior until
    /// one is loaded.
    pub recommender: RankerModel,
    /// The encoder pool behind intent classification; without one, queries still get slot
    /// extraction and dialogue tracking, but no intent class.
    pub encoder: Option<ModelPoolConfig>,
    pub signals: SignalsConfig,
    /// How the index segments Chinese text.
    pub segmentation: ChineseSegmentation,
    /// Fault injection for tests and chaos runs: this shard answers searches only after the
    /// delay, as an overloaded or partitioned shard would.
    pub slow_shard: Option<(usize, Duration)>,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            session_idle_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(5),
            shard_timeout: Duration::from_millis(500),
            candidates_per_shard: 100,
            profile: ProfileConfig::default(),
            ranking: RankingWeights::default(),
            recommender: RankerModel::default(),
            encoder: None,
            signals: SignalsConfig::default(),
            segmentation: ChineseSegmentation::default(),
            slow_shard: None,
        }
    }
}
