//! Who is in the cluster and who is alive: chitchat gossip with its phi-accrual failure
//! detector, over UDP on the same address and port as the node's peer listener. Every
//! datagram is signed with a key derived from the cluster secret (`gossip_auth`), so only
//! secret holders are heard.
//!
//! Each node publishes its HTTP address, roles and draining flag in its own chitchat state,
//! and, for every partition it leads, the raft term it leads it in: nodes that hold no
//! replica of a partition learn its leader from there. A restarted node gossips under a
//! new generation, so peers see a new incarnation rather than a resurrected one.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion,
    spawn_chitchat,
};
use inkling_storage::{Keyspace, KvEngine};
use serde::{Deserialize, Serialize};

use crate::gossip_auth::{GossipCounters, SignedUdpTransport};
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
const KEY_PUBLIC: &str = "public_addr";
/// "true" while the member's disk is below the free space it keeps.
const KEY_DISK_LOW: &str = "disk_low";
/// `admitted.NAME`: this member vouches that an operator admitted NAME.
const KEY_ADMITTED_PREFIX: &str = "admitted.";

/// What the gossip key is derived from the cluster secret with.
pub const GOSSIP_KEY_LABEL: &str = "inkling gossip v1";

/// The first key after every key that begins with `prefix` (whose last byte is below 0xff).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

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
    /// Where clients reach its public API.
    #[serde(default)]
    pub public_addr: Option<String>,
}

pub struct Membership {
    handle: ChitchatHandle,
    gossip_counters: Arc<GossipCounters>,
    admissions: OnceLock<AdmissionBook>,
}

/// Who this node admits on its own authority: the founders its config names, and the
/// nodes its operator admitted, kept in the storage engine so they survive a restart.
struct AdmissionBook {
    founders: BTreeSet<String>,
    store: Arc<dyn KvEngine>,
}

/// Where an operator's admissions are kept: `admitted/NAME` in the replication keyspace,
/// whose other keys begin with a two-byte partition id (0x0000 to 0x0010), never with `ad`.
const ADMITTED_RECORD_PREFIX: &[u8] = b"admitted/";

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
    /// Where clients reach this node's public API.
    pub public_addr: SocketAddr,
    /// Derived from the cluster secret: every datagram is signed and checked with it.
    pub gossip_key: inkling_auth::DerivedKey,
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
            (KEY_PUBLIC.to_string(), config.public_addr.to_string()),
        ];
        if let Some(actor_addr) = config.actor_addr {
            initial.push((KEY_ACTORS.to_string(), actor_addr.to_string()));
        }
        let transport = SignedUdpTransport::new(config.gossip_key);
        let handle = spawn_chitchat(chitchat_config, initial, &transport)
            .await
            .with_context(|| format!("cannot start gossip on udp {}", config.listen))?;
        Ok(Self {
            handle,
            gossip_counters: transport.counters(),
            admissions: OnceLock::new(),
        })
    }

    /// Starts admitting: `founders` (this node's configured initial members) are admitted,
    /// and so is every node this node's operator admitted before, which it vouches for
    /// again in gossip. Called once, right after [`Membership::start`].
    pub async fn open_admissions(
        &self,
        founders: impl IntoIterator<Item = String>,
        store: Arc<dyn KvEngine>,
    ) -> anyhow::Result<()> {
        let records = store
            .scan_range(
                Keyspace::ReplicationState,
                ADMITTED_RECORD_PREFIX,
                &prefix_end(ADMITTED_RECORD_PREFIX),
            )
            .context("cannot read the admitted members")?;
        let book = AdmissionBook {
            founders: founders.into_iter().collect(),
            store,
        };
        anyhow::ensure!(
            self.admissions.set(book).is_ok(),
            "admissions are already open"
        );
        for (key, _) in records {
            let name = String::from_utf8_lossy(&key[ADMITTED_RECORD_PREFIX.len()..]).to_string();
            self.vouch_for(&name).await;
        }
        Ok(())
    }

    /// The founders this node's config names; none before [`Membership::open_admissions`].
    pub(crate) fn founders(&self) -> BTreeSet<String> {
        self.admissions
            .get()
            .map(|book| book.founders.clone())
            .unwrap_or_default()
    }

    /// Records durably that this node's operator admitted `name`, then vouches for it in
    /// gossip.
    pub(crate) async fn record_admission(&self, name: &str) -> anyhow::Result<()> {
        let book = self
            .admissions
            .get()
            .context("admissions are not open on this node")?;
        let mut key = ADMITTED_RECORD_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        let admitted_at = inkling_domain::now_ms().to_string();
        book.store
            .put(Keyspace::ReplicationState, &key, admitted_at.as_bytes())
            .and_then(|()| book.store.sync())
            .context("cannot record the admission")?;
        self.vouch_for(name).await;
        Ok(())
    }

    async fn vouch_for(&self, name: &str) {
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        chitchat
            .self_node_state()
            .set(format!("{KEY_ADMITTED_PREFIX}{name}"), "true");
    }

    /// Every live member's name with the names it vouches for.
    pub(crate) async fn vouches(&self) -> Vec<(String, Vec<String>)> {
        self.read_live(|id, state| {
            let vouched = state
                .iter_prefix(KEY_ADMITTED_PREFIX)
                .map(|(key, _)| key[KEY_ADMITTED_PREFIX.len()..].to_string())
                .collect();
            Some((id.node_id.to_string(), vouched))
        })
        .await
    }

    /// What gossip accepted and dropped: datagrams without a valid proof of the cluster
    /// secret never reach chitchat.
    pub fn gossip_counters(&self) -> &GossipCounters {
        &self.gossip_counters
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
                public_addr: state.get(KEY_PUBLIC).map(str::to_string),
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

    /// Tells peers whether this node's disk is below the free space it keeps, so leaders
    /// stop sending it new data before its log append fails.
    pub(crate) async fn set_disk_low(&self, low: bool) {
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        chitchat.self_node_state().set(KEY_DISK_LOW, low);
    }

    /// Names of the live members whose disk is below the free space they keep.
    pub(crate) async fn members_low_on_disk(&self) -> Vec<String> {
        self.read_live(|id, state| {
            (state.get(KEY_DISK_LOW) == Some("true")).then(|| id.node_id.to_string())
        })
        .await
    }

    /// Stops gossiping; peers soon hold this node dead.
    pub async fn leave(&self) {
        if let Err(error) = self.handle.initiate_shutdown() {
            tracing::warn!(%error, "gossip did not stop cleanly");
        }
    }
}

#[cfg(test)]
mod tests {
    use inkling_auth::ClusterSecret;
    use inkling_storage::SledEngine;
    use tokio::time::Instant;

    use super::*;
    use crate::gossip_auth::Rejection;

    const WAIT: Duration = Duration::from_secs(30);

    /// A loopback address with a port free now (gossip advertises it, so it cannot be 0).
    fn free_addr() -> SocketAddr {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
        socket.local_addr().expect("an address")
    }

    async fn start(name: &str, seeds: &[&Membership], secret: &ClusterSecret) -> Membership {
        let addr = free_addr();
        let mut seed_addrs = Vec::new();
        for seed in seeds {
            seed_addrs.push(seed.handle.chitchat_id().gossip_advertise_addr.to_string());
        }
        Membership::start(MembershipConfig {
            node_name: name.to_string(),
            addr,
            listen: addr,
            seeds: seed_addrs,
            roles: "sessions".to_string(),
            cluster_id: "inkling".to_string(),
            actor_addr: None,
            public_addr: addr,
            gossip_key: secret.derive(GOSSIP_KEY_LABEL),
        })
        .await
        .expect("gossip starts")
    }

    async fn live_names(membership: &Membership) -> Vec<String> {
        let mut names: Vec<String> = membership
            .live_members()
            .await
            .into_iter()
            .map(|member| member.name)
            .collect();
        names.sort();
        names
    }

    /// Polls `done` until it holds, failing the test at the deadline.
    async fn eventually<F: Future<Output = bool>>(what: &str, done: impl Fn() -> F) {
        let deadline = Instant::now() + WAIT;
        while !done().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn only_holders_of_the_cluster_secret_are_heard() {
        let secret = ClusterSecret::generate();
        let a = start("a", &[], &secret).await;
        let b = start("b", &[&a], &secret).await;
        let intruder = start("x", &[&a, &b], &ClusterSecret::generate()).await;
        eventually("a and b see each other", || async {
            live_names(&a).await == ["a", "b"] && live_names(&b).await == ["a", "b"]
        })
        .await;
        eventually("the intruder's datagrams were dropped", || async {
            a.gossip_counters().rejected_for(Rejection::BadTag) > 0
                && b.gossip_counters().rejected_for(Rejection::BadTag) > 0
        })
        .await;
        assert_eq!(live_names(&a).await, ["a", "b"]);
        assert_eq!(live_names(&b).await, ["a", "b"]);
        assert_eq!(live_names(&intruder).await, ["x"]);
        for membership in [a, b, intruder] {
            membership.leave().await;
        }
    }

    #[tokio::test]
    async fn an_operators_admissions_are_kept_and_vouched_for_again() {
        let secret = ClusterSecret::generate();
        let folder = tempfile::tempdir().expect("a folder");
        let store: Arc<dyn KvEngine> = Arc::new(SledEngine::open(folder.path()).expect("a store"));
        let first = start("a", &[], &secret).await;
        assert!(first.record_admission("j").await.is_err(), "not open yet");
        first
            .open_admissions(["a".to_string()], store.clone())
            .await
            .expect("opened");
        first.record_admission("j").await.expect("recorded");
        first.record_admission("j").await.expect("recorded twice");
        assert_eq!(first.founders(), BTreeSet::from(["a".to_string()]));
        assert_eq!(
            first.vouches().await,
            [("a".to_string(), vec!["j".to_string()])]
        );
        first.leave().await;

        let restarted = start("a", &[], &secret).await;
        assert_eq!(restarted.vouches().await, [("a".to_string(), vec![])]);
        restarted
            .open_admissions(["a".to_string()], store)
            .await
            .expect("opened");
        assert_eq!(
            restarted.vouches().await,
            [("a".to_string(), vec!["j".to_string()])]
        );
        restarted.leave().await;
    }
}
