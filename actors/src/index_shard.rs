//! An index shard actor: owns one shard index (tantivy text + HNSW vectors) and answers
//! queries against it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use inkling_domain::{Product, Taxonomy};
use inkling_ops::trace::TraceContext;
use inkling_storage::{IndexHit, IndexQuery, IndexedProduct, ShardIndex, ShardLayout};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use tracing::Instrument;

use crate::held_shards::HeldShards;
use crate::{ActorError, fail_point};

/// Remotable so that replicas on other nodes can answer reads; only this node's catalog
/// writer sends writes.
#[derive(RactorClusterMessage)]
pub enum IndexShardMsg {
    /// Answers a query; searches run concurrently with each other.
    #[rpc]
    Search(
        IndexQuery,
        TraceContext,
        RpcReplyPort<Result<Vec<IndexHit>, ActorError>>,
    ),
    /// Adds or replaces products with their embeddings; visible to searches once answered.
    #[rpc]
    Upsert(Vec<IndexedProduct>, RpcReplyPort<Result<(), ActorError>>),
    /// The shard's live products among these ids, from memory.
    #[rpc]
    Lookup(Vec<String>, RpcReplyPort<Vec<Arc<Product>>>),
    /// The embedding of one product, when the shard holds it with one.
    #[rpc]
    VectorOf(String, RpcReplyPort<Option<Vec<f32>>>),
    /// Every product the shard holds, by id, with the version of its content; what the
    /// catalog reconciles the shard against.
    #[rpc]
    Versions(RpcReplyPort<HashMap<String, u64>>),
    /// Removes products by id; invisible to searches once answered. Answers how many of
    /// them the shard held.
    #[rpc]
    Delete(Vec<String>, RpcReplyPort<Result<usize, ActorError>>),
}

#[derive(Clone)]
pub struct IndexShard;

#[derive(Clone)]
pub struct IndexShardArgs {
    /// The shard's number, for fault injection and logs.
    pub shard: usize,
    /// The process group replicas of this shard share across nodes.
    pub group: String,
    pub dir: PathBuf,
    pub taxonomy: Taxonomy,
    pub layout: ShardLayout,
    /// Which shards this node holds: a copy of a shard it does not hold stays out of the
    /// process group, so no read comes to it.
    pub held: HeldShards,
}

pub struct ShardState {
    shard: usize,
    index: Arc<ShardIndex>,
}

impl Actor for IndexShard {
    type Msg = IndexShardMsg;
    type State = ShardState;
    type Arguments = IndexShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: IndexShardArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (shard, group, held) = (args.shard, args.group.clone(), args.held.clone());
        let index = tokio::task::spawn_blocking(move || {
            ShardIndex::open(&args.dir, args.taxonomy, &args.layout)
        })
        .await??;
        if held.holds(shard) {
            ractor::pg::join(group, vec![myself.get_cell()]);
        }
        let state = ShardState {
            shard,
            index: Arc::new(index),
        };
        state.publish_size();
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        fail_point!("index-shard-handle");
        let index = state.index.clone();
        match message {
            IndexShardMsg::Search(query, trace, reply) => {
                let shard = state.shard;
                let span = trace.span(format_args!("index_shard.search.{shard}"));
                // Not awaited: the mailbox moves on while the search runs on a blocking thread.
                let search = async move {
                    let answer = tokio::task::spawn_blocking(move || {
                        fail_point!(format!("index-shard-{shard}-search"));
                        index.search(&query)
                    })
                    .await;
                    let answer = match answer {
                        Ok(found) => found.map_err(ActorError::from),
                        Err(error) => {
                            Err(ActorError::Unavailable(format!("search failed: {error}")))
                        }
                    };
                    let _ = reply.send(answer);
                };
                tokio::spawn(search.instrument(span));
            }
            IndexShardMsg::Lookup(ids, reply) => {
                let _ = reply.send(index.lookup(&ids));
            }
            IndexShardMsg::VectorOf(id, reply) => {
                let _ = reply.send(index.vector_of(&id).map(|vector| vector.to_vec()));
            }
            IndexShardMsg::Versions(reply) => {
                let _ = reply.send(index.versions());
            }
            // Writes are awaited so they apply in arrival order.
            IndexShardMsg::Upsert(products, reply) => {
                let outcome = tokio::task::spawn_blocking(move || index.upsert(products)).await?;
                state.publish_size();
                let _ = reply.send(outcome.map_err(ActorError::from));
            }
            IndexShardMsg::Delete(ids, reply) => {
                let outcome = tokio::task::spawn_blocking(move || index.delete(&ids)).await?;
                state.publish_size();
                let _ = reply.send(outcome.map_err(ActorError::from));
            }
        }
        Ok(())
    }
}

impl ShardState {
    /// Sets the shard's `inkling_index_products` gauge.
    fn publish_size(&self) {
        let count = i64::try_from(self.index.live_products()).unwrap_or(i64::MAX);
        inkling_ops::metrics::INDEX_PRODUCTS
            .with_label_values(&[&self.shard.to_string()])
            .set(count);
    }
}
