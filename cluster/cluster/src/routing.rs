//! [`Cluster`]: this node's place in the cluster, and the façade the gateway talks to.
//!
//! A shopper's requests run where the shopper's partition is led: events are proposed to
//! that raft group, and searches, recommendations and profile reads are answered by the
//! session actor on the leader. A node that does not lead the partition sends the request
//! to the leader's router over the actor mesh and, on "not leader", follows the hint and
//! retries until the request's deadline. Catalog writes go through the catalog's own raft group, whose
//! every voter writes them into its catalog and index; searches read the local index.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use inkling_actors::model_pool::PoolStats;
use inkling_actors::{ActorError, Inkling, RankedList, RecommendRequest, SearchRequest};
use inkling_domain::{Event, Product, Profile, now_ms};
use inkling_ops::trace::TraceContext;
use inkling_storage::KvEngine;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::log_store::LogStore;
use crate::membership::{Member, Membership, MembershipConfig};
use crate::mesh::{Mesh, MeshConfig, RouterMsg, router_at};
use crate::network::RaftNetworkFor;
use crate::partition::{CATALOG_GROUP, PartitionId, REPLICAS, partition_of, placement};
use crate::raft_types::{Applied, Command, NodeId, Raft, node_id_of};
use crate::state_machine::{GroupKind, StateMachine};

/// One forwarding attempt to a node that holds no replica of the partition may take this
/// long before the next is tried: a frozen leader accepts connections but never answers.
/// A node with a replica gives up on an attempt as soon as its raft sees another leader.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2000);
/// Pause between attempts while a partition has no reachable leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A member of the cluster as named at its first start.
#[derive(Debug, Clone)]
pub struct InitialMember {
    pub name: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_name: String,
    /// The address peers reach this node on: HTTP (TCP) and gossip (UDP). Raft and gossip
    /// know the node by it.
    pub addr: SocketAddr,
    /// The address the node's listener is bound to; gossip binds it too. Differs from
    /// `addr` only behind a proxy or NAT.
    pub listen: SocketAddr,
    /// The IP outgoing peer connections leave from, when set: a proxy in front of each
    /// node then knows which node a connection comes from.
    pub source_ip: Option<std::net::IpAddr>,
    /// Gossip addresses of nodes to join through.
    pub seeds: Vec<String>,
    /// The members the partitions are first placed on, this node included. Used only when a
    /// partition has no raft state yet.
    pub initial_members: Vec<InitialMember>,
    pub roles: String,
    /// How long a request may take, retries and forwarding included.
    pub request_timeout: Duration,
    pub mesh: MeshConfig,
}

/// Which leader, in which term, committed a write to a partition.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Commit {
    pub partition: PartitionId,
    pub term: u64,
    /// The raft id of the leader ([`crate::node_id_of`] of its name).
    pub leader: NodeId,
}

/// Why one attempt to reach a partition's leader failed.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum RouteError {
    #[error("not the leader of partition {partition}")]
    NotLeader {
        partition: PartitionId,
        hint: Option<String>,
    },
    #[error("could not reach {0}")]
    Unreachable(String),
    #[error(transparent)]
    Failed(ActorError),
}

impl RouteError {
    fn is_retryable(&self) -> bool {
        match self {
            RouteError::NotLeader { .. } | RouteError::Unreachable(_) => true,
            RouteError::Failed(error) => matches!(error, ActorError::Unavailable(_)),
        }
    }

    fn into_actor_error(self) -> ActorError {
        match self {
            RouteError::Failed(error) => error,
            other => ActorError::Unavailable(format!("no reachable leader: {other}")),
        }
    }
}

/// A shopper request served by the session on the partition's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UserCall {
    Search(SearchRequest),
    Recommend(RecommendRequest),
    Profile(String),
}

impl UserCall {
    fn user_id(&self) -> &str {
        match self {
            UserCall::Search(request) => &request.user_id,
            UserCall::Recommend(request) => &request.user_id,
            UserCall::Profile(user_id) => user_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UserAnswer {
    Ranked(Box<RankedList>),
    Profile(Box<Profile>),
}

/// Where a partition's leader is, as far as this node knows.
enum Leader {
    Here(Raft),
    At(String),
    Unknown,
}

pub struct Cluster {
    pub(crate) name: String,
    pub(crate) me: NodeId,
    /// The address peers reach this node on.
    pub(crate) addr: String,
    pub(crate) inkling: Arc<Inkling>,
    pub(crate) partitions: BTreeMap<PartitionId, Raft>,
    pub(crate) membership: Arc<Membership>,
    mesh: Mesh,
    http: reqwest::Client,
    /// The term in which each partition led here was last confirmed caught up.
    caught_up: Mutex<HashMap<PartitionId, u64>>,
    /// Idempotency keys for events that arrive without one, so forwarding retries never
    /// apply an event twice.
    event_keys: (u64, AtomicU64),
    request_timeout: Duration,
    initial_catalog_loader: bool,
    pub(crate) draining: AtomicBool,
    pub(crate) drained: tokio::sync::Notify,
    stopping: AtomicBool,
}

fn peer_client(source_ip: Option<std::net::IpAddr>) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .local_address(source_ip)
        .build()
        .context("cannot build the HTTP client for peers")
}

fn raft_config() -> anyhow::Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: "inkling-users".to_string(),
        // A follower grants votes only once the leader has been silent for the maximum
        // election timeout (openraft's leader lease), so that bounds failover: 0.5–0.8 s
        // gives a median of about 1.6 s (docs/benchmarks.md), and is still five
        // heartbeats of slack on a busy machine.
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 800,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

impl Cluster {
    pub async fn start(
        config: ClusterConfig,
        inkling: Arc<Inkling>,
        engine: Arc<dyn KvEngine>,
    ) -> anyhow::Result<Arc<Self>> {
        let membership = Arc::new(
            Membership::start(MembershipConfig {
                node_name: config.node_name.clone(),
                addr: config.addr,
                listen: config.listen,
                seeds: config.seeds.clone(),
                roles: config.roles.clone(),
                cluster_id: "inkling".to_string(),
                // Port 0 is a cluster of one: nobody dials it.
                actor_addr: (config.mesh.addr.port() != 0).then_some(config.mesh.advertise),
            })
            .await?,
        );
        let mesh = Mesh::start(
            config.mesh.clone(),
            &config.node_name,
            membership.clone(),
            &inkling,
        )
        .await?;
        let http = peer_client(config.source_ip)?;
        let me = node_id_of(&config.node_name);
        // Raft gets a connection pool of its own: a heartbeat never waits for a connection
        // that a large forwarded answer holds.
        let partitions = start_partitions(
            &config,
            me,
            &inkling,
            &engine,
            &peer_client(config.source_ip)?,
        )
        .await?;
        let initial_ids: Vec<NodeId> = config
            .initial_members
            .iter()
            .map(|member| node_id_of(&member.name))
            .collect();
        let initial_catalog_loader =
            placement(CATALOG_GROUP, &initial_ids, REPLICAS).first() == Some(&me);
        let cluster = Arc::new(Self {
            name: config.node_name.clone(),
            me,
            addr: config.addr.to_string(),
            inkling,
            partitions,
            membership,
            mesh,
            http,
            caught_up: Mutex::new(HashMap::new()),
            event_keys: (now_ms(), AtomicU64::new(0)),
            request_timeout: config.request_timeout,
            initial_catalog_loader,
            draining: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
        });
        crate::mesh::start_router(&cluster, &cluster.addr).await?;
        tokio::spawn(cluster.clone().rebalance_forever());
        for (partition, raft) in &cluster.partitions {
            tokio::spawn(watch_leadership(
                *partition,
                raft.clone(),
                cluster.membership.clone(),
                cluster.inkling.clone(),
            ));
        }
        Ok(cluster)
    }

    /// This node's actors, for what is not routed by user (catalog, health).
    pub fn local(&self) -> &Arc<Inkling> {
        &self.inkling
    }

    /// This node's raft of the group, member or not: peers' raft messages go to it.
    pub fn raft(&self, partition: PartitionId) -> Option<&Raft> {
        self.partitions.get(&partition)
    }

    /// This node's raft of the group, if the node is a voter or learner of it.
    pub(crate) fn member_raft(&self, group: PartitionId) -> Option<&Raft> {
        let raft = self.partitions.get(&group)?;
        let is_member = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&self.me)
            .is_some();
        is_member.then_some(raft)
    }

    /// Records events and returns once each is committed by a quorum of its partition's
    /// voters, every one of which has synced it to disk.
    pub async fn record_events(&self, events: Vec<Event>) -> Result<usize, ActorError> {
        Ok(self.record_events_committed(events).await?.0)
    }

    /// [`Self::record_events`], also answering, per partition written, the term and leader
    /// that committed the events: the ownership record the chaos checker verifies.
    pub async fn record_events_committed(
        &self,
        events: Vec<Event>,
    ) -> Result<(usize, Vec<Commit>), ActorError> {
        let count = events.len();
        // A broken build for the chaos checker to catch: acknowledge without proposing.
        if inkling_actors::fail_point_armed("events-ack-before-commit") {
            return Ok((count, Vec::new()));
        }
        let deadline = Instant::now() + self.request_timeout;
        let at_ms = now_ms();
        let mut by_partition: BTreeMap<PartitionId, Vec<Event>> = BTreeMap::new();
        for mut event in events {
            if event.event_id.is_none() {
                event.event_id = Some(self.next_event_key());
            }
            by_partition
                .entry(partition_of(&event.user_id))
                .or_default()
                .push(event);
        }
        let proposals = by_partition
            .into_iter()
            .map(|(partition, events)| async move {
                let command = Command::RecordEvents { at_ms, events };
                let applied = self.propose(partition, command, deadline).await?;
                Ok::<_, ActorError>(Commit {
                    partition,
                    term: applied.term,
                    leader: applied.leader,
                })
            });
        let mut commits = Vec::new();
        for outcome in futures::future::join_all(proposals).await {
            commits.push(outcome?);
        }
        Ok((count, commits))
    }

    /// Stores and indexes products on every replica of the catalog; answers once they are
    /// committed by a quorum and searchable on the catalog group's leader.
    pub async fn upsert_products(&self, products: Vec<Product>) -> Result<usize, ActorError> {
        let deadline = Instant::now() + self.inkling.catalog_write_timeout(products.len());
        let command = Command::UpsertProducts(products);
        Ok(self.propose(CATALOG_GROUP, command, deadline).await?.count)
    }

    /// Deletes a product from every replica; answers whether the catalog had it.
    pub async fn delete_product(&self, id: String) -> Result<bool, ActorError> {
        let deadline = Instant::now() + self.inkling.catalog_write_timeout(1);
        let command = Command::DeleteProduct(id);
        Ok(self.propose(CATALOG_GROUP, command, deadline).await?.count > 0)
    }

    /// Whether this node loads the initial catalog: the catalog group's first choice, so
    /// one node proposes it and the log carries it to the others.
    pub fn loads_initial_catalog(&self) -> bool {
        self.initial_catalog_loader
    }

    /// Waits until the group has a leader this node knows of, or `timeout` passes.
    pub async fn wait_for_leader(
        &self,
        group: PartitionId,
        timeout: Duration,
    ) -> Result<(), ActorError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !matches!(self.leader_of(group).await, Leader::Unknown) {
                return Ok(());
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err(ActorError::Timeout(format!(
            "raft group {group} elected no leader within {timeout:?}"
        )))
    }

    /// Erases a user from every voter of their partition, and their session.
    pub async fn erase_user(&self, user_id: String) -> Result<(), ActorError> {
        let deadline = Instant::now() + self.request_timeout;
        let partition = partition_of(&user_id);
        self.propose(partition, Command::EraseUser { user_id }, deadline)
            .await
            .map(|_| ())
    }

    pub async fn search(&self, request: SearchRequest) -> Result<RankedList, ActorError> {
        match self.call_user(UserCall::Search(request)).await? {
            UserAnswer::Ranked(list) => Ok(*list),
            UserAnswer::Profile(_) => Err(unexpected_answer()),
        }
    }

    pub async fn recommend(&self, request: RecommendRequest) -> Result<RankedList, ActorError> {
        match self.call_user(UserCall::Recommend(request)).await? {
            UserAnswer::Ranked(list) => Ok(*list),
            UserAnswer::Profile(_) => Err(unexpected_answer()),
        }
    }

    pub async fn profile(&self, user_id: String) -> Result<Profile, ActorError> {
        match self.call_user(UserCall::Profile(user_id)).await? {
            UserAnswer::Profile(profile) => Ok(*profile),
            UserAnswer::Ranked(_) => Err(unexpected_answer()),
        }
    }

    fn next_event_key(&self) -> String {
        let (incarnation, counter) = &self.event_keys;
        let sequence = counter.fetch_add(1, Ordering::Relaxed);
        format!("{}/{incarnation}/{sequence}", self.name)
    }

    async fn leader_of(&self, partition: PartitionId) -> Leader {
        let Some(raft) = self.member_raft(partition) else {
            return match self.membership.leader_hint(partition).await {
                Some(addr) => Leader::At(addr),
                None => Leader::Unknown,
            };
        };
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            Some(leader) if leader == self.me => Leader::Here(raft.clone()),
            Some(leader) => match metrics.membership_config.membership().get_node(&leader) {
                Some(node) => Leader::At(node.addr.clone()),
                None => Leader::Unknown,
            },
            None => Leader::Unknown,
        }
    }

    /// Resolves when this node's replica of the partition sees a leader other than the one
    /// it sees now; never, for a partition it holds no replica of.
    async fn leader_changes(&self, partition: PartitionId) {
        let Some(raft) = self.member_raft(partition) else {
            return std::future::pending().await;
        };
        let mut metrics = raft.metrics();
        let leader = metrics.borrow_and_update().current_leader;
        while metrics.changed().await.is_ok() {
            if metrics.borrow_and_update().current_leader != leader {
                return;
            }
        }
        std::future::pending().await
    }

    /// Runs `attempt` against the partition's leader until it succeeds, fails for good, or
    /// the deadline passes.
    async fn with_leader<T, F, Fut>(
        &self,
        partition: PartitionId,
        deadline: Instant,
        attempt: F,
    ) -> Result<T, ActorError>
    where
        F: Fn(Leader, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, RouteError>>,
    {
        let mut hint: Option<String> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let leader = match hint.take() {
                Some(addr) => Leader::At(addr),
                None => self.leader_of(partition).await,
            };
            let budget = match self.member_raft(partition) {
                Some(_) => remaining,
                None => remaining.min(ATTEMPT_TIMEOUT),
            };
            let attempt = tokio::time::timeout(budget, attempt(leader, budget));
            let outcome = tokio::select! {
                outcome = attempt => outcome
                    .unwrap_or_else(|_| Err(RouteError::Unreachable("the leader timed out".to_string()))),
                () = self.leader_changes(partition) => {
                    Err(RouteError::Unreachable("the partition elected another leader".to_string()))
                }
            };
            let error = match outcome {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !error.is_retryable() {
                return Err(error.into_actor_error());
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(match error {
                    RouteError::Failed(error) => error,
                    other => ActorError::Timeout(format!(
                        "partition {partition} had no reachable leader within the deadline ({other})"
                    )),
                });
            }
            if let RouteError::NotLeader {
                hint: Some(addr), ..
            } = &error
            {
                hint = Some(addr.clone());
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn propose(
        &self,
        partition: PartitionId,
        command: Command,
        deadline: Instant,
    ) -> Result<Applied, ActorError> {
        self.with_leader(partition, deadline, |leader, budget| {
            let command = command.clone();
            async move {
                match leader {
                    Leader::Here(raft) => propose_here(&raft, partition, command).await,
                    Leader::At(addr) => {
                        let trace = TraceContext::current();
                        let message = |reply| RouterMsg::Propose(partition, command, trace, reply);
                        call_router(&addr, message, budget).await
                    }
                    Leader::Unknown => Err(RouteError::NotLeader {
                        partition,
                        hint: None,
                    }),
                }
            }
        })
        .await
    }

    /// Proposes on this node only; a node that does not lead the partition answers
    /// "not leader" with what it knows of the leader.
    pub async fn propose_here(
        &self,
        partition: PartitionId,
        command: Command,
    ) -> Result<Applied, RouteError> {
        let Some(raft) = self.member_raft(partition) else {
            let hint = self.membership.leader_hint(partition).await;
            return Err(RouteError::NotLeader { partition, hint });
        };
        propose_here(raft, partition, command).await
    }

    async fn call_user(&self, call: UserCall) -> Result<UserAnswer, ActorError> {
        let deadline = Instant::now() + self.request_timeout;
        let partition = partition_of(call.user_id());
        self.with_leader(partition, deadline, |leader, budget| {
            let call = call.clone();
            async move {
                match leader {
                    Leader::Here(_) => self.serve_here(call).await,
                    Leader::At(addr) => {
                        let trace = TraceContext::current();
                        let message = |reply| RouterMsg::User(call, trace, reply);
                        call_router(&addr, message, budget).await
                    }
                    Leader::Unknown => Err(RouteError::NotLeader {
                        partition,
                        hint: None,
                    }),
                }
            }
        })
        .await
    }

    /// Serves a shopper request with this node's session, if this node leads the shopper's
    /// partition and has applied everything committed before its leadership.
    pub async fn serve_here(&self, call: UserCall) -> Result<UserAnswer, RouteError> {
        let partition = partition_of(call.user_id());
        self.ensure_caught_up(partition).await?;
        let served = match call {
            UserCall::Search(request) => self
                .inkling
                .search(request)
                .await
                .map(|list| UserAnswer::Ranked(Box::new(list))),
            UserCall::Recommend(request) => self
                .inkling
                .recommend(request)
                .await
                .map(|list| UserAnswer::Ranked(Box::new(list))),
            UserCall::Profile(user_id) => self
                .inkling
                .profile(user_id)
                .await
                .map(|profile| UserAnswer::Profile(Box::new(profile))),
        };
        served.map_err(RouteError::Failed)
    }

    /// A new leader may not have applied every committed entry yet; sessions it starts must
    /// load complete profiles, so the first request of each term waits for a linearizable
    /// read point.
    async fn ensure_caught_up(&self, partition: PartitionId) -> Result<(), RouteError> {
        let Some(raft) = self.member_raft(partition) else {
            let hint = self.membership.leader_hint(partition).await;
            return Err(RouteError::NotLeader { partition, hint });
        };
        let term = raft.metrics().borrow().current_term;
        if self.caught_up.lock().get(&partition) == Some(&term) {
            return Ok(());
        }
        match raft.ensure_linearizable().await {
            Ok(_) => {
                self.caught_up.lock().insert(partition, term);
                Ok(())
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                Err(RouteError::NotLeader {
                    partition,
                    hint: forward.leader_node.map(|node| node.addr),
                })
            }
            Err(other) => Err(RouteError::Unreachable(other.to_string())),
        }
    }

    /// A peer's view of the cluster, if it answers within `budget`.
    pub(crate) async fn peer_status(&self, addr: &str, budget: Duration) -> Option<ClusterStatus> {
        let response = self
            .http
            .get(format!("http://{addr}/internal/status"))
            .timeout(budget)
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// Members, partitions and their leaders, as this node sees them.
    pub async fn status(&self) -> ClusterStatus {
        let members = self.membership.live_members().await;
        let dead = self.membership.dead_members().await;
        let mut sessions: HashMap<PartitionId, usize> = HashMap::new();
        for user in self.inkling.active_users().await.unwrap_or_default() {
            *sessions.entry(partition_of(&user)).or_default() += 1;
        }
        let partitions = self
            .partitions
            .iter()
            .filter(|(group, _)| self.member_raft(**group).is_some())
            .map(|(partition, raft)| {
                let active = sessions.get(partition).copied().unwrap_or(0);
                partition_status(*partition, raft, active)
            })
            .collect();
        let model_pools = group_sizes("inkling.models.");
        let shard_replicas = group_sizes("inkling.index.");
        let local_model_pool = match self.inkling.model_pool_stats().await {
            Some(Ok(stats)) => Some(stats),
            _ => None,
        };
        ClusterStatus {
            node: self.name.clone(),
            members,
            dead,
            mesh_peers: self.mesh.peers().await,
            model_pools,
            local_model_pool,
            mailbox_depths: inkling_ops::metrics::mailbox_depths(),
            shard_replicas,
            partitions,
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Stops the raft groups and gossip; the actors are the node's to stop.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for raft in self.partitions.values() {
            if let Err(error) = raft.shutdown().await {
                tracing::warn!(%error, "raft group did not stop cleanly");
            }
        }
        self.mesh.leave();
        self.membership.leave().await;
    }
}

/// Sends one request to the router of the node at `addr` over the actor mesh, waiting at
/// most `budget`.
async fn call_router<T>(
    addr: &str,
    message: impl FnOnce(ractor::RpcReplyPort<Result<T, RouteError>>) -> RouterMsg,
    budget: Duration,
) -> Result<T, RouteError>
where
    T: Send + 'static,
{
    let Some(router) = router_at(addr) else {
        return Err(RouteError::Unreachable(format!(
            "{addr}: no actor mesh session with that node"
        )));
    };
    let started = std::time::Instant::now();
    let called = router.call(message, Some(budget)).await;
    let answered = matches!(called, Ok(ractor::rpc::CallResult::Success(_)));
    inkling_ops::metrics::observe_remote_call("router", started, answered);
    match called {
        Ok(ractor::rpc::CallResult::Success(answer)) => answer,
        Ok(ractor::rpc::CallResult::Timeout) => Err(RouteError::Unreachable(format!(
            "{addr} did not answer within {budget:?}"
        ))),
        Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(RouteError::Unreachable(format!(
            "{addr}: the mesh session closed"
        ))),
    }
}

/// How many actors, here and on connected nodes, are in each process group whose name
/// starts with `prefix`.
/// Sets the shard-replica gauges from the process groups, for a scrape of `/metrics`.
pub fn publish_replica_gauges() {
    let gauge = &inkling_ops::metrics::SHARD_REPLICAS;
    gauge.reset();
    let prefix = "inkling.index.";
    for group in ractor::pg::which_groups() {
        let Some(shard) = group.strip_prefix(prefix) else {
            continue;
        };
        let (local, remote): (Vec<_>, Vec<_>) = ractor::pg::get_members(&group)
            .into_iter()
            .partition(|member| member.get_id().is_local());
        gauge
            .with_label_values(&[shard, "local"])
            .set(local.len() as i64);
        gauge
            .with_label_values(&[shard, "remote"])
            .set(remote.len() as i64);
    }
}

fn group_sizes(prefix: &str) -> BTreeMap<String, usize> {
    ractor::pg::which_groups()
        .into_iter()
        .filter(|group| group.starts_with(prefix))
        .map(|group| {
            let members = ractor::pg::get_members(&group).len();
            (group, members)
        })
        .collect()
}

fn unexpected_answer() -> ActorError {
    ActorError::Unavailable("the leader answered another kind of request".to_string())
}

async fn propose_here(
    raft: &Raft,
    partition: PartitionId,
    command: Command,
) -> Result<Applied, RouteError> {
    let started = std::time::Instant::now();
    match raft.client_write(command).await {
        Ok(written) => {
            let elapsed = started.elapsed().as_secs_f64();
            inkling_ops::metrics::RAFT_COMMIT_SECONDS.observe(elapsed);
            Ok(Applied {
                term: written.log_id.leader_id.term,
                leader: written.log_id.leader_id.node_id,
                ..written.data
            })
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            Err(RouteError::NotLeader {
                partition,
                hint: forward.leader_node.map(|node| node.addr),
            })
        }
        Err(other) => Err(RouteError::Failed(ActorError::Unavailable(format!(
            "partition {partition}: {other}"
        )))),
    }
}

/// Opens this node's replica of every partition it is a voter of, and bootstraps the raft
/// groups this node is the first choice for.
async fn start_partitions(
    config: &ClusterConfig,
    me: NodeId,
    inkling: &Arc<Inkling>,
    engine: &Arc<dyn KvEngine>,
    http: &reqwest::Client,
) -> anyhow::Result<BTreeMap<PartitionId, Raft>> {
    let raft_config = raft_config()?;
    let initial: BTreeMap<NodeId, BasicNode> = config
        .initial_members
        .iter()
        .map(|member| (node_id_of(&member.name), BasicNode::new(member.addr)))
        .collect();
    let initial_ids: Vec<NodeId> = initial.keys().copied().collect();
    anyhow::ensure!(
        initial.is_empty() || initial.contains_key(&me),
        "the initial members must include this node ({})",
        config.node_name
    );
    let commit = inkling.group_commit();
    let mut partitions = BTreeMap::new();
    // Every node runs every group: one that is not a member yet sits idle until a leader
    // adds it (see `rebalance`).
    for partition in 0..=CATALOG_GROUP {
        let voters = placement(partition, &initial_ids, REPLICAS);
        let kind = if partition == CATALOG_GROUP {
            GroupKind::Catalog
        } else {
            GroupKind::Users
        };
        let log = LogStore::new(partition, engine.clone(), commit.clone());
        let state = StateMachine::new(partition, kind, engine.clone(), inkling.clone());
        let network = RaftNetworkFor::new(partition, http.clone());
        let raft = Raft::new(me, raft_config.clone(), network, log, state)
            .await
            .with_context(|| format!("cannot start raft for partition {partition}"))?;
        if voters.first() == Some(&me) && !raft.is_initialized().await? {
            let nodes: BTreeMap<NodeId, BasicNode> = initial
                .iter()
                .filter(|(id, _)| voters.contains(id))
                .map(|(id, node)| (*id, node.clone()))
                .collect();
            raft.initialize(nodes)
                .await
                .with_context(|| format!("cannot bootstrap partition {partition}"))?;
        }
        partitions.insert(partition, raft);
    }
    Ok(partitions)
}

/// Publishes leadership changes and stops this node's sessions of a partition it stopped
/// leading, so at most one node holds an active session for a user.
async fn watch_leadership(
    partition: PartitionId,
    raft: Raft,
    membership: Arc<Membership>,
    inkling: Arc<Inkling>,
) {
    let mut metrics = raft.metrics();
    let mut leading: Option<u64> = None;
    loop {
        let now_leading = {
            let current = metrics.borrow_and_update();
            (current.state == ServerState::Leader).then_some(current.current_term)
        };
        if now_leading != leading {
            match (leading, now_leading) {
                (None, Some(_)) => inkling_ops::metrics::RAFT_GROUPS_LED.inc(),
                (Some(_), None) => inkling_ops::metrics::RAFT_GROUPS_LED.dec(),
                _ => {}
            }
            inkling_ops::metrics::RAFT_LEADER_CHANGES.inc();
            if leading.is_some() {
                inkling.stop_sessions_where(move |user| partition_of(user) == partition);
            }
            membership.publish_leadership(partition, now_leading).await;
            leading = now_leading;
        }
        if metrics.changed().await.is_err() {
            if leading.is_some() {
                inkling_ops::metrics::RAFT_GROUPS_LED.dec();
            }
            return;
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: String,
    pub members: Vec<Member>,
    pub dead: Vec<String>,
    /// Members this node has an authenticated actor-mesh session with.
    #[serde(default)]
    pub mesh_peers: Vec<String>,
    /// Model pools this node can reach, by process group (`inkling.models.MODEL.DEVICE`),
    /// counting its own.
    #[serde(default)]
    pub model_pools: BTreeMap<String, usize>,
    /// This node's own model pool: its device, workers and queue; none without an encoder.
    #[serde(default)]
    pub local_model_pool: Option<PoolStats>,
    /// Requests waiting on or being handled by this node's actors, by actor kind.
    #[serde(default)]
    pub mailbox_depths: BTreeMap<String, i64>,
    /// Replicas of each index shard this node can reach, by process group
    /// (`inkling.index.MODEL.COUNT.SHARD`), counting its own.
    #[serde(default)]
    pub shard_replicas: BTreeMap<String, usize>,
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub partition: PartitionId,
    /// `users` for a user partition, `catalog` for the catalog group.
    pub group: String,
    pub state: String,
    pub term: u64,
    pub leader: Option<String>,
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    pub last_applied: Option<u64>,
    /// Live session actors on this node for users of the partition: only its leader
    /// should have any.
    pub sessions: usize,
}

fn partition_status(partition: PartitionId, raft: &Raft, sessions: usize) -> PartitionStatus {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    let address = |id: &NodeId| membership.get_node(id).map(|node| node.addr.clone());
    PartitionStatus {
        partition,
        group: if partition == CATALOG_GROUP {
            "catalog"
        } else {
            "users"
        }
        .to_string(),
        state: format!("{:?}", metrics.state),
        term: metrics.current_term,
        leader: metrics.current_leader.as_ref().and_then(address),
        voters: membership
            .voter_ids()
            .filter_map(|id| address(&id))
            .collect(),
        learners: membership
            .learner_ids()
            .filter_map(|id| address(&id))
            .collect(),
        last_applied: metrics.last_applied.map(|log_id| log_id.index),
        sessions,
    }
}
