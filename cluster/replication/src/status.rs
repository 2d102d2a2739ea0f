//! What a node reports about the cluster: [`ClusterStatus`] (members, the mesh, model pools,
//! shard replicas and every raft group this node holds, as `/internal/status` and
//! `inkling status` show them), a peer's status over HTTP, and the shard-replica gauges a
//! scrape of `/metrics` reads.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use inkling_actors::model_pool::PoolStats;
use serde::{Deserialize, Serialize};

use crate::membership::{Member, Membership};
use crate::mesh::Mesh;
use crate::partition::{CATALOG_GROUP, PartitionId, partition_of};
use crate::raft_types::{NodeId, Raft};
use crate::replicas::LocalReplicas;

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
    /// Live members that gossip with the cluster secret but are not admitted: they hold no
    /// replica until an operator admits them (`inkling cluster admit NAME`).
    #[serde(default)]
    pub waiting_for_admission: Vec<String>,
    /// While this node drains: what its exit still waits for (groups it leads, leaders
    /// that still count it as a replica, peers that did not answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drain_waiting_for: Vec<String>,
    /// The index shards this node holds and serves reads of.
    #[serde(default)]
    pub index_shards_held: Vec<usize>,
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

/// Members, partitions and their leaders, as this node sees them.
pub(crate) async fn gather(
    replicas: &LocalReplicas,
    membership: &Membership,
    mesh: &Mesh,
) -> ClusterStatus {
    let members = membership.live_members().await;
    let dead = membership.dead_members().await;
    let mut sessions: HashMap<PartitionId, usize> = HashMap::new();
    for user in replicas.active_users().await.unwrap_or_default() {
        *sessions.entry(partition_of(&user)).or_default() += 1;
    }
    let partitions = replicas
        .rafts()
        .filter(|(group, _)| replicas.member_raft(*group).is_some())
        .map(|(partition, raft)| {
            let active = sessions.get(&partition).copied().unwrap_or(0);
            partition_status(partition, raft, active)
        })
        .collect();
    let model_pools = group_sizes("inkling.models.");
    let shard_replicas = group_sizes("inkling.index.");
    let local_model_pool = match replicas.model_pool_stats().await {
        Some(Ok(stats)) => Some(stats),
        _ => None,
    };
    ClusterStatus {
        node: replicas.name().to_string(),
        members,
        dead,
        mesh_peers: mesh.peers().await,
        model_pools,
        local_model_pool,
        mailbox_depths: inkling_ops::metrics::mailbox_depths(),
        shard_replicas,
        partitions,
        waiting_for_admission: Vec::new(),
        drain_waiting_for: Vec::new(),
        index_shards_held: Vec::new(),
    }
}

/// Where a node's peer plane serves its status.
pub const STATUS_PATH: &str = "/peer/status";

/// A peer's view of the cluster, if it answers within `budget`.
pub(crate) async fn peer_status(
    http: &crate::peer_http::PeerHttp,
    addr: &str,
    budget: Duration,
) -> Option<ClusterStatus> {
    let response = http.get(addr, STATUS_PATH, budget).await.ok()?;
    response.json().await.ok()
}

/// Sets the shard-replica gauges from the process groups.
pub(crate) fn publish_replica_gauges() {
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

/// How many actors, here and on connected nodes, are in each process group whose name
/// starts with `prefix`.
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
