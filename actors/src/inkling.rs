//! [`Inkling`]: starts the actors of one node under the node supervisor and offers their
//! services as async methods with timeouts, which is all the gateway needs to know.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use inkling_domain::{Event, Product, ProductWrite, Profile, Taxonomy};
use inkling_models::baskets::AssociationRules;
use inkling_models::segments::Segments;
use inkling_storage::{CatalogStore, GroupCommit, KvEngine, ModelStore, ProfileStore, ShardLayout};
use ractor::{Actor, ActorRef};
use serde::{Deserialize, Serialize};

use crate::catalog::{
    CatalogMsg, CatalogState, CatalogWriter, ReconcileReport, catalog_write_timeout,
};
use crate::config::ActorConfig;
use crate::embedder::Embedder;
use crate::index_shard::{IndexShard, IndexShardArgs, IndexShardMsg};
use crate::model_pool::{ModelPool, ModelPoolMsg, PoolStats};
use crate::node_supervisor::{ChildSpec, NodeSupervisor, NodeSupervisorMsg, supervise};
use crate::placement::{HeldShards, NodeShards, ShardPlacement, shard_group};
use crate::profile_writer::ProfileWriter;
use crate::protocol::{RankedList, RecommendRequest, SearchRequest};
use crate::ranker::{Ranker, RankerMsg, RankerState};
use crate::session::SessionContext;
use crate::session_supervisor::{SessionFilter, SessionSupervisor, SupervisorArgs, SupervisorMsg};
use crate::signals::{OnlineSignals, SignalsMsg};
use crate::slot::ActorSlot;
use crate::understanding::{IntentModel, IntentService, SharedSlotExtractor, VocabularyTracker};
use crate::{ActorError, ask, blocking};

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

/// Written beside the shard folders: how many shards the index was split into.
const SHARD_COUNT_FILE: &str = "shards.json";

#[derive(Debug, Serialize, Deserialize)]
struct ShardCount {
    shards: usize,
}

/// The running actors of one node.
pub struct Inkling {
    root: ActorRef<NodeSupervisorMsg>,
    sessions: ActorSlot<SupervisorMsg>,
    profile_writer: Arc<ProfileWriter>,
    catalog_writer: ActorSlot<CatalogMsg>,
    model_pool: Option<ActorSlot<ModelPoolMsg>>,
    /// This node's copies of the index shards, and which of them it holds.
    shards: Arc<NodeShards>,
    /// What catalog writes this node takes are embedded with; `None` without an encoder.
    embedder: Option<Embedder>,
    catalog: CatalogStore,
    engine: Arc<dyn KvEngine>,
    commit: GroupCommit,
    config: ActorConfig,
}

fn spawn_error(what: &str, error: impl std::fmt::Display) -> ActorError {
    ActorError::Unavailable(format!("could not start {what}: {error}"))
}

/// Arguments that are the same for every incarnation.
fn same<T: Clone + Send + Sync + 'static>(
    value: T,
) -> Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<T, ActorError>> + Send + Sync> {
    Arc::new(move || {
        let value = value.clone();
        async move { Ok(value) }.boxed()
    })
}

impl Inkling {
    pub async fn start(config: ActorConfig, storage: NodeStorage) -> Result<Self, ActorError> {
        config.check().map_err(ActorError::Unavailable)?;
        let (root, _) = Actor::spawn(None, NodeSupervisor, config.restart_budget)
            .await
            .map_err(|error| spawn_error("node supervisor", error))?;
        let node = NodeBuilder {
            root: root.clone(),
            config: config.clone(),
            storage,
        };
        let started = node.start_children().await;
        if started.is_err() {
            let _ = stop_root(&root, config.request_timeout).await;
        }
        started
    }

    /// Folds committed events into profiles; the cluster layer's state machine calls it on
    /// every replica, in log order.
    pub fn profile_writer(&self) -> Arc<ProfileWriter> {
        self.profile_writer.clone()
    }

    /// Applies a batch of events on this node alone and returns once all of them are
    /// durable: the path for tests of the actors. A node in a cluster (even of one) records
    /// events through its replicated log, whose state machine calls [`Self::profile_writer`].
    pub async fn record_events(&self, events: Vec<Event>) -> Result<usize, ActorError> {
        let count = events.len();
        self.profile_writer
            .apply_batch(events, inkling_domain::now_ms())?;
        // One shared sync for everything written so far: the group commit.
        self.commit.wait_durable().await?;
        Ok(count)
    }

    /// Stops the sessions of users for whom `elsewhere` holds: their partition is now led by
    /// another node.
    pub fn stop_sessions_where(&self, elsewhere: impl Fn(&str) -> bool + Send + Sync + 'static) {
        let filter = SessionFilter(Arc::new(elsewhere));
        let _ = self.sessions.cast(SupervisorMsg::StopSessionsWhere(filter));
    }

    /// The group commit every durable write of this node shares.
    pub fn group_commit(&self) -> GroupCommit {
        self.commit.clone()
    }

    /// The node's storage engine, for what the cluster layer reads beside the actors (a
    /// user's events in the raft logs, for an export).
    pub fn engine(&self) -> Arc<dyn KvEngine> {
        self.engine.clone()
    }

    pub async fn search(&self, request: SearchRequest) -> Result<RankedList, ActorError> {
        self.sessions
            .ask(
                |reply| SupervisorMsg::Search(request, reply),
                self.config.request_timeout,
            )
            .await?
    }

    pub async fn recommend(&self, request: RecommendRequest) -> Result<RankedList, ActorError> {
        self.sessions
            .ask(
                |reply| SupervisorMsg::Recommend(request, reply),
                self.config.request_timeout,
            )
            .await?
    }

    pub async fn profile(&self, user_id: String) -> Result<Profile, ActorError> {
        self.sessions
            .ask(
                |reply| SupervisorMsg::GetProfile(user_id, reply),
                self.config.request_timeout,
            )
            .await
    }

    pub async fn active_sessions(&self) -> Result<u64, ActorError> {
        self.sessions
            .ask(SupervisorMsg::ActiveSessions, self.config.request_timeout)
            .await
    }

    /// The users with a live session on this node.
    pub async fn active_users(&self) -> Result<Vec<String>, ActorError> {
        self.sessions
            .ask(SupervisorMsg::ActiveUsers, self.config.request_timeout)
            .await
    }

    /// Stores and indexes products, embedding them here; they are durable and searchable
    /// once this returns.
    pub async fn upsert_products(&self, products: Vec<Product>) -> Result<usize, ActorError> {
        let writes = products.into_iter().map(ProductWrite::unembedded).collect();
        self.write_products(writes).await
    }

    /// Stores and indexes products with the vectors they carry; only those without a
    /// vector of this node's encoder are embedded here.
    pub async fn write_products(&self, writes: Vec<ProductWrite>) -> Result<usize, ActorError> {
        let timeout =
            catalog_write_timeout(&self.config, writes.len(), self.config.encoder.is_some());
        self.catalog_writer
            .ask(|reply| CatalogMsg::Upsert(writes, reply), timeout)
            .await?
    }

    /// The products with their passage vectors from this node's encoder, or local or
    /// remote pools of it; as they are without an encoder. What a node taking a catalog
    /// write does before replicating it, so no replica runs the encoder again.
    pub async fn embed_passages(
        &self,
        products: Vec<Product>,
    ) -> Result<Vec<ProductWrite>, ActorError> {
        let mut writes: Vec<ProductWrite> =
            products.into_iter().map(ProductWrite::unembedded).collect();
        if let Some(embedder) = &self.embedder {
            embedder
                .complete_passage_vectors(&mut writes, "write")
                .await?;
        }
        Ok(writes)
    }

    /// How long writing `products` products may take, embedding included.
    pub fn catalog_write_timeout(&self, products: usize) -> Duration {
        catalog_write_timeout(&self.config, products, self.config.encoder.is_some())
    }

    /// Every product of the catalog, read on a blocking thread.
    pub async fn all_products(&self) -> Result<Vec<Product>, ActorError> {
        let catalog = self.catalog.clone();
        blocking(move || Ok(catalog.all()?)).await
    }

    /// The product as this node's catalog holds it, read on a blocking thread.
    pub async fn product(&self, id: String) -> Result<Option<Product>, ActorError> {
        let catalog = self.catalog.clone();
        blocking(move || Ok(catalog.get(&id)?)).await
    }

    /// Every product of the catalog with its stored passage vector.
    pub async fn all_product_writes(&self) -> Result<Vec<ProductWrite>, ActorError> {
        let catalog = self.catalog.clone();
        blocking(move || Ok(catalog.all_writes()?)).await
    }

    pub async fn delete_product(&self, id: String) -> Result<bool, ActorError> {
        let timeout = catalog_write_timeout(&self.config, 1, false);
        self.catalog_writer
            .ask(|reply| CatalogMsg::Delete(id, reply), timeout)
            .await?
    }

    /// Makes every shard agree with the catalog; see [`CatalogMsg::Reconcile`].
    pub async fn reconcile(&self) -> Result<ReconcileReport, ActorError> {
        self.reconcile_shards(None).await
    }

    /// Starts an actor of a layer above (the cluster's router) under this node's supervisor,
    /// which restarts it like any other child.
    pub async fn supervise<A: ractor::Actor + Clone>(
        &self,
        spec: crate::node_supervisor::ChildSpec<A>,
    ) -> Result<ActorSlot<A::Msg>, ActorError> {
        supervise(&self.root, spec, self.config.request_timeout).await
    }

    /// Queue and cache figures of the model pool, when the node runs one.
    pub async fn model_pool_stats(&self) -> Option<Result<PoolStats, ActorError>> {
        let pool = self.model_pool.as_ref()?;
        Some(
            pool.ask(ModelPoolMsg::Stats, self.config.request_timeout)
                .await,
        )
    }

    pub fn profile_half_life_ms(&self) -> u64 {
        self.config.profile.half_life_ms
    }

    /// Counting scans the catalog (sled keeps no count), so it runs on a blocking thread.
    pub async fn catalog_size(&self) -> Result<usize, ActorError> {
        let catalog = self.catalog.clone();
        blocking(move || Ok(catalog.len()?)).await
    }

    /// How many shards the index is split into.
    pub fn shard_count(&self) -> usize {
        self.shards.shard_count()
    }

    /// The shards this node's index holds.
    pub fn held_shards(&self) -> BTreeSet<usize> {
        self.shards.held().get()
    }

    /// How many copies of `shard` on other nodes serve reads.
    pub fn shard_served_elsewhere(&self, shard: usize) -> usize {
        self.shards.served_elsewhere(shard)
    }

    /// The shards no copy serves reads of, on any node this one can reach: searches would
    /// answer without them.
    pub fn unserved_shards(&self) -> Vec<usize> {
        (0..self.shard_count())
            .filter(|shard| self.shards.serving_copies(*shard) == 0)
            .collect()
    }

    /// Makes this node's index hold exactly `shards`. A shard it gives up stops serving
    /// reads first, then is emptied; a shard it takes is built from this node's catalog,
    /// with the stored vectors, and serves reads once built. Whoever calls this decides
    /// when giving a shard up is safe (other nodes serve it).
    pub async fn hold_shards(&self, shards: BTreeSet<usize>) -> Result<(), ActorError> {
        let before = self.held_shards();
        if before == shards {
            return Ok(());
        }
        let added: Vec<usize> = shards.difference(&before).copied().collect();
        let removed: Vec<usize> = before.difference(&shards).copied().collect();
        self.shards.held().set(shards.clone())?;
        for shard in &removed {
            self.shards.set_serving(*shard, false);
        }
        let changed = added.iter().chain(&removed).copied().collect();
        let built = self.reconcile_shards(Some(changed)).await;
        let report = match built {
            Ok(report) => report,
            Err(error) => {
                // Not held until built: the next call takes them again.
                let kept = shards.iter().filter(|shard| !added.contains(shard));
                self.shards.held().set(kept.copied().collect())?;
                return Err(error);
            }
        };
        for shard in &added {
            self.shards.set_serving(*shard, true);
        }
        tracing::info!(?added, ?removed, ?report, "index shards moved");
        Ok(())
    }

    /// Makes `shards` (every one when `None`) agree with the catalog and with what this
    /// node holds.
    async fn reconcile_shards(
        &self,
        shards: Option<Vec<usize>>,
    ) -> Result<ReconcileReport, ActorError> {
        let products = self.catalog_size().await?;
        let timeout = self.catalog_write_timeout(products);
        self.catalog_writer
            .ask(|reply| CatalogMsg::Reconcile(shards, reply), timeout)
            .await?
    }

    /// Stops every actor of the node and waits until they are gone, so their handles on
    /// storage are released; durable state stays on disk.
    pub async fn shutdown(&self) {
        if let Err(error) = stop_root(&self.root, self.config.request_timeout).await {
            tracing::warn!(%error, "node did not stop cleanly");
        }
    }
}

/// Stops the supervisor's children, newest first, then the supervisor itself.
async fn stop_root(
    root: &ActorRef<NodeSupervisorMsg>,
    timeout: Duration,
) -> Result<(), ActorError> {
    let children = ask(
        root,
        |reply| NodeSupervisorMsg::StopChildren(timeout, reply),
        timeout * 8,
        "node supervisor",
    )
    .await;
    let _ = root.stop_and_wait(None, Some(timeout)).await;
    children
}

/// Starts a node's children under its supervisor, in dependency order.
struct NodeBuilder {
    root: ActorRef<NodeSupervisorMsg>,
    config: ActorConfig,
    storage: NodeStorage,
}

impl NodeBuilder {
    async fn start_children(self) -> Result<Inkling, ActorError> {
        let config = &self.config;
        let engine = self.storage.engine.clone();
        let commit = GroupCommit::start(engine.clone());
        let catalog = CatalogStore::new(engine.clone());
        let start_timeout = config.passage_embed_timeout(0) * 3;
        let (model_pool, embedder) = self.start_model_pool(start_timeout).await?;
        let layout = ShardLayout::new(
            config.segmentation,
            embedder.as_ref().map(|e| e.model.encoder_id()),
        );
        let catalog_writer: ActorSlot<CatalogMsg> = ActorSlot::empty("catalog writer");
        let resharded = self.prepare_index_folder()?;
        let held = HeldShards::load(
            &self.storage.index_dir,
            self.config.shards.max(1),
            resharded.is_some(),
        );
        let node_shards = self
            .start_shards(&layout, &catalog_writer, &held, start_timeout)
            .await?;
        let shards: Arc<dyn ShardPlacement> = node_shards.clone();
        let signals = self.start_signals(start_timeout).await?;
        let ranker_state = RankerState {
            shards: shards.clone(),
            signals: signals.clone(),
            recommender: Arc::new(config.recommender.clone()),
            search_ranker: config.search_ranker.clone().map(Arc::new),
            config: config.clone(),
        };
        let ranker_spec = ChildSpec {
            kind: "ranker",
            slot: ActorSlot::empty("ranker"),
            handler: Ranker,
            arguments: same(Arc::new(ranker_state)),
            after_restart: None,
        };
        let ranker = supervise(&self.root, ranker_spec, start_timeout).await?;
        let slots = SharedSlotExtractor::default();
        self.start_catalog_writer(
            &catalog_writer,
            &catalog,
            &commit,
            &shards,
            &embedder,
            &slots,
        )
        .await?;
        let intent = self.intent_service(embedder.clone(), slots).await?;
        let (sessions, profile_writer) = self
            .start_sessions(&catalog, ranker, signals, intent, start_timeout)
            .await?;
        let node = Inkling {
            root: self.root.clone(),
            sessions,
            profile_writer: Arc::new(profile_writer),
            catalog_writer,
            model_pool,
            shards: node_shards,
            embedder,
            catalog,
            engine,
            commit,
            config: self.config.clone(),
        };
        node.reconcile().await?;
        if let Some(count) = resharded {
            self.record_shard_count(count)?;
        }
        Ok(node)
    }

    async fn start_model_pool(
        &self,
        timeout: Duration,
    ) -> Result<(Option<ActorSlot<ModelPoolMsg>>, Option<Embedder>), ActorError> {
        let Some(pool_config) = &self.config.encoder else {
            return Ok((None, None));
        };
        let chunk = pool_config.queue_capacity.min(pool_config.max_batch);
        let mut embedder = Embedder {
            local: None,
            model: pool_config.model,
            chunk,
            query_timeout: self.config.query_embed_timeout,
            passage_timeout: self.config.passage_embed_timeout(chunk),
            next_remote: Default::default(),
        };
        if !self.config.local_model_pool {
            return Ok((None, Some(embedder)));
        }
        let spec = ChildSpec {
            kind: "model_pool",
            slot: ActorSlot::empty("model pool"),
            handler: ModelPool::default(),
            arguments: same(pool_config.clone()),
            after_restart: None,
        };
        let pool = supervise(&self.root, spec, timeout).await?;
        embedder.local = Some(pool.clone());
        Ok((Some(pool), Some(embedder)))
    }

    /// Checks the shard count the index was built with. Shard folders beyond the new count
    /// are removed; reconciliation then moves every product to the shard that owns it now.
    /// Answers the count to record once that is done, if it changed.
    fn prepare_index_folder(&self) -> Result<Option<usize>, ActorError> {
        let dir = &self.storage.index_dir;
        let wanted = self.config.shards.max(1);
        let recorded = read_shard_count(dir);
        if recorded == Some(wanted) {
            return Ok(None);
        }
        if let Some(previous) = recorded {
            tracing::warn!(
                previous,
                wanted,
                "shard count changed: re-sharding the index"
            );
        }
        for (shard, folder) in shard_folders(dir) {
            if shard < wanted {
                continue;
            }
            std::fs::remove_dir_all(&folder).map_err(|error| {
                ActorError::Storage(format!("cannot remove {}: {error}", folder.display()))
            })?;
        }
        Ok(Some(wanted))
    }

    fn record_shard_count(&self, shards: usize) -> Result<(), ActorError> {
        let dir = &self.storage.index_dir;
        let path = dir.join(SHARD_COUNT_FILE);
        let json = serde_json::to_vec(&ShardCount { shards }).expect("counts serialise");
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, json))
            .map_err(|error| {
                ActorError::Storage(format!("cannot write {}: {error}", path.display()))
            })
    }

    async fn start_shards(
        &self,
        layout: &ShardLayout,
        catalog_writer: &ActorSlot<CatalogMsg>,
        held: &HeldShards,
        timeout: Duration,
    ) -> Result<Arc<NodeShards>, ActorError> {
        let mut slots = Vec::new();
        for shard in 0..self.config.shards.max(1) {
            let args = IndexShardArgs {
                shard,
                group: shard_group(layout, self.config.shards.max(1), shard),
                dir: shard_folder(&self.storage.index_dir, shard),
                taxonomy: self.storage.taxonomy.clone(),
                layout: layout.clone(),
                held: held.clone(),
            };
            // A restarted shard may have missed writes, or crashed between two commits:
            // the catalog brings it up to date, in its mailbox's order.
            let writer = catalog_writer.clone();
            let reconcile = move || {
                let message = CatalogMsg::Reconcile(Some(vec![shard]), forget_reply());
                if let Err(error) = writer.cast(message) {
                    tracing::error!(%error, shard, "cannot reconcile restarted shard");
                }
            };
            let spec = ChildSpec {
                kind: "index_shard",
                slot: ActorSlot::<IndexShardMsg>::empty(format!("index shard {shard}")),
                handler: IndexShard,
                arguments: same(args),
                after_restart: Some(Arc::new(reconcile)),
            };
            slots.push(supervise(&self.root, spec, timeout).await?);
        }
        Ok(Arc::new(NodeShards::new(
            slots,
            layout.clone(),
            held.clone(),
        )))
    }

    /// The online signals start empty on every incarnation and relearn from traffic; only
    /// the rules fitted offline are read back from storage.
    async fn start_signals(&self, timeout: Duration) -> Result<ActorSlot<SignalsMsg>, ActorError> {
        let models = ModelStore::new(self.storage.engine.clone());
        let signals_config = self.config.signals;
        let arguments = Arc::new(move || {
            let models = models.clone();
            async move {
                let rules: AssociationRules =
                    blocking(move || Ok(models.load(RULES_MODEL)?.unwrap_or_default())).await?;
                tracing::info!(rules = rules.len(), "association rules loaded");
                Ok((signals_config, rules))
            }
            .boxed()
        });
        let spec = ChildSpec {
            kind: "signals",
            slot: ActorSlot::empty("online signals"),
            handler: OnlineSignals,
            arguments,
            after_restart: None,
        };
        supervise(&self.root, spec, timeout).await
    }

    /// Each incarnation of the catalog writer rebuilds the vocabulary from the catalog.
    async fn start_catalog_writer(
        &self,
        slot: &ActorSlot<CatalogMsg>,
        catalog: &CatalogStore,
        commit: &GroupCommit,
        shards: &Arc<dyn ShardPlacement>,
        embedder: &Option<Embedder>,
        slots: &SharedSlotExtractor,
    ) -> Result<(), ActorError> {
        let (catalog, commit, shards) = (catalog.clone(), commit.clone(), shards.clone());
        let (embedder, slots) = (embedder.clone(), slots.clone());
        let (taxonomy, config) = (self.storage.taxonomy.clone(), self.config.clone());
        let arguments = Arc::new(move || {
            let (store, commit, shards) = (catalog.clone(), commit.clone(), shards.clone());
            let (embedder, slots) = (embedder.clone(), slots.clone());
            let (taxonomy, config) = (taxonomy.clone(), config.clone());
            async move {
                let products = store.clone();
                let vocabulary = blocking(move || {
                    let mut vocabulary = VocabularyTracker::new(taxonomy, slots);
                    for product in products.all()? {
                        vocabulary.add(&product);
                    }
                    vocabulary.publish();
                    Ok(vocabulary)
                })
                .await?;
                Ok(CatalogState {
                    store,
                    commit,
                    shards,
                    config,
                    vocabulary: Some(vocabulary),
                    embedder,
                })
            }
            .boxed()
        });
        let spec = ChildSpec {
            kind: "catalog_writer",
            slot: slot.clone(),
            handler: CatalogWriter,
            arguments,
            after_restart: None,
        };
        let timeout = catalog_write_timeout(&self.config, 0, false) * 4;
        supervise(&self.root, spec, timeout).await.map(|_| ())
    }

    async fn intent_service(
        &self,
        embedder: Option<Embedder>,
        slots: SharedSlotExtractor,
    ) -> Result<Arc<IntentService>, ActorError> {
        let model = match embedder {
            Some(embedder) => Some(IntentModel::start(embedder).await),
            None => None,
        };
        Ok(Arc::new(IntentService { model, slots }))
    }

    async fn start_sessions(
        &self,
        catalog: &CatalogStore,
        ranker: ActorSlot<RankerMsg>,
        signals: ActorSlot<SignalsMsg>,
        intent: Arc<IntentService>,
        timeout: Duration,
    ) -> Result<(ActorSlot<SupervisorMsg>, ProfileWriter), ActorError> {
        let models = ModelStore::new(self.storage.engine.clone());
        let segments: Option<Segments> = blocking(move || Ok(models.load(SEGMENTS_MODEL)?)).await?;
        tracing::info!(
            segments = segments.as_ref().map_or(0, Segments::len),
            "shopper segments loaded"
        );
        let context = Arc::new(SessionContext {
            profiles: ProfileStore::new(self.storage.engine.clone()),
            catalog: catalog.clone(),
            ranker,
            intent,
            signals,
            profile_config: self.config.profile,
            segments: segments.map(Arc::new),
        });
        let args = SupervisorArgs {
            context: context.clone(),
            idle_timeout: self.config.session_idle_timeout,
            max_live_sessions: self.config.max_live_sessions,
        };
        let spec = ChildSpec {
            kind: "session_supervisor",
            slot: ActorSlot::empty("session supervisor"),
            handler: SessionSupervisor,
            arguments: same(args),
            after_restart: None,
        };
        let sessions = supervise(&self.root, spec, timeout).await?;
        let writer = ProfileWriter::new(context, sessions.clone());
        Ok((sessions, writer))
    }
}

fn shard_folder(index_dir: &Path, shard: usize) -> PathBuf {
    index_dir.join(format!("shard-{shard}"))
}

/// The shard folders present under `index_dir`, with their numbers.
fn shard_folders(index_dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(index_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let shard = name.to_str()?.strip_prefix("shard-")?.parse().ok()?;
            Some((shard, entry.path()))
        })
        .collect()
}

/// The shard count recorded with the index; `None` for an index without a record (a new
/// one, or one from before the count was recorded).
fn read_shard_count(index_dir: &Path) -> Option<usize> {
    let bytes = std::fs::read(index_dir.join(SHARD_COUNT_FILE)).ok()?;
    serde_json::from_slice::<ShardCount>(&bytes)
        .ok()
        .map(|count| count.shards)
}

/// A reply port nobody waits on, for requests whose answer only matters to the logs.
fn forget_reply<T: Send + 'static>() -> ractor::RpcReplyPort<T> {
    let (port, _) = tokio::sync::oneshot::channel();
    port.into()
}
