//! An index shard actor: owns one tantivy index and answers queries against it.

use std::path::PathBuf;
use std::sync::Arc;

use inkling_storage::{IndexHit, IndexQuery, Product, Taxonomy, TextIndex};
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
    /// Adds or replaces products; visible to searches once answered.
    #[rpc]
    Upsert(Vec<Product>, RpcReplyPort<Result<(), ActorError>>),
    /// Removes products by id; invisible to searches once answered.
    #[rpc]
    Delete(Vec<String>, RpcReplyPort<Result<(), ActorError>>),
}

pub struct IndexShard;

pub struct IndexShardArgs {
    pub dir: PathBuf,
    pub taxonomy: Taxonomy,
}

impl Actor for IndexShard {
    type Msg = IndexShardMsg;
    type State = Arc<TextIndex>;
    type Arguments = IndexShardArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: IndexShardArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let index = tokio::task::spawn_blocking(move || TextIndex::open(&args.dir, args.taxonomy))
            .await??;
        Ok(Arc::new(index))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        index: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let index = index.clone();
        match message {
            IndexShardMsg::Search(query, reply) => {
                // Not awaited: the mailbox moves on while tantivy searches on a blocking thread.
                tokio::task::spawn_blocking(move || {
                    let _ = reply.send(index.search(&query).map_err(ActorError::from));
                });
            }
            // Writes are awaited so they apply in arrival order.
            IndexShardMsg::Upsert(products, reply) => {
                let outcome = tokio::task::spawn_blocking(move || index.upsert(&products)).await?;
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
