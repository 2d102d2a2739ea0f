//! What the ranking pipelines work with: the index shards and the online signals, seen
//! through two small traits so that tests can fake them, plus the fitted models and the
//! configuration. The pipelines are plain async functions over a [`RankingContext`]; the
//! ranker actor only hands each request to them.

use std::sync::Arc;

use futures::future::BoxFuture;
use inkling_domain::{Filters, Product};
use inkling_models::recommend::RankerModel;
use inkling_models::search_ranker::SearchRanker;
use inkling_models::{Candidate, CandidateSource};
use inkling_storage::{IndexHit, IndexQuery, Retrieval};

use crate::ActorError;
use crate::config::ActorConfig;
use crate::protocol::MissingShard;
use crate::signals::{SignalAnswer, SignalQuery};

/// The index shards as the pipelines read them. Every call is bounded by the shard
/// deadline: an error, a timeout included, costs the answer that shard's share.
pub trait IndexShards: Send + Sync + 'static {
    /// How many shards the catalog is split into.
    fn shard_count(&self) -> usize;

    /// The shard that owns `product_id`.
    fn shard_of(&self, product_id: &str) -> usize;

    /// `shard`'s hits for `query` (BM25, nearest vectors, affinity or best-rated).
    fn search(
        &self,
        shard: usize,
        query: IndexQuery,
    ) -> BoxFuture<'_, Result<Vec<IndexHit>, ActorError>>;

    /// The live products among `ids` that `shard` holds.
    fn lookup(
        &self,
        shard: usize,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Arc<Product>>, ActorError>>;

    /// The stored embedding of `product_id`, when `shard` holds it with one.
    fn vector_of(
        &self,
        shard: usize,
        product_id: String,
    ) -> BoxFuture<'_, Result<Option<Vec<f32>>, ActorError>>;
}

/// The online signals as recommendations read them: candidates proposed from what shoppers
/// did, within the signals' deadline.
pub trait CandidateSignals: Send + Sync + 'static {
    fn candidates(&self, query: SignalQuery) -> BoxFuture<'_, Result<SignalAnswer, ActorError>>;
}

/// Everything a search or a recommendation needs besides the request itself.
pub struct RankingContext {
    pub shards: Arc<dyn IndexShards>,
    pub signals: Arc<dyn CandidateSignals>,
    /// The learned model that scores recommendations.
    pub recommender: Arc<RankerModel>,
    /// The learned search ranker, if one was loaded.
    pub search_ranker: Option<Arc<SearchRanker>>,
    pub config: ActorConfig,
}

/// Candidates gathered from every shard, and the shards that did not answer.
pub(crate) type Hits = (Vec<Candidate>, Vec<MissingShard>);

impl RankingContext {
    pub fn shard_count(&self) -> usize {
        self.shards.shard_count()
    }

    /// Queries every shard in parallel and keeps whatever arrives before the shard
    /// deadline. Hits come back as candidates whose source the caller settles, their score
    /// the shard's retrieval score.
    pub(crate) async fn scatter(&self, retrieval: Retrieval, filters: &Filters) -> Hits {
        let query = IndexQuery {
            retrieval,
            filters: filters.clone(),
            limit: self.config.candidates_per_shard,
        };
        let requests = (0..self.shard_count()).map(|shard| {
            let query = query.clone();
            async move { (shard, self.shards.search(shard, query).await) }
        });
        let mut candidates = Vec::new();
        let mut missing = Vec::new();
        for (shard, answer) in futures::future::join_all(requests).await {
            match answer {
                Ok(hits) => candidates.extend(hits.into_iter().map(|hit| Candidate {
                    product: hit.product,
                    retrieval_score: hit.score,
                    source: CandidateSource::Requested,
                })),
                Err(error) => missing.push(MissingShard {
                    shard,
                    error: error.to_string(),
                }),
            }
        }
        (candidates, missing)
    }
}

/// Each shard that failed any of the request's scatters, once.
pub(crate) fn merge_missing<const N: usize>(lists: [Vec<MissingShard>; N]) -> Vec<MissingShard> {
    let mut merged: Vec<MissingShard> = Vec::new();
    for missing in lists.into_iter().flatten() {
        if !merged.iter().any(|known| known.shard == missing.shard) {
            merged.push(missing);
        }
    }
    merged.sort_by_key(|missing| missing.shard);
    merged
}
