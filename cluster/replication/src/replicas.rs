//! [`LocalReplicas`]: this node's replicas of the raft groups and the actors that serve
//! them. It answers what reaches this node, from its own façade or from another node's over
//! the mesh: a shopper call served by the local session of a partition led here, a command
//! proposed to a group led here. It never forwards: routing and the mesh do that.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use inkling_actors::model_pool::PoolStats;
use inkling_actors::node_supervisor::ChildSpec;
use inkling_actors::slot::ActorSlot;
use inkling_actors::{ActorError, Inkling};
use inkling_domain::Profile;
use inkling_storage::DiskGuard;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use parking_lot::Mutex;

use crate::membership::Membership;
use crate::partition::{PartitionId, partition_of};
use crate::raft_types::{Applied, Command, NodeId, Raft, node_id_of};
use crate::request::{RouteError, UserAnswer, UserCall};

/// How long one raft group may take to stop when the node shuts down.
const RAFT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's raft groups and local actors, and what it knows of their leaders.
pub struct LocalReplicas {
    name: String,
    me: NodeId,
    /// The address peers reach this node on: raft names this node by it.
    addr: String,
    inkling: Arc<Inkling>,
    partitions: BTreeMap<PartitionId, Raft>,
    membership: Arc<Membership>,
    /// The term in which each partition led here was last confirmed caught up.
    caught_up: Mutex<HashMap<PartitionId, u64>>,
    stopping: AtomicBool,
    /// Turns new data away, whole, while this node's disk is nearly full.
    disk: DiskGuard,
    /// Peers whose disk gossip last said is nearly full, by raft id: a group with one of
    /// them as a replica takes no new data either.
    peers_low_on_disk: Mutex<Vec<(NodeId, String)>>,
}

/// How often a node reads its free disk space, tells peers, and learns theirs.
const DISK_WATCH_INTERVAL: Duration = Duration::from_secs(2);

impl LocalReplicas {
    pub(crate) fn new(
        name: String,
        addr: String,
        inkling: Arc<Inkling>,
        partitions: BTreeMap<PartitionId, Raft>,
        membership: Arc<Membership>,
        disk: DiskGuard,
    ) -> Self {
        Self {
            me: node_id_of(&name),
            name,
            addr,
            inkling,
            partitions,
            membership,
            caught_up: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            disk,
            peers_low_on_disk: Mutex::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This node's raft id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The address peers reach this node on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// This node's raft of the group, member or not: peers' raft messages go to it.
    pub fn raft(&self, partition: PartitionId) -> Option<&Raft> {
        self.partitions.get(&partition)
    }

    /// Every group's raft on this node, member or not.
    pub(crate) fn rafts(&self) -> impl Iterator<Item = (PartitionId, &Raft)> {
        self.partitions.iter().map(|(group, raft)| (*group, raft))
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

    /// This node's raft of the group, if it leads the group now.
    pub(crate) fn leading(&self, group: PartitionId) -> Option<Raft> {
        let raft = self.member_raft(group)?;
        let leads = raft.metrics().borrow().current_leader == Some(self.me);
        leads.then(|| raft.clone())
    }

    /// The HTTP address of the node gossip says leads the partition, if any.
    pub(crate) async fn leader_hint(&self, partition: PartitionId) -> Option<String> {
        self.membership.leader_hint(partition).await
    }

    /// "Not leader", with what gossip knows of the leader.
    async fn not_leader(&self, partition: PartitionId) -> RouteError {
        let hint = self.leader_hint(partition).await;
        RouteError::NotLeader { partition, hint }
    }

    /// Serves a shopper request with this node's session, if this node leads the shopper's
    /// partition and has applied everything committed before its leadership.
    pub async fn serve(&self, call: UserCall) -> Result<UserAnswer, RouteError> {
        let partition = partition_of(call.user_id());
        self.ensure_caught_up(partition).await?;
        let served = match call {
            UserCall::Search(request) => self
                .inkling
                .search(*request)
                .await
                .map(|list| UserAnswer::Ranked(Box::new(list))),
            UserCall::Recommend(request) => self
                .inkling
                .recommend(*request)
                .await
                .map(|list| UserAnswer::Ranked(Box::new(list))),
            UserCall::Profile(user_id) => self
                .inkling
                .profile(user_id)
                .await
                .map(|profile| UserAnswer::Profile(Box::new(profile))),
            UserCall::Export(user_id) => self
                .user_records(&user_id)
                .await
                .map(|records| UserAnswer::Export(Box::new(records))),
        };
        served.map_err(RouteError::Failed)
    }

    /// A new leader may not have applied every committed entry yet; sessions it starts must
    /// load complete profiles, so the first request of each term waits for a linearizable
    /// read point.
    async fn ensure_caught_up(&self, partition: PartitionId) -> Result<(), RouteError> {
        let Some(raft) = self.member_raft(partition) else {
            return Err(self.not_leader(partition).await);
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

    /// Proposes on this node only; a node that does not lead the partition answers
    /// "not leader" with what it knows of the leader.
    pub async fn propose(
        &self,
        partition: PartitionId,
        command: Command,
    ) -> Result<Applied, RouteError> {
        let Some(raft) = self.member_raft(partition) else {
            return Err(self.not_leader(partition).await);
        };
        self.propose_to(raft, partition, command).await
    }

    /// Sets `inkling_disk_free_bytes`, for a scrape of `/metrics`.
    pub(crate) fn publish_free_disk(&self) {
        self.disk.publish_free_space();
    }

    /// Proposes a command to this node's raft of the partition. New data (events,
    /// products) is refused while this node's disk, or that of another replica of the
    /// group, is nearly full; erasures and deletions, which free space and must always be
    /// possible, are not.
    pub(crate) async fn propose_to(
        &self,
        raft: &Raft,
        partition: PartitionId,
        command: Command,
    ) -> Result<Applied, RouteError> {
        if command.adds_data() {
            self.check_disks(raft, partition)?;
        }
        propose_to(raft, partition, command).await
    }

    fn check_disks(&self, raft: &Raft, partition: PartitionId) -> Result<(), RouteError> {
        if let Err(low) = self.disk.check() {
            let error = ActorError::InsufficientStorage(low.to_string());
            return Err(RouteError::Failed(error));
        }
        let Some(peer) = self.replica_low_on_disk(raft) else {
            return Ok(());
        };
        let error = ActorError::InsufficientStorage(format!(
            "node {peer}, a replica of partition {partition}, has less free disk than it \
             keeps free (its --min-free-disk-mb); the partition takes no new data until \
             space is freed there"
        ));
        Err(RouteError::Failed(error))
    }

    /// A replica of the group (voter or learner) other than this node whose disk is low.
    fn replica_low_on_disk(&self, raft: &Raft) -> Option<String> {
        let low = self.peers_low_on_disk.lock();
        if low.is_empty() {
            return None;
        }
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let replicas = metrics.membership_config.membership();
        low.iter()
            .find(|(id, _)| *id != self.me && replicas.get_node(id).is_some())
            .map(|(_, name)| name.clone())
    }

    /// Every [`DISK_WATCH_INTERVAL`], tells peers whether this node's disk is low and learns
    /// which of theirs are; ends when the node stops.
    pub(crate) async fn watch_disks(replicas: Weak<Self>) {
        let mut ticks = tokio::time::interval(DISK_WATCH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(replicas) = replicas.upgrade() else {
                return;
            };
            if replicas.is_stopping() {
                return;
            }
            let low = replicas.disk.check().is_err();
            replicas.membership.set_disk_low(low).await;
            let peers = replicas.membership.members_low_on_disk().await;
            *replicas.peers_low_on_disk.lock() = peers
                .into_iter()
                .map(|name| (node_id_of(&name), name))
                .collect();
        }
    }

    /// Whether the node is stopping: its raft groups are shut down or about to be.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Stops every raft group of this node; the actors are the node's to stop.
    pub(crate) async fn stop_rafts(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for (group, raft) in &self.partitions {
            match tokio::time::timeout(RAFT_STOP_TIMEOUT, raft.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(group, %error, "raft group did not stop cleanly"),
                // Its log is synced before anything is acknowledged: leaving it is safe, and
                // a node that waited here forever would never exit.
                Err(_) => tracing::warn!(
                    group,
                    "raft group did not stop within {RAFT_STOP_TIMEOUT:?}; leaving it"
                ),
            }
        }
    }

    /// Starts a node-level actor (the router, the mesh) under this node's supervisor.
    pub(crate) async fn supervise<A: ractor::Actor + Clone>(
        &self,
        spec: ChildSpec<A>,
    ) -> Result<ActorSlot<A::Msg>, ActorError> {
        self.inkling.supervise(spec).await
    }

    /// What this node's own replica stores for the user, without routing.
    pub(crate) fn stored_profile(&self, user_id: &str) -> Result<Option<Profile>, ActorError> {
        self.inkling.profile_writer().stored(user_id)
    }

    /// How long a catalog write of `products` may take on this node's actors.
    pub(crate) fn catalog_write_timeout(&self, products: usize) -> Duration {
        self.inkling.catalog_write_timeout(products)
    }

    /// Users with a live session on this node.
    pub(crate) async fn active_users(&self) -> Result<Vec<String>, ActorError> {
        self.inkling.active_users().await
    }

    /// This node's model pool, if it runs an encoder.
    pub(crate) async fn model_pool_stats(&self) -> Option<Result<PoolStats, ActorError>> {
        self.inkling.model_pool_stats().await
    }

    /// How many products this node's catalog replica holds.
    pub(crate) async fn catalog_size(&self) -> Result<usize, ActorError> {
        self.inkling.catalog_size().await
    }

    /// How many sessions are live on this node.
    pub(crate) async fn active_sessions(&self) -> Result<u64, ActorError> {
        self.inkling.active_sessions().await
    }

    /// The half-life of profile affinities, in milliseconds.
    pub(crate) fn profile_half_life_ms(&self) -> u64 {
        self.inkling.profile_half_life_ms()
    }

    /// This node's actors, for the node to stop once the raft groups have.
    pub(crate) fn actors(&self) -> &Arc<Inkling> {
        &self.inkling
    }
}

/// Proposes a command to this node's raft of the partition.
async fn propose_to(
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
