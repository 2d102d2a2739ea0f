//! The catalog actor: the single writer of products. It embeds them (when the node has an
//! encoder), stores them durably, then routes each with its embedding to its index shard, so
//! the catalog and the index agree on what exists.

use std::collections::BTreeMap;
use std::time::Duration;

use inkling_models::encoder::TextKind;
use inkling_storage::{CatalogStore, GroupCommit, IndexedProduct, Product};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::embedder::Embedder;
use crate::index_shard::{IndexShardMsg, shard_of};
use crate::understanding::VocabularyTracker;
use crate::{ActorError, ask};

#[derive(RactorClusterMessage)]
pub enum CatalogMsg {
    /// Stores and indexes products; answers with how many were written.
    #[rpc]
    Upsert(Vec<Product>, RpcReplyPort<Result<usize, ActorError>>),
    /// Removes a product; answers whether it existed.
    #[rpc]
    Delete(String, RpcReplyPort<Result<bool, ActorError>>),
}

pub struct CatalogWriter;

pub struct CatalogState {
    pub store: CatalogStore,
    pub commit: GroupCommit,
    pub shards: Vec<ActorRef<IndexShardMsg>>,
    pub shard_timeout: Duration,
    /// Keeps the slot extractor's catalog vocabulary in step with every write.
    pub vocabulary: VocabularyTracker,
    /// Embeds products for vector search; `None` on a node without an encoder.
    pub embedder: Option<Embedder>,
}

impl Actor for CatalogWriter {
    type Msg = CatalogMsg;
    type State = CatalogState;
    type Arguments = CatalogState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: CatalogState,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CatalogMsg::Upsert(products, reply) => {
                let _ = reply.send(upsert(state, products).await);
            }
            CatalogMsg::Delete(id, reply) => {
                let _ = reply.send(delete(state, id).await);
            }
        }
        Ok(())
    }
}

async fn upsert(state: &mut CatalogState, products: Vec<Product>) -> Result<usize, ActorError> {
    let count = products.len();
    // Embedding comes first: if the encoder is overloaded, nothing has been written yet.
    let vectors = match &state.embedder {
        Some(embedder) => {
            let passages = products.iter().map(Product::passage).collect();
            embedder
                .embed(TextKind::Passage, passages)
                .await?
                .into_iter()
                .map(Some)
                .collect()
        }
        None => vec![None; count],
    };
    for product in &products {
        if let Some(previous) = state.store.get(&product.id)? {
            state.vocabulary.remove(&previous);
        }
        state.store.put(product)?;
        state.vocabulary.add(product);
    }
    state.vocabulary.publish();
    state.commit.wait_durable().await?;
    let mut by_shard: BTreeMap<usize, Vec<IndexedProduct>> = BTreeMap::new();
    for (product, vector) in products.into_iter().zip(vectors) {
        by_shard
            .entry(shard_of(&product.id, state.shards.len()))
            .or_default()
            .push(IndexedProduct { product, vector });
    }
    // Indexing a large batch takes far longer than a query, so the deadline scales with it.
    let timeout = state.shard_timeout * 20 + Duration::from_millis(count as u64);
    for (shard, batch) in by_shard {
        ask(
            &state.shards[shard],
            |reply| IndexShardMsg::Upsert(batch, reply),
            timeout,
            &format!("index shard {shard}"),
        )
        .await??;
    }
    Ok(count)
}

async fn delete(state: &mut CatalogState, id: String) -> Result<bool, ActorError> {
    let Some(previous) = state.store.delete(&id)? else {
        return Ok(false);
    };
    state.vocabulary.remove(&previous);
    state.vocabulary.publish();
    state.commit.wait_durable().await?;
    let shard = shard_of(&id, state.shards.len());
    ask(
        &state.shards[shard],
        |reply| IndexShardMsg::Delete(vec![id], reply),
        state.shard_timeout * 20,
        &format!("index shard {shard}"),
    )
    .await??;
    Ok(true)
}
