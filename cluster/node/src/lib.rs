//! One node's life cycle: open storage, start the actors, load the initial catalog, serve
//! the public API and the peer plane on listeners of their own, and shut everything down
//! so the data folder can be reopened at once.
//!
//! `inkling-node` owns process-level wiring: data folders, listeners, signals and the bundled
//! [`demo`] catalog. It must never hold business logic (that is the actors') nor HTTP
//! handling (that is `inkling-gateway`'s); it only connects them.

pub mod demo;
mod server;

pub use inkling_auth::{ClusterSecret, KeyRing};
pub use inkling_gateway::GatewayConfig;
pub use inkling_replication::{InitialMember, MeshTls};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use inkling_actors::inkling::NodeStorage;
use inkling_actors::{ActorConfig, Inkling};
use inkling_domain::{Product, Taxonomy};
use inkling_replication::{Cluster, ClusterConfig, MeshConfig};
use inkling_storage::{CatalogStore, KvEngine, SledEngine};
use tokio::net::TcpListener;

/// How long a stopping node waits for its actors to let go of storage.
const STORAGE_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which catalog a fresh node starts with.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    /// The bundled demo catalog.
    Demo,
    /// Products as JSON lines from a file.
    File(PathBuf),
    /// Nothing: products arrive through the API.
    Empty,
}

#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub data_dir: PathBuf,
    /// Where the public API listens.
    pub listen: SocketAddr,
    pub catalog: CatalogSource,
    /// Categories and brands with their other names: the bundled one unless the shop gives
    /// its own ([`read_taxonomy`]).
    pub taxonomy: Taxonomy,
    pub actors: ActorConfig,
    pub cluster: ClusterOptions,
    /// The public API's keys and limits; `serves_api` is set from the roles.
    pub gateway: GatewayConfig,
    /// How long a client may take to send a request's head on either listener.
    pub header_read_timeout: Duration,
    /// Below this many free bytes on the disk holding `data_dir`, the node refuses new
    /// data (507) instead of failing halfway through a write; 0 never refuses.
    pub min_free_disk_bytes: u64,
}

/// The free space a node keeps by default: room for sled to finish what it has begun
/// (a segment, a snapshot) and for an operator to log in and clean up.
pub const MIN_FREE_DISK_BYTES: u64 = 512 * 1024 * 1024;

/// Long enough for a slow mobile link, short enough that a client trickling bytes cannot
/// hold a connection for long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's place in a cluster. The default is a cluster of one.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Stable across restarts: the raft groups know the node by it.
    pub node_name: String,
    /// Gossip addresses to join through; the other initial members when empty. Seeds
    /// without initial members make the node join a running cluster.
    pub seeds: Vec<String>,
    /// Every node the partitions are first placed on, by name and address; just this node
    /// (at its listening address) when empty.
    pub initial_members: Vec<InitialMember>,
    pub roles: String,
    /// Where the peer plane (raft and status over HTTP, gossip over UDP) listens; the
    /// public listening IP and the port two after it by default.
    pub peer_listen: Option<SocketAddr>,
    /// Where the actor mesh listens; the listening IP and the next port by default.
    pub actor_addr: Option<SocketAddr>,
    /// Where peers reach this node's peer plane when that is not where it listens (a proxy
    /// or NAT in between); the peer listening address by default.
    pub advertise: Option<SocketAddr>,
    /// Where peers dial this node's actor mesh; the mesh's own address by default.
    pub advertise_actor: Option<SocketAddr>,
    /// The secret every node of the cluster shares; required once there are peers.
    pub secret: Option<ClusterSecret>,
    /// Mutual TLS on the actor mesh and the peer plane: certificates naming each node.
    pub tls: Option<MeshTls>,
    /// Log entries after which a raft group snapshots and purges its log.
    pub snapshot_every: u64,
    /// How many nodes' indexes hold each shard.
    pub index_replicas: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            node_name: "node-1".to_string(),
            seeds: Vec::new(),
            initial_members: Vec::new(),
            roles: "gateway,sessions,models,index".to_string(),
            peer_listen: None,
            actor_addr: None,
            advertise: None,
            advertise_actor: None,
            secret: None,
            tls: None,
            snapshot_every: inkling_replication::bootstrap::SNAPSHOT_EVERY,
            index_replicas: inkling_replication::partition::REPLICAS,
        }
    }
}

impl NodeOptions {
    pub fn new(data_dir: PathBuf, listen: SocketAddr, catalog: CatalogSource) -> Self {
        Self {
            data_dir,
            listen,
            catalog,
            taxonomy: bundled_taxonomy(),
            actors: ActorConfig::default(),
            cluster: ClusterOptions::default(),
            gateway: GatewayConfig::default(),
            header_read_timeout: HEADER_READ_TIMEOUT,
            min_free_disk_bytes: MIN_FREE_DISK_BYTES,
        }
    }

    /// Where the peer plane listens unless told: the port two after the public one (the
    /// mesh has the next), or any free port when the public one is.
    fn peer_listen(&self) -> SocketAddr {
        self.cluster.peer_listen.unwrap_or_else(|| {
            let port = match self.listen.port() {
                0 => 0,
                port => port.checked_add(2).unwrap_or(0),
            };
            SocketAddr::new(self.listen.ip(), port)
        })
    }

    /// A node that listens beyond loopback must have API keys and a cluster secret: without
    /// them anyone who can reach it could read and write every shopper's data.
    fn check_exposure(&self) -> Result<()> {
        let exposed: Vec<String> = [
            ("--listen", self.listen),
            ("--peer-listen", self.peer_listen()),
        ]
        .into_iter()
        .filter(|(_, addr)| !addr.ip().is_loopback())
        .map(|(flag, addr)| format!("{flag} {addr}"))
        .collect();
        if exposed.is_empty() {
            return Ok(());
        }
        let mut missing = Vec::new();
        if self.gateway.keys.is_empty() {
            missing.push("API keys (--api-keys or INKLING_API_KEYS)");
        }
        if self.cluster.secret.is_none() {
            missing.push("a cluster secret (INKLING_CLUSTER_SECRET or --cluster-secret-file)");
        }
        if missing.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "refusing to listen beyond loopback ({}) without {}: anyone who can reach the node could read and write every shopper's data. See docs/security.md",
            exposed.join(", "),
            missing.join(" and ")
        )
    }

    /// `bound` is the address the peer listener got; peers know the node by the advertised
    /// one. `public` is where the public API listens.
    fn cluster_config(&self, bound: SocketAddr, public: SocketAddr) -> Result<ClusterConfig> {
        let options = &self.cluster;
        let addr = options.advertise.unwrap_or(bound);
        // With seeds and no initial members the node joins a running cluster, whose leaders
        // move replicas onto it; with neither it is a cluster of one.
        let joining = options.initial_members.is_empty() && !options.seeds.is_empty();
        let initial_members = if joining {
            Vec::new()
        } else if options.initial_members.is_empty() {
            vec![InitialMember {
                name: options.node_name.clone(),
                addr,
            }]
        } else {
            options.initial_members.clone()
        };
        let seeds = if options.seeds.is_empty() {
            initial_members
                .iter()
                .filter(|member| member.name != options.node_name)
                .map(|member| member.addr.to_string())
                .collect()
        } else {
            options.seeds.clone()
        };
        let alone = seeds.is_empty();
        let secret = match &options.secret {
            Some(secret) => secret.clone(),
            // Nobody dials a cluster of one; a secret no one knows keeps it that way.
            None if alone => ClusterSecret::generate(),
            None => anyhow::bail!(
                "a cluster of several nodes needs a shared secret: set INKLING_CLUSTER_SECRET or pass --cluster-secret-file on every node (`inkling cluster secret` makes one)"
            ),
        };
        let mesh_addr = options
            .actor_addr
            .unwrap_or_else(|| default_actor_addr(self.listen, public));
        Ok(ClusterConfig {
            node_name: options.node_name.clone(),
            addr,
            listen: bound,
            public_addr: public,
            // Behind a proxy, outgoing peer traffic leaves from the listening IP, so the
            // proxy can tell which node sent it.
            source_ip: options.advertise.map(|_| bound.ip()),
            seeds,
            initial_members,
            roles: options.roles.clone(),
            request_timeout: self.actors.request_timeout,
            snapshot_every: options.snapshot_every,
            index_replicas: options.index_replicas,
            mesh: MeshConfig {
                addr: mesh_addr,
                advertise: options.advertise_actor.unwrap_or(mesh_addr),
                source_ip: options.advertise.map(|_| bound.ip()),
                cookie: mesh_cookie(&secret, options.tls.is_some()),
                tls: options.tls.clone(),
            },
            secret,
            disk: inkling_storage::DiskGuard::new(&self.data_dir, self.min_free_disk_bytes),
        })
    }
}

/// The listening IP and the port after the configured one. A node told to listen on any
/// free port gets any free port for the mesh too: the port after the one it got may well
/// be taken, and such a node is a cluster of one that nobody dials.
fn default_actor_addr(configured: SocketAddr, bound: SocketAddr) -> SocketAddr {
    let port = match configured.port() {
        0 => 0,
        port => port.checked_add(1).unwrap_or(0),
    };
    SocketAddr::new(bound.ip(), port)
}

/// What the actor mesh's cookie is derived from the cluster secret with.
const MESH_COOKIE_LABEL: &str = "inkling mesh cookie v1";

/// The actor mesh's cookie. ractor_cluster compares exactly one, so a cookie derived from
/// the signing secret splits the mesh while a secret rotation rolls (nodes signing with
/// the old secret and nodes signing with the new one refuse each other). Under mutual TLS
/// the cluster's CA and the certificate naming each node authenticate every session, so
/// the cookie carries no secret there and stays the same through a rotation.
fn mesh_cookie(secret: &ClusterSecret, mutual_tls: bool) -> String {
    if mutual_tls {
        return "inkling mesh under mutual TLS".to_string();
    }
    secret.derive(MESH_COOKIE_LABEL).to_hex()
}

/// A node whose actors run, whose storage is open and whose listener is bound, ready to
/// serve.
pub struct Node {
    pub cluster: Arc<Cluster>,
    listener: TcpListener,
    peer_listener: TcpListener,
    engine: Arc<dyn KvEngine>,
    gateway: GatewayConfig,
    peer_verifier: inkling_auth::PeerSigner,
    /// Mutual TLS on the peer plane, when the node has certificates.
    peer_tls: Option<tokio_rustls::TlsAcceptor>,
    header_read_timeout: Duration,
}

impl Node {
    /// Binds the listeners first: the cluster needs the addresses peers will reach.
    pub async fn start(options: &NodeOptions) -> Result<Self> {
        options.check_exposure()?;
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let peer_listen = options.peer_listen();
        let peer_listener = TcpListener::bind(peer_listen)
            .await
            .with_context(|| format!("cannot listen on {peer_listen} for peers"))?;
        let cluster_config =
            options.cluster_config(peer_listener.local_addr()?, listener.local_addr()?)?;
        let peer_verifier =
            inkling_auth::PeerSigner::new(&cluster_config.secret, &cluster_config.node_name);
        let peer_tls = match &options.cluster.tls {
            Some(files) => Some(inkling_replication::tls::ClusterTls::load(files)?.acceptor()?),
            None => None,
        };
        inkling_ops::metrics::register_all();
        if let Some(encoder) = &options.actors.encoder
            && !encoder.models_dir.is_dir()
        {
            anyhow::bail!(
                "model files not found in {}: run scripts/setup.sh, pass --models-dir, or --model none",
                encoder.models_dir.display()
            );
        }
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("cannot create data folder {}", options.data_dir.display()))?;
        let sled_dir = options.data_dir.join("sled");
        let engine: Arc<dyn KvEngine> = Arc::new(
            SledEngine::open(&sled_dir)
                .with_context(|| format!("cannot open sled database in {}", sled_dir.display()))?,
        );
        let storage = NodeStorage {
            engine: engine.clone(),
            index_dir: options.data_dir.join("index"),
            taxonomy: options.taxonomy.clone(),
        };
        let inkling = Arc::new(Inkling::start(options.actors.clone(), storage).await?);
        let cluster = Cluster::start(cluster_config, inkling, engine.clone()).await?;
        load_catalog(&cluster, &engine, &options.catalog).await?;
        let gateway = GatewayConfig {
            serves_api: options
                .cluster
                .roles
                .split(',')
                .any(|role| role == "gateway"),
            ..options.gateway.clone()
        };
        Ok(Self {
            cluster,
            listener,
            peer_listener,
            engine,
            gateway,
            peer_verifier,
            peer_tls,
            header_read_timeout: options.header_read_timeout,
        })
    }

    /// The address the node serves its public API on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The address the node serves its peer plane on.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.peer_listener.local_addr()?)
    }

    /// Serves both listeners until `shutdown` resolves, then stops the cluster and the
    /// actors.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Node {
            cluster,
            listener,
            peer_listener,
            engine,
            gateway,
            peer_verifier,
            peer_tls,
            header_read_timeout,
        } = self;
        let public = inkling_gateway::router(cluster.clone(), gateway);
        let peer = inkling_replication::peer_api::router(
            cluster.clone(),
            peer_verifier,
            peer_tls.is_some(),
        );
        // Both listeners close together, as the node's shutdown begins: nothing a stopping
        // node does waits for a peer to call it.
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        let stall_probe = inkling_ops::runtime::spawn_stall_probe();
        let peers = tokio::spawn(server::serve(
            peer_listener,
            peer,
            header_read_timeout,
            peer_tls,
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        ));
        server::serve(listener, public, header_read_timeout, None, async move {
            shutdown.await;
            let _ = stopping.send(true);
        })
        .await;
        stall_probe.abort();
        peers.await.context("the peer listener's task failed")?;
        stop(cluster, engine).await
    }
}

/// How long a node loading the initial catalog waits for the catalog group to elect a
/// leader: its peers may still be starting.
const CATALOG_LEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Products per proposal of the initial catalog. Every replica applies a proposal as one
/// index write with a deadline that grows with its size, and retries it whole when it
/// misses it; 10,000 at once (the API's batch limit) missed it on every retry on a busy
/// two-core machine, until the catalog group gave up (the 19,595-product Flipkart file).
const INITIAL_CATALOG_CHUNK: usize = 1_000;

/// Proposes the initial catalog to the catalog group, which writes it on every replica.
/// Only the group's first choice does it, and only while its own catalog is empty; a node
/// with products keeps them.
/// The taxonomy bundled with the demo catalog: what a node uses unless given its own.
pub fn bundled_taxonomy() -> Taxonomy {
    crate::demo::taxonomy()
}

/// A shop's taxonomy from a JSON file of the bundled one's shape (`aliases`: category →
/// other names; `brand_aliases`: brand → other names). The error names the file and what
/// is wrong: an unreadable file, bad JSON (with its line), an unknown key, a blank name.
pub fn read_taxonomy(path: &Path) -> Result<Taxonomy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the taxonomy file {}", path.display()))?;
    let taxonomy: Taxonomy = serde_json::from_str(&text)
        .with_context(|| format!("the taxonomy file {} is not valid", path.display()))?;
    taxonomy
        .validate()
        .map_err(|error| anyhow::anyhow!("the taxonomy file {}: {error}", path.display()))?;
    Ok(taxonomy)
}

async fn load_catalog(
    cluster: &Cluster,
    engine: &Arc<dyn KvEngine>,
    source: &CatalogSource,
) -> Result<()> {
    if !cluster.loads_initial_catalog() || !CatalogStore::new(engine.clone()).is_empty()? {
        return Ok(());
    }
    let products: Vec<Product> = match source {
        CatalogSource::Empty => return Ok(()),
        CatalogSource::Demo => crate::demo::catalog(),
        CatalogSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read catalog {}", path.display()))?;
            crate::demo::parse_products(&path.display().to_string(), &text)
                .map_err(anyhow::Error::msg)?
        }
    };
    let count = products.len();
    cluster
        .wait_for_leader(inkling_replication::CATALOG_GROUP, CATALOG_LEADER_TIMEOUT)
        .await?;
    // A first load embeds every product on a CPU for minutes: say how far it is.
    let mut loaded = 0;
    for chunk in products.chunks(INITIAL_CATALOG_CHUNK) {
        cluster.upsert_products(chunk.to_vec()).await?;
        loaded += chunk.len();
        tracing::info!("loading the initial catalog: {loaded} of {count} products indexed");
    }
    tracing::info!(count, "loaded initial catalog");
    Ok(())
}

/// Stops the raft groups, gossip and actors, and waits until every handle on storage is
/// released, so the data folder can be reopened (sled locks it to one owner) as soon as
/// this returns.
async fn stop(cluster: Arc<Cluster>, engine: Arc<dyn KvEngine>) -> Result<()> {
    // Each step is logged, so a node that does not exit shows where it stopped.
    tracing::info!("stopping: the raft groups, the mesh and gossip");
    cluster.shutdown().await;
    let inkling = cluster.actors_to_stop();
    drop(cluster);
    tracing::info!("stopping: the actors");
    inkling.shutdown().await;
    drop(inkling);
    tracing::info!("stopping: syncing storage");
    let deadline = std::time::Instant::now() + STORAGE_RELEASE_TIMEOUT;
    // Actors drop their state, and tasks they spawned finish, just after they stop.
    while Arc::strong_count(&engine) > 1 {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "storage is still in use by {} handles after the node stopped",
                Arc::strong_count(&engine) - 1
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    engine.sync()?;
    Ok(())
}

/// A node on a temporary data folder serving HTTP on a loopback port, for benchmarks and
/// evaluations that must drive the real path.
pub struct LocalNode {
    pub base_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<()>>,
    folder: tempfile::TempDir,
}

impl LocalNode {
    pub async fn start(catalog: CatalogSource, actors: ActorConfig) -> Result<Self> {
        Self::start_with(catalog, actors, GatewayConfig::default()).await
    }

    /// [`Self::start`] with the public API's keys and limits.
    pub async fn start_with(
        catalog: CatalogSource,
        actors: ActorConfig,
        gateway: GatewayConfig,
    ) -> Result<Self> {
        let folder = tempfile::tempdir().context("cannot create a temporary data folder")?;
        let options = NodeOptions {
            actors,
            gateway,
            ..NodeOptions::new(folder.path().to_path_buf(), "127.0.0.1:0".parse()?, catalog)
        };
        let node = Node::start(&options).await?;
        let base_url = format!("http://{}", node.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(node.serve(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            base_url,
            stop,
            server,
            folder,
        })
    }

    /// Shuts the node down and waits for it; its folder is removed.
    pub async fn stop(self) -> Result<()> {
        self.stop_keeping_data().await.map(drop)
    }

    /// The node's data folder.
    pub fn data_dir(&self) -> &std::path::Path {
        self.folder.path()
    }

    /// Shuts the node down and waits for it; its folder stays until the returned handle is
    /// dropped, so a benchmark can account for what it holds.
    pub async fn stop_keeping_data(self) -> Result<tempfile::TempDir> {
        let _ = self.stop.send(());
        self.server.await??;
        Ok(self.folder)
    }
}

/// Runs a node until Ctrl-C or SIGTERM.
pub async fn run(options: NodeOptions) -> Result<()> {
    let node = Node::start(&options).await?;
    let address = node.local_addr()?;
    println!("inkling peer plane on {}", node.peer_addr()?);
    // Scripts and tests read this line to learn the port when listening on port 0.
    println!("inkling listening on http://{address}");
    let cluster = node.cluster.clone();
    node.serve(async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = cluster.drained() => tracing::info!("drained: every replica moved away"),
        }
    })
    .await
}

/// Resolves on Ctrl-C or SIGTERM: how a node, and `inkling cluster up`, is asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: where the node listens, whether it has keys and a secret, and the words
    /// its refusal must contain (none when it may start).
    #[test]
    fn a_node_beyond_loopback_needs_keys_and_a_secret() {
        let keys = KeyRing::parse(&format!(
            "admin:{}",
            inkling_auth::ApiKey::generate().hash().to_hex()
        ))
        .unwrap();
        type Case = (
            &'static str,
            Option<&'static str>,
            bool,
            bool,
            Option<&'static str>,
        );
        let cases: [Case; 6] = [
            ("127.0.0.1:8080", None, false, false, None),
            ("0.0.0.0:8080", None, false, false, Some("API keys")),
            ("0.0.0.0:8080", None, true, false, Some("a cluster secret")),
            ("0.0.0.0:8080", None, false, true, Some("API keys")),
            ("0.0.0.0:8080", None, true, true, None),
            (
                "127.0.0.1:8080",
                Some("10.0.0.1:8082"),
                false,
                false,
                Some("--peer-listen"),
            ),
        ];
        for (listen, peer_listen, with_keys, with_secret, refusal) in cases {
            let mut options =
                NodeOptions::new("data".into(), listen.parse().unwrap(), CatalogSource::Empty);
            options.cluster.peer_listen = peer_listen.map(|addr| addr.parse().unwrap());
            if with_keys {
                options.gateway.keys = keys.clone();
            }
            if with_secret {
                options.cluster.secret = Some(ClusterSecret::generate());
            }
            let checked = options.check_exposure();
            match refusal {
                None => assert!(checked.is_ok(), "{listen}: {checked:?}"),
                Some(words) => {
                    let error = checked.expect_err(listen).to_string();
                    assert!(error.contains(words), "{listen}: {error}");
                }
            }
        }
    }
}
