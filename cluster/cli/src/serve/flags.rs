//! `inkling serve`'s flags. Each is optional: one the user leaves out serializes to nothing,
//! so it does not hide the same key from the file or the environment. The defaults, the
//! environment variables and the file keys are added to each flag's help from
//! `ServeConfig` (see `serve::help_with_sources`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::values::{CatalogArg, Member, Roles, VariantArg};
use crate::engine::{ModelArg, PrecisionArg, SegmentationArg};

#[derive(clap::Args, Serialize)]
pub struct ServeFlags {
    /// A TOML file with any of the keys below (each flag's name with `_` for `-`).
    /// Environment variables override it, and flags override both.
    #[arg(long, env = "INKLING_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Folder for the sled database and the index shards.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The address of the public HTTP API. Beyond loopback the node needs --api-keys and a
    /// cluster secret.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The address of the peer plane: raft and status over HTTP, gossip over UDP, for
    /// cluster members only; the --listen IP and the port two after it by default.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_listen: Option<SocketAddr>,
    /// Catalog loaded into an empty node: the bundled demo, none, or a JSON-lines file.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogArg>,
    /// A JSON-lines product file, with --catalog file.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_file: Option<PathBuf>,
    /// The shop's categories and brands with their other names (synonyms, other
    /// languages), as JSON: `{"aliases": {"手机": ["mobile phones"]}, "brand_aliases":
    /// {"Xiaomi": ["小米"]}}`. Default: the taxonomy bundled with the demo catalog. Every
    /// node of a cluster should be given the same file; a change re-indexes at start.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taxonomy: Option<PathBuf>,
    /// Seconds without traffic after which a session actor is passivated.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_idle_secs: Option<u64>,
    /// Most session actors live on this node; beyond it the least recently active are
    /// passivated (their profiles stay stored).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_live_sessions: Option<u64>,
    /// Below this many MiB free on the disk holding --data-dir, the node refuses new
    /// events and products with 507 (erasures still run) instead of failing halfway
    /// through a write; 0 never refuses.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_free_disk_mb: Option<u64>,

    /// API keys this node accepts, as SCOPE:SHA256,... (scope admin, storefront or
    /// metrics; the SHA-256 of the key in hex, as `inkling cluster key` prints it). Without
    /// keys every request is let through, which only a node on loopback may do.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<Vec<String>>,
    /// A file of SCOPE:SHA256 lines, read with --api-keys.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_keys_file: Option<PathBuf>,
    /// Requests per second each API key may send (a token bucket).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Requests each API key may send at once above --rate-limit.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_burst: Option<u32>,
    /// Requests the node works on at once; beyond it, 503 "overloaded".
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u32>,
    /// Whether GET /metrics is served (to keys of scope metrics or admin once keys are set).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_metrics: Option<bool>,
    /// A/B variants as NAME:SHARE[:SEMANTIC_WEIGHT],... (e.g. control:90,meaning:10:0.8):
    /// each user id hashes into one by the shares; SEMANTIC_WEIGHT is the weight of the
    /// meaning list against the words list in search fusion. Default: one variant,
    /// `default`, changing nothing.
    #[arg(long, value_delimiter = ',', value_parser = VariantArg::parse)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<VariantArg>>,

    /// This node's name, stable across restarts: its raft groups know it by this name.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The nodes the user partitions are first placed on, this one included, as
    /// NAME=ADDR,... (ADDR is the node's --listen address). Only read when the node's data
    /// folder holds no raft state yet.
    #[arg(long, value_delimiter = ',', value_parser = Member::parse)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_members: Option<Vec<Member>>,
    /// Peer addresses (the --peer-listen or --advertise address of running nodes) to join
    /// through; the other initial members by default.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<String>>,
    /// What this node does, any of: gateway (serves the public API), sessions (may vote in
    /// and lead user partitions, so it holds shoppers' sessions), models (runs a model
    /// pool; without it the node embeds through other nodes' pools), index (may vote in
    /// the catalog group). Every node still learns every group's log.
    #[arg(long, value_parser = Roles::parse)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Roles>,
    /// Where the actor mesh (ractor_cluster) listens; the --listen IP and the next port by
    /// default.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_addr: Option<SocketAddr>,
    /// The address peers reach this node's peer plane (raft and gossip) on, when it is not
    /// the --peer-listen address: behind a NAT or a proxy (the chaos harness puts a
    /// fault-injecting proxy there). Outgoing peer traffic then leaves from the
    /// --peer-listen IP.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<SocketAddr>,
    /// The address peers dial this node's actor mesh on; --actor-addr by default.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_actor: Option<SocketAddr>,
    /// A file holding the cluster secret (hex, at least 128 bits) that only its owner may
    /// read; required when the node has peers, unless INKLING_CLUSTER_SECRET holds it.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret_file: Option<PathBuf>,
    /// A file holding a second secret whose proofs are accepted but never made, for
    /// rotating the cluster secret without downtime (see docs/security.md); or
    /// INKLING_ACCEPTED_CLUSTER_SECRET.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_cluster_secret_file: Option<PathBuf>,
    /// Log entries after which a raft group snapshots its state and purges its log.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_snapshot_every: Option<u64>,
    /// PEM certificate chain for mutual TLS on the actor mesh and the peer plane (with
    /// --tls-key, --tls-ca); it names the node by --node-name (a DNS name).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate of the authority every node's certificate chains to.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,

    /// Number of index shards the catalog is split into; the same on every node of a
    /// cluster.
    #[arg(long, visible_alias = "index-shards", value_parser = clap::value_parser!(u16).range(1..=256))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u16>,
    /// How many nodes with the index role hold each shard (fewer when fewer nodes have it).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=16))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_replicas: Option<u16>,
    /// How the index segments Chinese: jieba words or character bigrams.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<SegmentationArg>,
    /// Encoder behind intent understanding and vector search: multilingual-e5-small (zh +
    /// en), all-minilm-l6-v2 (English, faster), or none (lexical search and slots only).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelArg>,
    /// Folder with the model files that scripts/setup.sh unpacks.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models_dir: Option<PathBuf>,
    /// Model workers, each holding its own copy of the encoder.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_workers: Option<u16>,
    /// Number format of the encoder: auto (f16 on a GPU, bf16 on a CPU with AVX-512 BF16,
    /// f32 elsewhere) or f32 (everywhere).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_precision: Option<PrecisionArg>,
    /// Most texts the model pool encodes in one batch.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4096))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<u16>,
    /// Longest a queued text waits for its batch to fill, in microseconds.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_us: Option<u64>,
    /// Texts the model pool may hold waiting; past this, searches get 503 "overloaded".
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_queue: Option<u32>,
    /// Recommendation ranker weights from `inkling train ranker` (default: the untrained
    /// prior).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranker: Option<PathBuf>,
    /// Search ranker weights from `inkling train search-ranker` (default: convex fusion).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_ranker: Option<PathBuf>,
}
