//! The production sides of [`IndexShards`] and [`CandidateSignals`]: ractor calls to the
//! index shard replicas and to the online signals actor, each under the shard deadline.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use inkling_domain::Product;
use inkling_storage::{IndexHit, IndexQuery};
use ractor::ActorRef;

use super::context::{CandidateSignals, IndexShards};
use crate::index_shard::IndexShardMsg;
use crate::placement::ShardPlacement;
use crate::signals::{SignalAnswer, SignalQuery, SignalsMsg};
use crate::slot::ActorSlot;
use crate::{ActorError, ask};

/// The index shards wherever they run: this node's copy first, replicas on other nodes
/// when it is down or slow.
pub struct ShardReplicas {
    pub placement: Arc<dyn ShardPlacement>,
    /// Deadline for one shard's answer.
    pub deadline: Duration,
}

impl IndexShards for ShardReplicas {
    fn shard_count(&self) -> usize {
        self.placement.shard_count()
    }

    fn shard_of(&self, product_id: &str) -> usize {
        self.placement.shard_of(product_id)
    }

    fn search(
        &self,
        shard: usize,
        query: IndexQuery,
    ) -> BoxFuture<'_, Result<Vec<IndexHit>, ActorError>> {
        self.search_hedged(shard, query).boxed()
    }

    fn lookup(
        &self,
        shard: usize,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Arc<Product>>, ActorError>> {
        async move {
            let replica = self.any_replica(shard)?;
            let message = |reply| IndexShardMsg::Lookup(ids, reply);
            ask(&replica, message, self.deadline, "index shard").await
        }
        .boxed()
    }

    fn vector_of(
        &self,
        shard: usize,
        product_id: String,
    ) -> BoxFuture<'_, Result<Option<Vec<f32>>, ActorError>> {
        async move {
            let replica = self.any_replica(shard)?;
            let message = |reply| IndexShardMsg::VectorOf(product_id, reply);
            ask(&replica, message, self.deadline, "index shard").await
        }
        .boxed()
    }
}

impl ShardReplicas {
    /// Searches `shard` on its replicas, this node's copy first. When that copy fails, or
    /// has not answered within half the shard deadline, the next replica (on another node)
    /// is asked as well and the first good answer wins, all within one shard deadline: a
    /// slow or lost copy costs a hedged read, not the shard's share of the results.
    async fn search_hedged(
        &self,
        shard: usize,
        query: IndexQuery,
    ) -> Result<Vec<IndexHit>, ActorError> {
        let deadline = self.deadline;
        let name = format!("index shard {shard}");
        let ask_replica = |replica: ActorRef<IndexShardMsg>, budget: Duration| {
            let (query, name) = (query.clone(), name.clone());
            async move {
                let started = std::time::Instant::now();
                let trace = inkling_ops::trace::TraceContext::current();
                let message = |reply| IndexShardMsg::Search(query, trace, reply);
                let asked = ask(&replica, message, budget, &name).await;
                if !replica.get_id().is_local() {
                    let answered = matches!(asked, Ok(Ok(_)));
                    inkling_ops::metrics::observe_remote_call("index_shard", started, answered);
                }
                asked?
            }
        };
        let mut replicas = self.placement.replicas(shard).into_iter();
        let Some(first) = replicas.next() else {
            return Err(no_replica(shard));
        };
        let first_try = ask_replica(first, deadline).boxed();
        let Some(second) = replicas.next() else {
            return first_try.await;
        };
        let hedge_after = deadline / 2;
        let second_try = async move {
            tokio::time::sleep(hedge_after).await;
            ask_replica(second, deadline - hedge_after).await
        }
        .boxed();
        let (hits, _) = futures::future::select_ok([first_try, second_try]).await?;
        Ok(hits)
    }

    /// This node's copy of `shard` when it runs, else a replica on another node.
    fn any_replica(&self, shard: usize) -> Result<ActorRef<IndexShardMsg>, ActorError> {
        let replica = self.placement.replicas(shard).into_iter().next();
        replica.ok_or_else(|| no_replica(shard))
    }
}

fn no_replica(shard: usize) -> ActorError {
    ActorError::Unavailable(format!("no replica of index shard {shard} is running"))
}

/// The node's online signals actor, in the slot its supervisor keeps current.
pub struct SignalsActor {
    pub slot: ActorSlot<SignalsMsg>,
    /// Deadline for the signals' answer.
    pub deadline: Duration,
}

impl CandidateSignals for SignalsActor {
    fn candidates(&self, query: SignalQuery) -> BoxFuture<'_, Result<SignalAnswer, ActorError>> {
        let message = |reply| SignalsMsg::Candidates(query, reply);
        self.slot.ask(message, self.deadline).boxed()
    }
}
