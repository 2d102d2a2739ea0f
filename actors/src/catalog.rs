//! The catalog actor: the single writer of products. It stores them durably in the catalog
//! (the source of truth) with their passage vectors, then routes each with its vector to the
//! shard that owns it. A write normally arrives embedded by the node that took it; this
//! actor embeds only what carries no vector of this node's encoder.
//!
//! The shards are derived data, and [`CatalogMsg::Reconcile`] makes them agree with the
//! catalog exactly: it compares ids and content versions, re-indexes what is stale or
//! missing and deletes what the catalog no longer holds or another shard owns. The node runs
//! it at start (a crash between the catalog's commit and a shard's, a changed shard count)
//! and after a shard restarts. Reconciliation goes through this actor's mailbox, so it never
//! races a write.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use inkling_domain::{Product, ProductWrite};
use inkling_storage::shard_index::product_version;
use inkling_storage::{CatalogStore, GroupCommit, IndexedProduct};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use serde::{Deserialize, Serialize};

use crate::config::ActorConfig;
use crate::embedder::Embedder;
use crate::index_shard::IndexShardMsg;
use crate::placement::ShardPlacement;
use crate::understanding::VocabularyTracker;
use crate::{ActorError, ask, blocking, fail_point};

/// Products per shard write when reconciliation re-indexes.
const REINDEX_CHUNK: usize = 1_000;

#[derive(RactorMessage)]
pub enum CatalogMsg {
    /// Stores and indexes products; answers with how many were written.
    Upsert(Vec<ProductWrite>, RpcReplyPort<Result<usize, ActorError>>),
    /// Removes a product; answers whether the catalog or its shard held it.
    Delete(String, RpcReplyPort<Result<bool, ActorError>>),
    /// Makes the given shards (all when `None`) agree with the catalog.
    Reconcile(
        Option<Vec<usize>>,
        RpcReplyPort<Result<ReconcileReport, ActorError>>,
    ),
}

/// What one reconciliation found and fixed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub shards_checked: usize,
    /// Products missing from their shard, or there in an older version.
    pub reindexed: usize,
    /// Products in a shard that the catalog no longer holds, or that another shard owns.
    pub removed: usize,
}

#[derive(Clone)]
pub struct CatalogWriter;

pub struct CatalogState {
    pub store: CatalogStore,
    pub commit: GroupCommit,
    pub shards: Arc<dyn ShardPlacement>,
    pub config: ActorConfig,
    /// Keeps the slot extractor's catalog vocabulary in step with every write; moved into
    /// blocking tasks while it rebuilds.
    pub vocabulary: Option<VocabularyTracker>,
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
        fail_point!("catalog-handle");
        match message {
            CatalogMsg::Upsert(writes, reply) => {
                let _ = reply.send(state.upsert(writes).await);
            }
            CatalogMsg::Delete(id, reply) => {
                let _ = reply.send(state.delete(id).await);
            }
            CatalogMsg::Reconcile(shards, reply) => {
                let outcome = state.reconcile(shards).await;
                if let Err(error) = &outcome {
                    tracing::error!(%error, "reconciling the index with the catalog failed");
                }
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }
}

impl CatalogState {
    async fn upsert(&mut self, writes: Vec<ProductWrite>) -> Result<usize, ActorError> {
        let count = writes.len();
        // Embedding comes first: if the encoder is overloaded, nothing has been written yet.
        let writes = self.with_own_vectors(writes, "replica").await?;
        let writes = self.store_products(writes).await?;
        self.commit.wait_durable().await?;
        fail_point!("catalog-upsert-after-commit", |_| Err(injected_crash()));
        let encoder = self.encoder();
        let indexed = writes
            .into_iter()
            .map(|write| indexed_write(write, encoder.as_deref()))
            .collect();
        self.index(indexed).await?;
        Ok(count)
    }

    /// This node's encoder, as vectors name it; `None` on a node without one.
    fn encoder(&self) -> Option<String> {
        self.embedder
            .as_ref()
            .map(|embedder| embedder.model.encoder_id())
    }

    /// The writes, each with a vector from this node's encoder: the one it carries when
    /// that encoder computed it, else one computed here (counted under `reason`). A node
    /// without an encoder keeps what the writes carry, for replicas that have one.
    async fn with_own_vectors(
        &self,
        mut writes: Vec<ProductWrite>,
        reason: &str,
    ) -> Result<Vec<ProductWrite>, ActorError> {
        if let Some(embedder) = &self.embedder {
            embedder
                .complete_passage_vectors(&mut writes, reason)
                .await?;
        }
        Ok(writes)
    }

    /// Writes the products and their vectors to the catalog and the vocabulary, off the
    /// async workers.
    async fn store_products(
        &mut self,
        writes: Vec<ProductWrite>,
    ) -> Result<Vec<ProductWrite>, ActorError> {
        let store = self.store.clone();
        let mut vocabulary = self.take_vocabulary()?;
        let (vocabulary, outcome) = crate::storage_task(move || {
            let outcome = (|| {
                for write in &writes {
                    if let Some(previous) = store.get(&write.product.id)? {
                        vocabulary.remove(&previous);
                    }
                    store.put_write(write)?;
                    vocabulary.add(&write.product);
                }
                vocabulary.publish();
                Ok::<_, ActorError>(())
            })();
            (vocabulary, outcome.map(|()| writes))
        })
        .await
        .map_err(|error| ActorError::Unavailable(format!("catalog write failed: {error}")))?;
        self.vocabulary = Some(vocabulary);
        outcome
    }

    fn take_vocabulary(&mut self) -> Result<VocabularyTracker, ActorError> {
        self.vocabulary
            .take()
            .ok_or_else(|| ActorError::Unavailable("catalog vocabulary is missing".into()))
    }

    /// Sends each product to the shard that owns it, all shards at once.
    async fn index(&self, products: Vec<IndexedProduct>) -> Result<(), ActorError> {
        let mut by_shard: BTreeMap<usize, Vec<IndexedProduct>> = BTreeMap::new();
        for indexed in products {
            let shard = self.shards.shard_of(&indexed.product.id);
            // A shard this node does not hold is skipped: the catalog keeps the product,
            // and the shard is built from it if this node takes the shard over.
            if self.shards.holds(shard) {
                by_shard.entry(shard).or_default().push(indexed);
            }
        }
        let writes = by_shard
            .into_iter()
            .map(|(shard, batch)| self.write_shard(shard, batch));
        for outcome in futures::future::join_all(writes).await {
            outcome?;
        }
        Ok(())
    }

    /// One shard write. A shard that fails is restarted by its supervisor and reconciled
    /// from the catalog, where the write is already durable; the caller sees the error and
    /// may retry, which converges on the same state.
    async fn write_shard(
        &self,
        shard: usize,
        batch: Vec<IndexedProduct>,
    ) -> Result<(), ActorError> {
        let timeout = self.config.index_write_timeout(batch.len());
        ask(
            &self.shards.shard(shard)?,
            |reply| IndexShardMsg::Upsert(batch, reply),
            timeout,
            &format!("index shard {shard}"),
        )
        .await?
    }

    async fn delete(&mut self, id: String) -> Result<bool, ActorError> {
        let store = self.store.clone();
        let mut vocabulary = self.take_vocabulary()?;
        let key = id.clone();
        let (vocabulary, previous) = crate::storage_task(move || {
            let previous = store.delete(&key).map_err(ActorError::from);
            if let Ok(Some(product)) = &previous {
                vocabulary.remove(product);
                vocabulary.publish();
            }
            (vocabulary, previous)
        })
        .await
        .map_err(|error| ActorError::Unavailable(format!("catalog delete failed: {error}")))?;
        self.vocabulary = Some(vocabulary);
        let in_catalog = previous?.is_some();
        self.commit.wait_durable().await?;
        fail_point!("catalog-delete-after-commit", |_| Err(injected_crash()));
        // Asked even when the catalog no longer has it: a delete whose shard write failed
        // earlier is finished by the retry.
        let shard = self.shards.shard_of(&id);
        let removed = ask(
            &self.shards.shard(shard)?,
            |reply| IndexShardMsg::Delete(vec![id], reply),
            self.config.index_write_timeout(1),
            &format!("index shard {shard}"),
        )
        .await??;
        Ok(in_catalog || removed > 0)
    }

    async fn reconcile(&self, shards: Option<Vec<usize>>) -> Result<ReconcileReport, ActorError> {
        let shards = shards.unwrap_or_else(|| (0..self.shards.shard_count()).collect());
        let store = self.store.clone();
        let catalog = blocking(move || Ok(store.all()?)).await?;
        let mut owned: HashMap<usize, Vec<Product>> = HashMap::new();
        for product in catalog {
            owned
                .entry(self.shards.shard_of(&product.id))
                .or_default()
                .push(product);
        }
        let mut report = ReconcileReport::default();
        for shard in shards {
            // A shard this node does not hold is kept empty.
            let expected = match self.shards.holds(shard) {
                true => owned.remove(&shard).unwrap_or_default(),
                false => Vec::new(),
            };
            self.reconcile_shard(shard, expected, &mut report).await?;
        }
        if report.reindexed + report.removed > 0 {
            tracing::info!(?report, "index reconciled with the catalog");
        }
        Ok(report)
    }

    async fn reconcile_shard(
        &self,
        shard: usize,
        expected: Vec<Product>,
        report: &mut ReconcileReport,
    ) -> Result<(), ActorError> {
        let actor = self.shards.shard(shard)?;
        let timeout = self.config.request_timeout;
        let mut indexed = ask(&actor, IndexShardMsg::Versions, timeout, "index shard").await?;
        let stale: Vec<Product> = expected
            .into_iter()
            .filter(|product| indexed.remove(&product.id) != Some(product_version(product)))
            .collect();
        // What is left in `indexed` is in the shard but not the catalog's for this shard.
        let orphans: Vec<String> = indexed.into_keys().collect();
        report.shards_checked += 1;
        report.reindexed += stale.len();
        report.removed += orphans.len();
        if !orphans.is_empty() {
            let timeout = self.config.index_write_timeout(orphans.len());
            ask(
                &actor,
                |reply| IndexShardMsg::Delete(orphans, reply),
                timeout,
                "index shard",
            )
            .await??;
        }
        for chunk in stale.chunks(REINDEX_CHUNK) {
            let writes = self.stored_writes(chunk.to_vec()).await?;
            let writes = self.with_own_vectors(writes, "reindex").await?;
            let store = self.store.clone();
            let writes = blocking(move || {
                for write in &writes {
                    store.put_write(write)?;
                }
                Ok(writes)
            })
            .await?;
            let encoder = self.encoder();
            let batch = writes
                .into_iter()
                .map(|write| indexed_write(write, encoder.as_deref()))
                .collect();
            self.write_shard(shard, batch).await?;
        }
        Ok(())
    }

    /// The products with the vectors the catalog stores for them.
    async fn stored_writes(&self, products: Vec<Product>) -> Result<Vec<ProductWrite>, ActorError> {
        let store = self.store.clone();
        blocking(move || {
            products
                .into_iter()
                .map(|product| {
                    let vector = store.vector(&product.id)?;
                    Ok(ProductWrite { product, vector })
                })
                .collect()
        })
        .await
    }
}

/// What a shard indexes for a write: its vector only if `encoder`, this node's, made it.
fn indexed_write(write: ProductWrite, encoder: Option<&str>) -> IndexedProduct {
    let vector = write
        .vector
        .as_ref()
        .zip(encoder)
        .and_then(|(vector, encoder)| vector.from_encoder(encoder))
        .map(<[f32]>::to_vec);
    IndexedProduct {
        product: write.product,
        vector,
    }
}

/// Deadline for a whole catalog write of `products` products, as the façade waits for it.
pub fn catalog_write_timeout(config: &ActorConfig, products: usize, embedding: bool) -> Duration {
    let embedding = if embedding {
        config.passage_embed_timeout(products)
    } else {
        Duration::ZERO
    };
    config.request_timeout + embedding + config.index_write_timeout(products)
}

/// What an armed fail-point between the catalog's commit and the index's reports.
#[cfg(feature = "failpoints")]
fn injected_crash() -> ActorError {
    ActorError::Unavailable("fail-point: stopped between the catalog and index commits".into())
}
