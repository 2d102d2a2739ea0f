//! Tunables of the actor system, with defaults that serve the demo catalog well.

use std::time::Duration;

use inkling_models::RankingWeights;
use inkling_models::recommend::RankerModel;
use inkling_models::search_ranker::SearchRanker;

use crate::model_pool::ModelPoolConfig;
use crate::node_supervisor::RestartBudget;
use crate::signals::SignalsConfig;
use inkling_domain::ProfileConfig;
use inkling_storage::ChineseSegmentation;

#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// Number of index shards the catalog is split into by a stable hash of the product id.
    pub shards: usize,
    /// A session actor with no traffic for this long is stopped; its profile stays in storage.
    pub session_idle_timeout: Duration,
    /// The most session actors one node keeps alive. Starting one more passivates the least
    /// recently active first, as idle passivation does, so a flood of new user ids costs
    /// bounded memory; at least 1 (see [`ActorConfig::check_session_cap`]).
    pub max_live_sessions: usize,
    /// Deadline for one interactive request (events, search, recommend, profile) as the
    /// gateway waits for it; every deadline inside it is shorter (see
    /// [`ActorConfig::check_deadlines`]).
    pub request_timeout: Duration,
    /// Deadline for embedding one query inside a search.
    pub query_embed_timeout: Duration,
    /// Deadline for one shard's answer; a late shard is reported, never waited for.
    pub shard_timeout: Duration,
    /// Candidates each shard returns per request, before ranking.
    pub candidates_per_shard: usize,
    pub profile: ProfileConfig,
    pub ranking: RankingWeights,
    /// The learned recommendation model (`inkling train ranker`); an untrained prior until
    /// one is loaded.
    pub recommender: RankerModel,
    /// The learned search ranker (`inkling train search-ranker`); without one, search fuses
    /// its lists by `ranking.fusion`.
    pub search_ranker: Option<SearchRanker>,
    /// The encoder pool behind intent classification; without one, queries still get slot
    /// extraction and dialogue tracking, but no intent class.
    pub encoder: Option<ModelPoolConfig>,
    /// Whether this node runs the encoder's pool itself. Without one, a node with an
    /// `encoder` embeds through other nodes' pools (a node without the `models` role).
    pub local_model_pool: bool,
    pub signals: SignalsConfig,
    /// How the index segments Chinese text.
    pub segmentation: ChineseSegmentation,
    /// How often a long-lived actor may fail before it is left down.
    pub restart_budget: RestartBudget,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            session_idle_timeout: Duration::from_secs(600),
            max_live_sessions: DEFAULT_MAX_LIVE_SESSIONS,
            request_timeout: Duration::from_secs(5),
            query_embed_timeout: Duration::from_secs(2),
            shard_timeout: Duration::from_millis(500),
            candidates_per_shard: 100,
            profile: ProfileConfig::default(),
            ranking: RankingWeights::default(),
            recommender: RankerModel::default(),
            search_ranker: None,
            encoder: None,
            local_model_pool: true,
            signals: SignalsConfig::default(),
            segmentation: ChineseSegmentation::default(),
            restart_budget: RestartBudget::default(),
        }
    }
}

/// Live sessions per node by default: far more shoppers than one node serves at once, few
/// enough that their profiles and mailboxes fit in memory.
pub const DEFAULT_MAX_LIVE_SESSIONS: usize = 100_000;

/// A passage batch's first request may pay for the encoder's cold start.
const EMBED_COLD_START: Duration = Duration::from_secs(10);
/// Time budgeted per passage embedded: e5-small embeds about 60 titles a second on two busy
/// CPU cores, and a bulk load must not time out because other work shares them.
const EMBED_PER_PASSAGE: Duration = Duration::from_millis(100);
/// Time budgeted per product written to a shard.
const INDEX_PER_PRODUCT: Duration = Duration::from_millis(1);
/// Time the gateway's side of a request needs beyond its inner calls: routing to the
/// session, the session's own work, serialising the answer.
const REQUEST_MARGIN: Duration = Duration::from_millis(500);

impl ActorConfig {
    /// Every check of these settings; a node refuses to start when one fails.
    pub fn check(&self) -> Result<(), String> {
        self.check_deadlines()?;
        self.check_session_cap()
    }

    /// A cap of zero would passivate every session as it starts.
    pub fn check_session_cap(&self) -> Result<(), String> {
        if self.max_live_sessions == 0 {
            return Err("max live sessions must be at least 1".to_string());
        }
        Ok(())
    }

    /// Deadline for embedding `passages` passages in one request to the model pool.
    pub fn passage_embed_timeout(&self, passages: usize) -> Duration {
        EMBED_COLD_START + EMBED_PER_PASSAGE * passages as u32
    }

    /// Deadline for one shard to apply a write of `products` products.
    pub fn index_write_timeout(&self, products: usize) -> Duration {
        self.shard_timeout * 20 + INDEX_PER_PRODUCT * products as u32
    }

    /// The longest chain of waits inside one interactive request: a search embeds its query,
    /// then asks the shards; a recommendation asks the signals and the shards, then looks
    /// products up in the shards.
    fn longest_inner_wait(&self) -> Duration {
        let search = self.query_embed_timeout + self.shard_timeout;
        let recommend = self.shard_timeout * 3;
        search.max(recommend)
    }

    /// Every inner deadline must be shorter than the outer one that waits on it, or an outer
    /// timeout fires while the inner call could still answer, and a retry piles on top.
    pub fn check_deadlines(&self) -> Result<(), String> {
        let inner = self.longest_inner_wait() + REQUEST_MARGIN;
        if inner >= self.request_timeout {
            return Err(format!(
                "request timeout {:?} must exceed the inner deadlines it waits on ({:?}: query \
                 embedding {:?}, shard {:?}, margin {:?})",
                self.request_timeout,
                inner,
                self.query_embed_timeout,
                self.shard_timeout,
                REQUEST_MARGIN
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_nest() {
        let ms = Duration::from_millis;
        let cases = [
            (ms(5_000), ms(2_000), ms(500), true),
            (ms(2_000), ms(2_000), ms(500), false),
            (ms(1_000), ms(100), ms(500), false),
            (ms(3_000), ms(1_000), ms(500), true),
        ];
        for (request, query, shard, ok) in cases {
            let config = ActorConfig {
                request_timeout: request,
                query_embed_timeout: query,
                shard_timeout: shard,
                ..Default::default()
            };
            assert_eq!(
                config.check_deadlines().is_ok(),
                ok,
                "{request:?} {query:?} {shard:?}"
            );
        }
    }

    #[test]
    fn the_session_cap_is_at_least_one() {
        let cases = [(0, false), (1, true), (DEFAULT_MAX_LIVE_SESSIONS, true)];
        for (cap, ok) in cases {
            let config = ActorConfig {
                max_live_sessions: cap,
                ..Default::default()
            };
            assert_eq!(config.check_session_cap().is_ok(), ok, "{cap}");
            assert_eq!(config.check().is_ok(), ok, "{cap}");
        }
    }
}
