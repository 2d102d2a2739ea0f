//! An index shard actor: owns one shard index (tantivy text + HNSW vectors) and answers
//! queries against it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inkling_storage::{
    IndexHit, IndexQuery, IndexedProduct, Product, ShardIndex, ShardLayout, Taxonomy,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::ActorError;

/// Stable placement of a product on a shard: the same id maps to the same shard on every
/// node and every release, because the hash function is fixed (xxh3), not std's.
pub fn shard_of(product_id: &str, shards: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(product_id.as_bytes()) % shards.max(1) as u64) as usize
}

#[derive(RactorClusterMessage)]
pub enum IndexShardMsg {
    /// Answers a query; searches run concurrently with each other.
    #[rpc]
    Search(IndexQuery, RpcReplyPort<Result<Vec<IndexHit>, ActorError>>),
    /// Adds or replaces products with their embeddings; visible to searches once answered.
    #[rpc]
    Upsert(Vec<IndexedProduct>, RpcReplyPort<Result<(), ActorError>>),
    /// The shard's live products among these ids, from memory.
    #[rpc]
    Lookup(Vec<String>, RpcReplyPort<Vec<Arc<Product>>>),
    /// The embedding of one product, when the shard holds it with one.
    #[rpc]
    VectorOf(String, RpcReplyPort<Option<Vec<f32>>>),
    /// Counts the products the shard holds.
    #[rpc]
    Count(RpcReplyPort<u64>),
    /// Removes products by id; invisible to searches once answered.
    #[rpc]
    Delete(Vec<String>, RpcReplyPort<Result<(), ActorError>>),
}

pub struct IndexShard;

pub struct IndexShardArgs {
    pub dir: PathBuf,
    pub taxonomy: Taxonomy,
    pub layout: ShardLayout,
    /// Fault injection: every search waits this long first.
    pub search_delay: Option<Duration>,
}

pub struct ShardState {
    index: Arc<ShardIndex>,
    search_delay: Option<Duration>,
}

impl Actor for IndexShard {
    type Msg = IndexShardMsg;
    type State = ShardState;
    type Arguments = IndexShardArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: IndexShardArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let index = tokio::task::spawn_blocking(move || {
            ShardIndex::open(&args.dir, args.taxonomy, &args.layout)
        })
        .await??;
        Ok(ShardState {
            index: Arc::new(index),
            search_delay: args.search_delay,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let index = state.index.clone();
        match message {
            IndexShardMsg::Search(query, reply) => {
                let delay = state.search_delay;
                // Not awaited: the mailbox moves on while the search runs on a blocking thread.
                tokio::spawn(async move {
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    let answer = tokio::task::spawn_blocking(move || index.search(&query)).await;
                    let answer = match answer {
                        Ok(found) => found.map_err(ActorError::from),
                        Err(error) => {
                            Err(ActorError::Unavailable(format!("search failed: {error}")))
                        }
                    };
                    let _ = reply.send(answer);
                });
            }
            IndexShardMsg::Lookup(ids, reply) => {
                let _ = reply.send(index.lookup(&ids));
            }
            IndexShardMsg::VectorOf(id, reply) => {
                let _ = reply.send(index.vector_of(&id).map(|vector| vector.to_vec()));
            }
            // Writes are awaited so they apply in arrival order.
            IndexShardMsg::Count(reply) => {
                let _ = reply.send(index.num_docs());
            }
            IndexShardMsg::Upsert(products, reply) => {
                let outcome = tokio::task::spawn_blocking(move || index.upsert(products)).await?;
                let _ = reply.send(outcome.map_err(ActorError::from));
            }
            IndexShardMsg::Delete(ids, reply) => {
                let outcome = tokio::task::spawn_blocking(move || index.delete(&ids)).await?;
                let _ = reply.send(outcome.map_err(ActorError::from));
            }
        }
        Ok(())
    }
}
