//! [`Inkling`]: starts the actors of one node and offers their services as async methods
//! with timeouts, which is all the gateway needs to know.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inkling_models::baskets::AssociationRules;
use inkling_models::segments::Segments;
use inkling_storage::{
    CatalogStore, Event, GroupCommit, KvEngine, ModelStore, Product, Profile, ProfileStore,
    ShardLayout, Taxonomy,
};
use ractor::{Actor, ActorRef};

use crate::catalog::{CatalogMsg, CatalogState, CatalogWriter};
use crate::config::ActorConfig;
use crate::embedder::Embedder;
use crate::index_shard::{IndexShard, IndexShardArgs, IndexShardMsg};
use crate::model_pool::{ModelPool, ModelPoolMsg, PoolStats};
use crate::protocol::{RankedList, RecommendRequest, SearchRequest};
use crate::ranker::{Ranker, RankerMsg, RankerState};
use crate::session::SessionContext;
use crate::signals::{OnlineSignals, SignalsMsg};
use crate::supervisor::{SessionSupervisor, SupervisorArgs, SupervisorMsg};
use crate::understanding::{IntentModel, IntentService, SharedSlotExtractor, VocabularyTracker};
use crate::{ActorError, ask};

/// Where a node keeps its durable state.
pub struct NodeStorage {
    pub engine: Arc<dyn KvEngine>,
    /// Parent folder of the index shards, one sub-folder each.
    pub index_dir: PathBuf,
    pub taxonomy: Taxonomy,
}

/// Names of the fitted models `inkling profile build` stores and a node loads at start.
pub const SEGMENTS_MODEL: &str = "segments";
pub const RULES_MODEL: &str = "association-rules";

/// Products per catalog write when the index is refilled from the catalog.
const REINDEX_CHUNK: usize = 1_000;

async fn spawn_shards(
    config: &ActorConfig,
    storage: &NodeStorage,
    layout: &ShardLayout,
) -> Result<Vec<ActorRef<IndexShardMsg>>, ActorError> {
    let mut shards = Vec::with_capacity(config.shards);
    for shard in 0..config.shards.max(1) {
        let args = IndexShardArgs {
            dir: storage.index_dir.join(format!("shard-{shard}")),
            taxonomy: storage.taxonomy.clone(),
            layout: layout.clone(),
            search_delay: config
                .slow_shard
                .filter(|(slow, _)| *slow == shard)
                .map(|(_, delay)| delay),
        };
        let (actor, _) = Actor::spawn(None, IndexShard, args)
            .await
            .map_err(|error| spawn_error("index shard", error))?;
        shards.push(actor);
    }
    Ok(shards)
}

/// The running actors of one node.
pub struct Inkling {
    supervisor: ActorRef<SupervisorMsg>,
    catalog_writer: ActorRef<CatalogMsg>,
    ranker: ActorRef<RankerMsg>,
    signals: ActorRef<SignalsMsg>,
    shards: Vec<ActorRef<IndexShardMsg>>,
    model_pool: Option<ActorRef<ModelPoolMsg>>,
    catalog: CatalogStore,
    commit: GroupCommit,
    config: ActorConfig,
}

fn spawn_error(what: &str, error: impl std::fmt::Display) -> ActorError {
    ActorError::Unavailable(format!("could not start {what}: {error}"))
}

impl Inkling {
    pub async fn start(config: ActorConfig, storage: NodeStorage) -> Result<Self, ActorError> {
        let commit = GroupCommit::start(storage.engine.clone());
        let catalog = CatalogStore::new(storage.engine.clone());
        let (model_pool, embedder) = match &config.encoder {
            Some(pool_config) => {
                let (pool, _) = Actor::spawn(None, ModelPool, pool_config.clone())
                    .await
                    .map_err(|error| spawn_error("model pool", error))?;
                let embedder = Embedder {
                    pool: pool.clone(),
                    model: pool_config.model,
                    chunk: pool_config.queue_capacity.min(pool_config.max_batch),
                    // The first batch pays for a cold start.
                    timeout: config.request_timeout * 6,
                };
                (Some(pool), Some(embedder))
            }
            None => (None, None),
        };
        let layout = ShardLayout::new(
            config.segmentation,
            embedder.as_ref().map(|e| e.model.as_str().to_string()),
        );
        let shards = spawn_shards(&config, &storage, &layout).await?;
        let fitted = ModelStore::new(storage.engine.clone());
        let rules: AssociationRules = fitted.load(RULES_MODEL)?.unwrap_or_default();
        let segments: Option<Segments> = fitted.load(SEGMENTS_MODEL)?;
        tracing::info!(
            rules = rules.len(),
            segments = segments.as_ref().map_or(0, Segments::len),
            "fitted profile models loaded"
        );
        let (signals, _) = Actor::spawn(None, OnlineSignals, (config.signals, rules))
            .await
            .map_err(|error| spawn_error("online signals", error))?;
        let ranker_state = RankerState {
            shards: shards.clone(),
            signals: signals.clone(),
            recommender: Arc::new(config.recommender.clone()),
            config: config.clone(),
        };
        let (ranker, _) = Actor::spawn(None, Ranker, ranker_state)
            .await
            .map_err(|error| spawn_error("ranker", error))?;
        let slots = SharedSlotExtractor::default();
        let mut vocabulary = VocabularyTracker::new(storage.taxonomy.clone(), slots.clone());
        for product in catalog.all()? {
            vocabulary.add(&product);
        }
        vocabulary.publish();
        let catalog_state = CatalogState {
            store: catalog.clone(),
            commit: commit.clone(),
            shards: shards.clone(),
            shard_timeout: config.shard_timeout,
            vocabulary,
            embedder: embedder.clone(),
        };
        let (catalog_writer, _) = Actor::spawn(None, CatalogWriter, catalog_state)
            .await
            .map_err(|error| spawn_error("catalog writer", error))?;
        let intent_model = match embedder {
            Some(embedder) => Some(IntentModel::build(embedder).await?),
            None => None,
        };
        let intent = Arc::new(IntentService {
            model: intent_model,
            slots,
        });
        let context = Arc::new(SessionContext {
            profiles: ProfileStore::new(storage.engine.clone()),
            catalog: catalog.clone(),
            ranker: ranker.clone(),
            intent,
            signals: signals.clone(),
            profile_config: config.profile,
            segments: segments.map(Arc::new),
        });
        let supervisor_args = SupervisorArgs {
            context,
            idle_timeout: config.session_idle_timeout,
        };
        let (supervisor, _) = Actor::spawn(None, SessionSupervisor, supervisor_args)
            .await
            .map_err(|error| spawn_error("session supervisor", error))?;
        let node = Self {
            supervisor,
            catalog_writer,
            ranker,
            signals,
            shards,
            model_pool,
            catalog,
            commit,
            config,
        };
        node.reindex_if_behind().await?;
        Ok(node)
    }

    /// The index is derived from the catalog. A crash between the catalog's commit and the
    /// index's, or an index rebuilt for new settings, leaves it behind: refill it.
    async fn reindex_if_behind(&self) -> Result<(), ActorError> {
        let mut indexed = 0;
        for shard in &self.shards {
            indexed += ask(
                shard,
                IndexShardMsg::Count,
                self.config.request_timeout,
                "index shard",
            )
            .await?;
        }
        let stored = self.catalog.len()? as u64;
        if indexed == stored {
            return Ok(());
        }
        tracing::info!(indexed, stored, "index is behind the catalog: reindexing");
        let products = self.catalog.all()?;
        for chunk in products.chunks(REINDEX_CHUNK) {
            self.upsert_products(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// Applies a batch of events and returns once all of them are durable.
    pub async fn record_events(&self, events: Vec<Event>) -> Result<usize, ActorError> {
        let count = events.len();
        let mut by_user: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for event in events {
            by_user
                .entry(event.user_id.clone())
                .or_default()
                .push(event);
        }
        let calls = by_user.into_iter().map(|(user, events)| {
            ask(
                &self.supervisor,
                |reply| SupervisorMsg::RecordEvents(user, events, reply),
                self.config.request_timeout,
                "session",
            )
        });
        for outcome in futures::future::join_all(calls).await {
            outcome??;
        }
        // One shared sync for everything written so far: the group commit.
        self.commit.wait_durable().await?;
        Ok(count)
    }

    pub async fn search(&self, request: SearchRequest) -> Result<RankedList, ActorError> {
        ask(
            &self.supervisor,
            |reply| SupervisorMsg::Search(request, reply),
            self.config.request_timeout,
            "search",
        )
        .await?
    }

    pub async fn recommend(&self, request: RecommendRequest) -> Result<RankedList, ActorError> {
        ask(
            &self.supervisor,
            |reply| SupervisorMsg::Recommend(request, reply),
            self.config.request_timeout,
            "recommend",
        )
        .await?
    }

    pub async fn profile(&self, user_id: String) -> Result<Profile, ActorError> {
        ask(
            &self.supervisor,
            |reply| SupervisorMsg::GetProfile(user_id, reply),
            self.config.request_timeout,
            "session",
        )
        .await
    }

    pub async fn active_sessions(&self) -> Result<u64, ActorError> {
        ask(
            &self.supervisor,
            SupervisorMsg::ActiveSessions,
            self.config.request_timeout,
            "session supervisor",
        )
        .await
    }

    /// Stores and indexes products; they are durable and searchable once this returns.
    pub async fn upsert_products(&self, products: Vec<Product>) -> Result<usize, ActorError> {
        // Embedding a large batch on a CPU takes a while: allow for it.
        let per_product = if self.model_pool.is_some() {
            Duration::from_millis(25)
        } else {
            Duration::from_millis(1)
        };
        let timeout = self.config.request_timeout * 6 + per_product * products.len() as u32;
        ask(
            &self.catalog_writer,
            |reply| CatalogMsg::Upsert(products, reply),
            timeout,
            "catalog writer",
        )
        .await?
    }

    pub async fn delete_product(&self, id: String) -> Result<bool, ActorError> {
        ask(
            &self.catalog_writer,
            |reply| CatalogMsg::Delete(id, reply),
            self.config.request_timeout,
            "catalog writer",
        )
        .await?
    }

    /// Queue and cache figures of the model pool, when the node runs one.
    pub async fn model_pool_stats(&self) -> Option<Result<PoolStats, ActorError>> {
        let pool = self.model_pool.as_ref()?;
        Some(
            ask(
                pool,
                ModelPoolMsg::Stats,
                self.config.request_timeout,
                "model pool",
            )
            .await,
        )
    }

    pub fn profile_half_life_ms(&self) -> u64 {
        self.config.profile.half_life_ms
    }

    pub fn catalog_size(&self) -> Result<usize, ActorError> {
        Ok(self.catalog.len()?)
    }

    /// Stops every actor of the node and waits until they are gone, so their handles on
    /// storage are released; durable state stays on disk.
    pub async fn shutdown(&self) {
        let timeout = Some(self.config.request_timeout);
        let _ = self.supervisor.stop_and_wait(None, timeout).await;
        let _ = self.catalog_writer.stop_and_wait(None, timeout).await;
        let _ = self.ranker.stop_and_wait(None, timeout).await;
        let _ = self.signals.stop_and_wait(None, timeout).await;
        for shard in &self.shards {
            let _ = shard.stop_and_wait(None, timeout).await;
        }
        if let Some(pool) = &self.model_pool {
            let _ = pool.stop_and_wait(None, timeout).await;
        }
    }
}
