//! The actor mesh: this node's ractor_cluster node server, a connection to every live member
//! that gossip reports, and the router through which other nodes reach this node's sessions
//! and partitions.
//!
//! ractor_cluster authenticates peers with a shared cookie (and TLS when configured) and
//! keeps process groups in step across nodes, but it has no failure detector and never
//! reconnects. So chitchat decides who is alive: the connection manager dials live members
//! it has no session with, backing off after failures, and closes the session of a member
//! gossip holds dead, because a frozen peer keeps its TCP connection open and would
//! otherwise be waited on until every request's deadline.
//!
//! Only node-level actors are remotable (ractor_cluster mirrors each one on every peer): the
//! router here, in a process group named after its node's address, the model pools, in
//! groups per model and device, and the index shards, in groups per shard. Raft does not
//! use the mesh: the mesh has one stream per pair
//! of nodes, and a heartbeat must never queue behind a large answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inkling_actors::Inkling;
use inkling_actors::node_supervisor::ChildSpec;
use inkling_actors::slot::ActorSlot;
use inkling_ops::trace::TraceContext;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent, call_t};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{
    IncomingEncryptionMode, NodeServer, NodeServerMessage, RactorClusterMessage, RactorMessage,
};
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::Instrument;

use crate::membership::Membership;
use crate::partition::PartitionId;
use crate::raft_types::{Applied, Command};
use crate::replicas::LocalReplicas;
use crate::request::{RouteError, UserAnswer, UserCall};
use crate::tls::MeshTls;

/// How often the connection manager compares sessions with gossip.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);
/// Backoff between attempts to dial a member, doubling from the first to the last.
const FIRST_REDIAL: Duration = Duration::from_millis(500);
const MAX_REDIAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Where this node's server listens; port 0 on a cluster of one, which no peer dials.
    pub addr: SocketAddr,
    /// Where peers dial it (published in gossip): `addr` unless a proxy or NAT is between.
    pub advertise: SocketAddr,
    /// The IP this node's dials leave from, when set, so a proxy in front of the peer knows
    /// which node is calling.
    pub source_ip: Option<std::net::IpAddr>,
    /// Shared by every node of the cluster; a peer with another cookie is refused.
    pub cookie: String,
    pub tls: Option<MeshTls>,
}

/// A request from another node, answered by this node's raft groups and sessions.
#[derive(RactorClusterMessage)]
pub enum RouterMsg {
    /// A shopper request for a partition this node should lead.
    #[rpc]
    User(
        UserCall,
        TraceContext,
        RpcReplyPort<Result<UserAnswer, RouteError>>,
    ),
    /// A command for a partition this node should lead.
    #[rpc]
    Propose(
        PartitionId,
        Command,
        TraceContext,
        RpcReplyPort<Result<Applied, RouteError>>,
    ),
}

/// The process group of the router of the node whose HTTP address is `http_addr`: raft
/// names leaders by that address, so it is what callers know.
pub fn router_group(http_addr: &str) -> String {
    format!("inkling.router.{http_addr}")
}

/// This node's entry point for the mesh: it hands each request to the local replicas, in a
/// task of its own so a slow one never holds up the next.
#[derive(Clone)]
pub struct Router {
    group: String,
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = Arc<LocalReplicas>;
    type Arguments = Arc<LocalReplicas>;

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        replicas: Arc<LocalReplicas>,
    ) -> Result<Arc<LocalReplicas>, ActorProcessingErr> {
        ractor::pg::join(self.group.clone(), vec![myself.get_cell()]);
        Ok(replicas)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RouterMsg>,
        message: RouterMsg,
        replicas: &mut Arc<LocalReplicas>,
    ) -> Result<(), ActorProcessingErr> {
        // A stopping node's raft groups are shut down: the caller should try elsewhere.
        let replicas = (!replicas.is_stopping()).then(|| replicas.clone());
        match message {
            RouterMsg::User(call, trace, reply) => {
                let serve = async move {
                    let answer = match replicas {
                        Some(replicas) => replicas.serve(call).await,
                        None => Err(stopping()),
                    };
                    let _ = reply.send(answer);
                };
                tokio::spawn(serve.instrument(trace.span("router.user")));
            }
            RouterMsg::Propose(partition, command, trace, reply) => {
                let propose = async move {
                    let answer = match replicas {
                        Some(replicas) => replicas.propose(partition, command).await,
                        None => Err(stopping()),
                    };
                    let _ = reply.send(answer);
                };
                tokio::spawn(propose.instrument(trace.span("router.propose")));
            }
        }
        Ok(())
    }
}

fn stopping() -> RouteError {
    RouteError::Unreachable("the node is stopping".to_string())
}

/// Starts the router of this node's replicas under the node's supervisor, which restarts it
/// (and so rejoins its group) if it ever fails.
pub async fn start_router(
    replicas: &Arc<LocalReplicas>,
) -> Result<ActorSlot<RouterMsg>, inkling_actors::ActorError> {
    let arguments = replicas.clone();
    let spec = ChildSpec {
        kind: "router",
        slot: ActorSlot::empty("router"),
        handler: Router {
            group: router_group(replicas.addr()),
        },
        arguments: Arc::new(move || {
            let replicas = arguments.clone();
            Box::pin(async move { Ok(replicas) })
        }),
        after_restart: None,
    };
    replicas.supervise(spec).await
}

/// The router of the node at `http_addr`, wherever it runs, if the mesh reaches it.
pub fn router_at(http_addr: &str) -> Option<ActorRef<RouterMsg>> {
    ractor::pg::get_members(&router_group(http_addr))
        .into_iter()
        .next()
        .map(ActorRef::from)
}

/// Sends one request to the router of the node at `addr` over the actor mesh, waiting at
/// most `budget`.
pub(crate) async fn call_router<T>(
    addr: &str,
    message: impl FnOnce(RpcReplyPort<Result<T, RouteError>>) -> RouterMsg,
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

/// This node's end of the mesh: the connection manager, a child of the node supervisor.
pub struct Mesh {
    manager: ActorSlot<MeshMsg>,
}

impl Mesh {
    /// Starts the node server (under the connection manager) and the manager (under the
    /// node supervisor).
    pub async fn start(
        config: MeshConfig,
        node_name: &str,
        membership: Arc<Membership>,
        inkling: &Inkling,
    ) -> anyhow::Result<Self> {
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let manager = ConnectionManager {
            config: Arc::new(config),
            node_name: node_name.to_string(),
            membership,
            tls,
        };
        let spec = ChildSpec {
            kind: "mesh",
            slot: ActorSlot::empty("actor mesh"),
            handler: manager,
            arguments: Arc::new(|| Box::pin(async { Ok(()) })),
            after_restart: None,
        };
        let manager = inkling.supervise(spec).await?;
        Ok(Self { manager })
    }

    /// Names of the peers this node has an authenticated session with.
    pub async fn peers(&self) -> Vec<String> {
        let asked = self.manager.ask(MeshMsg::Peers, PEERS_TIMEOUT).await;
        asked.unwrap_or_default()
    }

    /// Closes every session and stops dialling; the node is leaving.
    pub fn leave(&self) {
        let _ = self.manager.cast(MeshMsg::Leave);
    }
}

const PEERS_TIMEOUT: Duration = Duration::from_secs(2);
/// A dial that takes longer (a frozen peer accepts TCP but never completes TLS) is given up.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(RactorMessage)]
pub enum MeshMsg {
    /// Compare the sessions with gossip: dial, close, back off.
    Reconcile,
    Peers(RpcReplyPort<Vec<String>>),
    Leave,
}

/// Keeps the node server connected to every live member. It supervises the node server:
/// if the server dies, the manager fails with it, and the node supervisor starts both
/// afresh.
#[derive(Clone)]
struct ConnectionManager {
    config: Arc<MeshConfig>,
    node_name: String,
    membership: Arc<Membership>,
    tls: Option<(TlsAcceptor, TlsConnector)>,
}

struct ManagerState {
    server: ActorRef<NodeServerMessage>,
    /// Under TLS, the node's own accept loop (see `mesh_accept`).
    acceptor: Option<tokio::task::JoinHandle<()>>,
    redials: HashMap<String, Redial>,
    leaving: bool,
}

impl Actor for ConnectionManager {
    type Msg = MeshMsg;
    type State = ManagerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<MeshMsg>,
        _: (),
    ) -> Result<ManagerState, ActorProcessingErr> {
        let addr = self.config.addr;
        let cannot_start = |error: &dyn std::fmt::Display| {
            format!(
                "cannot start the actor mesh on {addr} (choose another with --actor-addr): {error}"
            )
        };
        // Under TLS this node accepts connections itself (to see each client's
        // certificate), so the node server's own listener only takes a loopback port.
        let (port, listen_ip) = match &self.tls {
            Some(_) => (0, std::net::IpAddr::from([127, 0, 0, 1])),
            None => (addr.port(), addr.ip()),
        };
        let encryption = self
            .tls
            .as_ref()
            .map(|(acceptor, _)| IncomingEncryptionMode::Tls(acceptor.clone()));
        let server = NodeServer::new(
            port,
            self.config.cookie.clone(),
            self.node_name.clone(),
            addr.ip().to_string(),
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(listen_ip);
        let (server, _) = Actor::spawn_linked(None, server, (), myself.get_cell())
            .await
            .map_err(|error| cannot_start(&error))?;
        let acceptor = match &self.tls {
            None => None,
            Some((acceptor, _)) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|error| cannot_start(&error))?;
                let certificates = crate::mesh_accept::AcceptedCertificates::default();
                server.cast(NodeServerMessage::SubscribeToEvents {
                    id: "certificate names".to_string(),
                    subscription: Box::new(crate::mesh_accept::NameCheck(certificates.clone())),
                })?;
                Some(tokio::spawn(crate::mesh_accept::accept_forever(
                    listener,
                    acceptor.clone(),
                    server.clone(),
                    certificates,
                )))
            }
        };
        myself.send_message(MeshMsg::Reconcile)?;
        Ok(ManagerState {
            server,
            acceptor,
            redials: HashMap::new(),
            leaving: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<MeshMsg>,
        message: MeshMsg,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MeshMsg::Reconcile if state.leaving => {}
            MeshMsg::Reconcile => {
                self.reconcile(state).await;
                myself.send_after(RECONCILE_EVERY, || MeshMsg::Reconcile);
            }
            MeshMsg::Peers(reply) => {
                let mut names: Vec<String> =
                    sessions_by_name(&state.server).await.into_keys().collect();
                names.sort();
                let _ = reply.send(names);
            }
            MeshMsg::Leave => {
                state.leaving = true;
                state.stop_accepting();
                state.server.stop(Some("node leaving".to_string()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<MeshMsg>,
        event: SupervisionEvent,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        let server_ended = matches!(
            &event,
            SupervisionEvent::ActorFailed(cell, _) | SupervisionEvent::ActorTerminated(cell, _, _)
                if cell.get_id() == state.server.get_id()
        );
        if server_ended && !state.leaving {
            return Err("the actor mesh's node server stopped".into());
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<MeshMsg>,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_accepting();
        state.server.stop(None);
        Ok(())
    }
}

impl ManagerState {
    fn stop_accepting(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
        }
    }
}

impl ConnectionManager {
    /// Dials every live member that has no session with this node and closes the sessions
    /// of members gossip holds dead. Of each pair of nodes, the one with the greater name
    /// dials, so two nodes never race to open two sessions with each other.
    async fn reconcile(&self, state: &mut ManagerState) {
        let sessions = sessions_by_name(&state.server).await;
        inkling_ops::metrics::CLUSTER_MESH_SESSIONS.set(sessions.len() as i64);
        for dead in self.membership.dead_members().await {
            if let Some(session) = sessions.get(&dead) {
                tracing::info!(peer = dead, "closing the mesh session of a dead member");
                session.stop(Some("gossip holds the node dead".to_string()));
            }
        }
        let now = Instant::now();
        let members = self.membership.live_members().await;
        inkling_ops::metrics::CLUSTER_LIVE_MEMBERS.set(members.len() as i64);
        for member in members {
            let Some(addr) = member.actor_addr else {
                continue;
            };
            if member.name >= self.node_name || sessions.contains_key(&member.name) {
                state.redials.remove(&member.name);
                continue;
            }
            let redial = state.redials.entry(member.name.clone()).or_insert(Redial {
                not_before: now,
                backoff: FIRST_REDIAL,
            });
            if now < redial.not_before {
                continue;
            }
            let connector = self.tls.as_ref().map(|(_, connector)| connector);
            let dialled = tokio::time::timeout(
                DIAL_TIMEOUT,
                dial(
                    &state.server,
                    &addr,
                    &member.name,
                    connector,
                    self.config.source_ip,
                ),
            );
            match dialled.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(peer = member.name, %error, "cannot reach the peer's mesh")
                }
                Err(_) => tracing::debug!(peer = member.name, "dialling the peer's mesh timed out"),
            }
            // Whether the dial worked shows in the sessions; until then, wait before the next.
            redial.not_before = now + redial.backoff;
            redial.backoff = (redial.backoff * 2).min(MAX_REDIAL);
        }
    }
}

/// Every session whose peer has told its name, by node name.
async fn sessions_by_name(
    server: &ActorRef<NodeServerMessage>,
) -> HashMap<String, ActorRef<ractor_cluster::NodeSessionMessage>> {
    let Ok(sessions) = call_t!(server, NodeServerMessage::GetSessions, 1_000) else {
        return HashMap::new();
    };
    sessions
        .into_values()
        .filter_map(|session| {
            let name = session.peer_name?.name;
            // ractor_cluster names a node `name@host`.
            let node = name.split_once('@').map_or(name.as_str(), |(node, _)| node);
            Some((node.to_string(), session.actor))
        })
        .collect()
}

/// When a member may be dialled again, and how long the wait after a further failure is.
struct Redial {
    not_before: Instant,
    backoff: Duration,
}

/// Dials the mesh of the member named `peer` at `addr`. Over TLS the peer's certificate
/// must name it (a DNS name equal to the node's name): node-2's certificate cannot answer
/// for node-3.
async fn dial(
    server: &ActorRef<NodeServerMessage>,
    addr: &str,
    peer: &str,
    tls: Option<&TlsConnector>,
    source_ip: Option<std::net::IpAddr>,
) -> anyhow::Result<()> {
    let name = || {
        ServerName::try_from(peer.to_string())
            .with_context(|| format!("{peer:?} cannot be a certificate's DNS name"))
    };
    if let Some(source_ip) = source_ip {
        let tls = tls
            .map(|tls| Ok::<_, anyhow::Error>((tls, name()?)))
            .transpose()?;
        return dial_from(server, addr, tls, source_ip).await;
    }
    let Some(tls) = tls else {
        return Ok(ractor_cluster::client_connect(server, addr).await?);
    };
    let socket: SocketAddr = addr.parse()?;
    Ok(ractor_cluster::client_connect_enc(server, socket, tls.clone(), name()?).await?)
}

/// `dial` from a given local IP: what `ractor_cluster::client_connect(_enc)` do, on a socket
/// bound first, so a proxy in front of the peer can tell this node's connections apart.
async fn dial_from(
    server: &ActorRef<NodeServerMessage>,
    addr: &str,
    tls: Option<(&TlsConnector, ServerName<'static>)>,
    source_ip: std::net::IpAddr,
) -> anyhow::Result<()> {
    let peer: SocketAddr = addr.parse()?;
    let socket = match source_ip {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source_ip, 0))?;
    let stream = socket.connect(peer).await?;
    stream.set_nodelay(true)?;
    let (peer_addr, local_addr) = (stream.peer_addr()?, stream.local_addr()?);
    let stream = match tls {
        None => ractor_cluster::NetworkStream::Raw {
            peer_addr,
            local_addr,
            stream,
        },
        Some((tls, name)) => ractor_cluster::NetworkStream::TlsClient {
            peer_addr,
            local_addr,
            stream: tls.connect(name, stream).await?,
        },
    };
    server.cast(NodeServerMessage::ConnectionOpened {
        stream: Box::new(stream),
        is_server: false,
    })?;
    Ok(())
}

/// The acceptor and connector for mutual TLS: each side proves its certificate chains to
/// the cluster's authority, and a dialled node's certificate must name it.
fn load_tls(files: &MeshTls) -> anyhow::Result<(TlsAcceptor, TlsConnector)> {
    let tls = crate::tls::ClusterTls::load(files)?;
    Ok((tls.acceptor()?, tls.mesh_connector()?))
}
