//! Who is in the cluster and who is alive: chitchat gossip with its phi-accrual failure
//! detector, over UDP on the same address and port as the node's HTTP listener.
//!
//! Each node publishes its HTTP address, roles and draining flag in its own chitchat state,
//! and, for every partition it leads, the raft term it leads it in: nodes that hold no
//! replica of a partition learn its leader from there. A restarted node gossips under a
//! new generation, so peers see a new incarnation rather than a resurrected one.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chitchat::transport::UdpTransport;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion,
    spawn_chitchat,
};
use serde::{Deserialize, Serialize};

use crate::partition::PartitionId;

/// Gossip every 200 ms, and call a node dead when it has been silent for about 8 mean
/// intervals (phi 8): under 3 s on a loaded two-core machine, yet above the pauses a busy
/// debug build shows. Chitchat's defaults (5 s initial interval) take far longer.
const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
const PHI_THRESHOLD: f64 = 8.0;

const KEY_HTTP: &str = "http_addr";
const KEY_ROLES: &str = "roles";
const KEY_DRAINING: &str = "draining";
const KEY_ACTORS: &str = "actor_addr";

fn leader_key(partition: PartitionId) -> String {
    format!("leads.{partition}")
}

/// A live member as the cluster sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub http_addr: String,
    pub roles: String,
    pub draining: bool,
    pub generation: u64,
    /// Where its ractor_cluster node server listens; absent on a cluster of one.
    #[serde(default)]
    pub actor_addr: Option<String>,
}

pub struct Membership {
    handle: ChitchatHandle,
}

pub struct MembershipConfig {
    pub node_name: String,
    /// Both the gossip address (UDP) and the HTTP address peers use (TCP).
    pub addr: SocketAddr,
    /// Where gossip binds: `addr` unless a proxy or NAT stands between the node and its
    /// peers.
    pub listen: SocketAddr,
    /// Gossip addresses of nodes to join through.
    pub seeds: Vec<String>,
    pub roles: String,
    pub cluster_id: String,
    /// Where this node's ractor_cluster node server listens, when peers may connect to it.
    pub actor_addr: Option<SocketAddr>,
}

impl Membership {
    pub async fn start(config: MembershipConfig) -> anyhow::Result<Self> {
        // A fresh generation per start: the clock is good enough to order incarnations.
        let generation = inkling_domain::now_ms();
        let chitchat_id = ChitchatId::new(config.node_name.clone(), generation, config.addr);
        let failure_detector_config = FailureDetectorConfig {
            phi_threshold: PHI_THRESHOLD,
            initial_interval: GOSSIP_INTERVAL,
            // A dead node's state is kept long enough for `inkling status` to show it.
            dead_node_grace_period: Duration::from_secs(3600),
            ..FailureDetectorConfig::default()
        };
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: config.cluster_id,
            gossip_interval: GOSSIP_INTERVAL,
            listen_addr: config.listen,
            seed_nodes: config.seeds,
            failure_detector_config,
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            // Every node runs the same build, so the compressed digest format is safe.
            protocol_version: ProtocolVersion::V1,
        };
        let mut initial = vec![
            (KEY_HTTP.to_string(), config.addr.to_string()),
            (KEY_ROLES.to_string(), config.roles),
            (KEY_DRAINING.to_string(), "false".to_string()),
        ];
        if let Some(actor_addr) = config.actor_addr {
            initial.push((KEY_ACTORS.to_string(), actor_addr.to_string()));
        }
        let handle = spawn_chitchat(chitchat_config, initial, &UdpTransport)
            .await
            .with_context(|| format!("cannot start gossip on udp {}", config.listen))?;
        Ok(Self { handle })
    }

    /// What `read` makes of each live member's state (this node included), skipping those
    /// it answers `None` for.
    async fn read_live<T>(&self, read: impl Fn(&ChitchatId, &NodeState) -> Option<T>) -> Vec<T> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        chitchat
            .live_nodes()
            .filter_map(|id| read(id, chitchat.node_state(id)?))
            .collect()
    }

    /// Live members, this node included.
    pub async fn live_members(&self) -> Vec<Member> {
        self.read_live(|id, state| {
            Some(Member {
                name: id.node_id.to_string(),
                http_addr: state.get(KEY_HTTP)?.to_string(),
                roles: state.get(KEY_ROLES).unwrap_or_default().to_string(),
                draining: state.get(KEY_DRAINING) == Some("true"),
                generation: id.generation_id,
                actor_addr: state.get(KEY_ACTORS).map(str::to_string),
            })
        })
        .await
    }

    /// Names of members the failure detector holds dead. A restarted node's earlier
    /// incarnation stays dead in gossip under the same name; it is not listed while the
    /// new one lives.
    pub async fn dead_members(&self) -> Vec<String> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        let live: HashSet<String> = chitchat
            .live_nodes()
            .map(|id| id.node_id.to_string())
            .collect();
        let mut dead: Vec<String> = chitchat
            .dead_nodes()
            .map(|id| id.node_id.to_string())
            .filter(|name| !live.contains(name))
            .collect();
        dead.sort();
        dead.dedup();
        dead
    }

    /// The HTTP address of the live member that claims leadership of `partition` in the
    /// highest term.
    pub async fn leader_hint(&self, partition: PartitionId) -> Option<String> {
        let key = leader_key(partition);
        let claims = self
            .read_live(|_, state| {
                let term: u64 = state.get(&key)?.parse().ok()?;
                Some((term, state.get(KEY_HTTP)?.to_string()))
            })
            .await;
        claims.into_iter().max().map(|(_, addr)| addr)
    }

    /// Publishes (or withdraws) this node's leadership of a partition.
    pub async fn publish_leadership(&self, partition: PartitionId, term: Option<u64>) {
        let key = leader_key(partition);
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        let state = chitchat.self_node_state();
        match term {
            Some(term) => state.set(key, term),
            None if state.get(&key).is_some() => state.delete(&key),
            None => {}
        }
    }

    pub async fn set_draining(&self, draining: bool) {
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        chitchat.self_node_state().set(KEY_DRAINING, draining);
    }

    /// Stops gossiping; peers soon hold this node dead.
    pub async fn leave(&self) {
        if let Err(error) = self.handle.initiate_shutdown() {
            tracing::warn!(%error, "gossip did not stop cleanly");
        }
    }
}
