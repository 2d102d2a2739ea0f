//! The ranker: merges and re-ranks what the index shards (and, for recommendations, the
//! online signals) answer. The work is two plain async pipelines over a
//! [`RankingContext`], [`search::search`] and [`recommend::recommend`], as quickwit's root
//! search is a function over its searcher context; the [`Ranker`] actor is a thin shell
//! that runs each request as its own task, so a slow shard never stalls its mailbox.

mod backends;
mod context;
pub mod recommend;
pub mod search;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use inkling_domain::Profile;
use inkling_models::intent::{Slots, Understanding};
use inkling_models::recommend::RankerModel;
use inkling_models::search_ranker::SearchRanker;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tracing::Instrument;

pub use self::backends::{ShardReplicas, SignalsActor};
pub use self::context::{CandidateSignals, IndexShards, RankingContext};
use crate::ActorError;
use crate::config::ActorConfig;
use crate::placement::ShardPlacement;
use crate::protocol::{RankedList, RecommendRequest, SearchRequest};
use crate::signals::SignalsMsg;
use crate::slot::ActorSlot;

#[derive(RactorMessage)]
pub enum RankerMsg {
    /// Ranks search hits for the query, personalised by the profile and shaped by what the
    /// query was understood to ask.
    Search(
        SearchRequest,
        Box<Profile>,
        Option<Box<Understanding>>,
        Option<Vec<f32>>,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
    /// Ranks recommendations from the profile and what the shopper stated in this
    /// session's conversation (category, price), which they must respect.
    Recommend(
        RecommendRequest,
        Box<Profile>,
        Option<Box<Slots>>,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
}

#[derive(Clone)]
pub struct Ranker;

/// What the node supervisor starts the ranker with; every incarnation builds its
/// [`RankingContext`] from it.
pub struct RankerState {
    pub shards: Arc<dyn ShardPlacement>,
    pub signals: ActorSlot<SignalsMsg>,
    /// The learned model that scores recommendations.
    pub recommender: Arc<RankerModel>,
    /// The learned search ranker, if one was loaded.
    pub search_ranker: Option<Arc<SearchRanker>>,
    pub config: ActorConfig,
}

impl RankerState {
    /// The pipelines' context over the running actors: shard replicas and the signals
    /// actor, each asked under the shard deadline.
    fn ranking_context(&self) -> RankingContext {
        let deadline = self.config.shard_timeout;
        RankingContext {
            shards: Arc::new(ShardReplicas {
                placement: self.shards.clone(),
                deadline,
            }),
            signals: Arc::new(SignalsActor {
                slot: self.signals.clone(),
                deadline,
            }),
            recommender: self.recommender.clone(),
            search_ranker: self.search_ranker.clone(),
            config: self.config.clone(),
        }
    }
}

impl Actor for Ranker {
    type Msg = RankerMsg;
    type State = Arc<RankingContext>;
    type Arguments = Arc<RankerState>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: Arc<RankerState>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Arc::new(state.ranking_context()))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        context: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        crate::fail_point!("ranker-handle");
        let context = context.clone();
        // Each request runs as its own task so a slow shard never stalls the mailbox.
        match message {
            RankerMsg::Search(request, profile, understanding, vector, reply) => {
                let search = async move {
                    let understanding = understanding.map(|u| *u);
                    let answer =
                        search::search(&context, request, &profile, understanding, vector).await;
                    let _ = reply.send(Ok(answer));
                };
                tokio::spawn(search.instrument(inkling_ops::trace::stage("ranker.search")));
            }
            RankerMsg::Recommend(request, profile, stated, reply) => {
                let recommend = async move {
                    let stated = stated.map(|slots| *slots).unwrap_or_default();
                    let answer = recommend::recommend(&context, request, &profile, stated).await;
                    let _ = reply.send(Ok(answer));
                };
                tokio::spawn(recommend.instrument(inkling_ops::trace::stage("ranker.recommend")));
            }
        }
        Ok(())
    }
}
