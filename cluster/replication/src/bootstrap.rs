//! Starting a node's place in the cluster: gossip membership, the actor mesh, this node's
//! replica of every raft group (bootstrapping the groups it is the first choice for), the
//! router, rebalancing and the leadership watchers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inkling_actors::Inkling;
use inkling_storage::KvEngine;
use openraft::{BasicNode, ServerState, SnapshotPolicy};

use crate::log_store::LogStore;
use crate::membership::{Membership, MembershipConfig};
use crate::mesh::{Mesh, MeshConfig};
use crate::network::RaftNetworkFor;
use crate::partition::{CATALOG_GROUP, PartitionId, REPLICAS, partition_of, placement};
use crate::peer_http::PeerHttp;
use crate::raft_types::{NodeId, Raft, node_id_of};
use crate::replicas::LocalReplicas;
use crate::routing::Cluster;
use crate::state_machine::{GroupKind, StateMachine};

/// A member of the cluster as named at its first start.
#[derive(Debug, Clone)]
pub struct InitialMember {
    pub name: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_name: String,
    /// The address peers reach this node's peer plane on: raft and internal HTTP (TCP) and
    /// gossip (UDP). Raft and gossip know the node by it.
    pub addr: SocketAddr,
    /// The address the node's peer listener is bound to; gossip binds it too. Differs from
    /// `addr` only behind a proxy or NAT.
    pub listen: SocketAddr,
    /// Where clients reach this node's public API; shown in status, never used by peers.
    pub public_addr: SocketAddr,
    /// The secret every member holds: peer requests and gossip carry proofs of it, and the
    /// actor mesh's cookie is derived from it.
    pub secret: inkling_auth::ClusterSecret,
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
    /// Log entries after which a raft group snapshots its state and purges its log.
    pub snapshot_every: u64,
    /// How many nodes' indexes hold each shard (at most the nodes with the index role).
    pub index_replicas: usize,
    pub mesh: MeshConfig,
    /// Refuses new data while the disk holding the data folder is nearly full.
    pub disk: inkling_storage::DiskGuard,
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
                public_addr: config.public_addr,
                gossip_key: config.secret.derive(crate::membership::GOSSIP_KEY_LABEL),
            })
            .await?,
        );
        let founders = config
            .initial_members
            .iter()
            .map(|member| member.name.clone());
        membership.open_admissions(founders, engine.clone()).await?;
        let mesh = Mesh::start(
            config.mesh.clone(),
            &config.node_name,
            membership.clone(),
            &inkling,
        )
        .await?;
        let http = PeerHttp::new(
            &config.secret,
            &config.node_name,
            config.source_ip,
            config.mesh.tls.as_ref(),
        )?;
        let me = node_id_of(&config.node_name);
        // Raft gets a connection pool of its own: a heartbeat never waits for a connection
        // that a large forwarded answer holds.
        let partitions = start_partitions(
            &config,
            me,
            &inkling,
            &engine,
            &PeerHttp::new(
                &config.secret,
                &config.node_name,
                config.source_ip,
                config.mesh.tls.as_ref(),
            )?,
        )
        .await?;
        let initial_ids: Vec<NodeId> = config
            .initial_members
            .iter()
            .map(|member| node_id_of(&member.name))
            .collect();
        let initial_catalog_loader =
            placement(CATALOG_GROUP, &initial_ids, REPLICAS).first() == Some(&me);
        let replicas = Arc::new(LocalReplicas::new(
            config.node_name.clone(),
            config.addr.to_string(),
            inkling.clone(),
            partitions,
            membership.clone(),
            config.disk.clone(),
        ));
        let cluster = Arc::new(Cluster::new(
            replicas.clone(),
            membership.clone(),
            mesh,
            http,
            config.request_timeout,
            initial_catalog_loader,
            config.index_replicas,
        ));
        crate::mesh::start_router(&replicas).await?;
        tokio::spawn(cluster.clone().rebalance_forever());
        tokio::spawn(LocalReplicas::watch_disks(Arc::downgrade(&replicas)));
        for (partition, raft) in replicas.rafts() {
            tokio::spawn(watch_leadership(
                partition,
                raft.clone(),
                membership.clone(),
                inkling.clone(),
            ));
        }
        Ok(cluster)
    }
}

/// The most snapshot bytes one install-snapshot request carries: a JSON array of bytes
/// takes up to four characters a byte, so 8 MiB stays well inside the peer plane's body
/// limit ([`crate::peer_api::PEER_MAX_BODY_BYTES`]).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 8 << 20;

/// The most log entries one append request carries. openraft counts entries, not bytes, so
/// the peer plane's body limit must hold this many entries of the largest kind (one API
/// batch, `inkling_api::limits::MAX_BODY_BYTES` of JSON). Fewer entries per request make a
/// catching-up replica slower: at 8, two late drains of a soak timed out while a leader
/// spent its CPU building appends (docs/chaos.md); 64 keeps catch-up within a few times of
/// openraft's default (300).
pub const ENTRIES_PER_APPEND: u64 = 64;

/// Log entries after which a group snapshots, unless configured. The log kept between
/// snapshots is what the data folder's size scales with: sled cannot reuse a log segment
/// while any entry in it is live, so every segment written while an entry waits for its
/// purge stays on disk. Under 30 minutes of steady events the folder reached 1,913 MiB at
/// 10,000 and 635 MiB at 2,000 (docs/benchmarks.md, "Disk under steady events"); a
/// follower more than a tenth of this behind catches up from a snapshot.
pub const SNAPSHOT_EVERY: u64 = 2_000;

fn raft_config(snapshot_every: u64) -> anyhow::Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: "inkling-users".to_string(),
        // A follower grants votes only once the leader has been silent for the maximum
        // election timeout (openraft's leader lease), so that bounds failover: 0.5–0.8 s
        // gives a median of about 1.6 s (docs/benchmarks.md), and is still five
        // heartbeats of slack on a busy machine.
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 800,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every.max(1)),
        // A tenth of the interval stays in the log, so a lagging follower usually catches
        // up from the log rather than from a whole snapshot.
        max_in_snapshot_log_to_keep: snapshot_every / 10,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        max_payload_entries: ENTRIES_PER_APPEND,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

/// Opens this node's replica of every partition it is a voter of, and bootstraps the raft
/// groups this node is the first choice for.
async fn start_partitions(
    config: &ClusterConfig,
    me: NodeId,
    inkling: &Arc<Inkling>,
    engine: &Arc<dyn KvEngine>,
    http: &PeerHttp,
) -> anyhow::Result<BTreeMap<PartitionId, Raft>> {
    let raft_config = raft_config(config.snapshot_every)?;
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
