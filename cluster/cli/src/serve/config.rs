//! `serve`'s settings, merged by figment from, lowest first: the defaults here, the
//! `--config` TOML file, the environment variables of `sources::ENV_KEYS`, and the flags the
//! user set. figment remembers where each value came from, so a bad one is refused with the
//! key and the source that gave it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use inkling_actors::ActorConfig;
use inkling_auth::secret::{ACCEPTED_SECRET_ENV, SECRET_ENV};
use inkling_gateway::RateLimit;
use inkling_gateway::experiments::Experiments;
use inkling_node::{
    CatalogSource, ClusterOptions, ClusterSecret, GatewayConfig, KeyRing, MeshTls, NodeOptions,
};
use serde::{Deserialize, Serialize};

use super::flags::ServeFlags;
use super::sources::{CommandLine, Environment};
use super::values::{CatalogArg, Member, Roles, VariantArg, comma_list, in_range};
use crate::engine::{EngineArgs, ModelArg, PrecisionArg, SegmentationArg};

/// Every setting of `serve`; a config file may set any of them by its field's name, which
/// is also its flag's name with `_` for `-`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub peer_listen: Option<SocketAddr>,
    pub catalog: CatalogArg,
    pub catalog_file: Option<PathBuf>,
    pub taxonomy: Option<PathBuf>,
    pub session_idle_secs: u64,
    #[serde(deserialize_with = "in_range::<_, u64, 1, { u64::MAX }>")]
    pub max_live_sessions: u64,
    pub min_free_disk_mb: u64,

    #[serde(deserialize_with = "comma_list")]
    pub api_keys: Vec<String>,
    pub api_keys_file: Option<PathBuf>,
    #[serde(deserialize_with = "in_range::<_, u32, 1, { u32::MAX as u64 }>")]
    pub rate_limit: u32,
    #[serde(deserialize_with = "in_range::<_, u32, 1, { u32::MAX as u64 }>")]
    pub rate_burst: u32,
    #[serde(deserialize_with = "in_range::<_, u32, 1, { u32::MAX as u64 }>")]
    pub max_concurrent_requests: u32,
    pub expose_metrics: bool,
    #[serde(deserialize_with = "comma_list")]
    pub variants: Vec<VariantArg>,

    pub node_name: String,
    #[serde(deserialize_with = "comma_list")]
    pub initial_members: Vec<Member>,
    #[serde(deserialize_with = "comma_list")]
    pub seeds: Vec<String>,
    pub roles: Roles,
    pub actor_addr: Option<SocketAddr>,
    pub advertise: Option<SocketAddr>,
    pub advertise_actor: Option<SocketAddr>,
    pub cluster_secret_file: Option<PathBuf>,
    pub accepted_cluster_secret_file: Option<PathBuf>,
    #[serde(deserialize_with = "in_range::<_, u64, 1, { u64::MAX }>")]
    pub raft_snapshot_every: u64,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,

    #[serde(deserialize_with = "in_range::<_, u16, 1, 256>")]
    pub shards: u16,
    #[serde(deserialize_with = "in_range::<_, u16, 1, 16>")]
    pub index_replicas: u16,
    pub segmentation: SegmentationArg,
    pub model: ModelArg,
    pub models_dir: PathBuf,
    #[serde(deserialize_with = "in_range::<_, u16, 1, 64>")]
    pub model_workers: u16,
    pub encoder_precision: PrecisionArg,
    #[serde(deserialize_with = "in_range::<_, u16, 1, 4096>")]
    pub max_batch: u16,
    pub max_wait_us: u64,
    #[serde(deserialize_with = "in_range::<_, u32, 1, { u32::MAX as u64 }>")]
    pub model_queue: u32,
    pub ranker: Option<PathBuf>,
    pub search_ranker: Option<PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let gateway = GatewayConfig::default();
        ServeConfig {
            data_dir: PathBuf::from("data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            peer_listen: None,
            // The demo catalog is for `make run` and `make cluster`: a production node that
            // forgot the flag must not start serving toy products.
            catalog: CatalogArg::None,
            catalog_file: None,
            taxonomy: None,
            session_idle_secs: 600,
            max_live_sessions: inkling_actors::config::DEFAULT_MAX_LIVE_SESSIONS as u64,
            min_free_disk_mb: inkling_node::MIN_FREE_DISK_BYTES / (1024 * 1024),
            api_keys: Vec::new(),
            api_keys_file: None,
            rate_limit: gateway.rate_limit.per_second,
            rate_burst: gateway.rate_limit.burst,
            max_concurrent_requests: gateway.max_concurrent_requests as u32,
            expose_metrics: gateway.expose_metrics,
            variants: gateway
                .experiments
                .variants()
                .iter()
                .cloned()
                .map(VariantArg)
                .collect(),
            node_name: "node-1".to_string(),
            initial_members: Vec::new(),
            seeds: Vec::new(),
            roles: Roles::all(),
            actor_addr: None,
            advertise: None,
            advertise_actor: None,
            cluster_secret_file: None,
            accepted_cluster_secret_file: None,
            raft_snapshot_every: inkling_replication::bootstrap::SNAPSHOT_EVERY,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            shards: 4,
            index_replicas: inkling_replication::partition::REPLICAS as u16,
            segmentation: SegmentationArg::Jieba,
            model: ModelArg::E5,
            models_dir: PathBuf::from(".deps/models"),
            model_workers: 1,
            encoder_precision: PrecisionArg::Auto,
            max_batch: 32,
            max_wait_us: 2_000,
            model_queue: 1_024,
            ranker: None,
            search_ranker: None,
        }
    }
}

impl ServeConfig {
    /// The defaults, overridden by the file `flags.config` names, then by the environment,
    /// then by the flags the user set.
    pub fn load(flags: &ServeFlags) -> anyhow::Result<ServeConfig> {
        let mut figment = Figment::from(Serialized::defaults(ServeConfig::default()));
        if let Some(path) = &flags.config {
            figment = figment.merge(config_file(path)?);
        }
        figment
            .merge(Environment)
            .merge(CommandLine(flags))
            .extract()
            .context("invalid configuration")
    }

    pub fn node_options(&self) -> anyhow::Result<NodeOptions> {
        let catalog = match (self.catalog, &self.catalog_file) {
            (CatalogArg::Demo, _) => CatalogSource::Demo,
            (CatalogArg::None, _) => CatalogSource::Empty,
            (CatalogArg::File, Some(path)) => CatalogSource::File(path.clone()),
            (CatalogArg::File, None) => {
                bail!("--catalog file needs --catalog-file (`catalog_file` in a config file)")
            }
        };
        let initial_members: Vec<_> = self
            .initial_members
            .iter()
            .map(|member| member.0.clone())
            .collect();
        if !initial_members.is_empty()
            && !initial_members
                .iter()
                .any(|member| member.name == self.node_name)
        {
            bail!(
                "--initial-members must include this node (--node-name {})",
                self.node_name
            );
        }
        let taxonomy = match &self.taxonomy {
            Some(path) => inkling_node::read_taxonomy(path)?,
            None => inkling_node::bundled_taxonomy(),
        };
        Ok(NodeOptions {
            data_dir: self.data_dir.clone(),
            taxonomy,
            listen: self.listen,
            gateway: GatewayConfig {
                keys: self.api_keys()?,
                rate_limit: RateLimit {
                    per_second: self.rate_limit,
                    burst: self.rate_burst,
                },
                max_concurrent_requests: self.max_concurrent_requests as usize,
                expose_metrics: self.expose_metrics,
                experiments: self.experiments()?,
                ..GatewayConfig::default()
            },
            header_read_timeout: inkling_node::HEADER_READ_TIMEOUT,
            min_free_disk_bytes: self.min_free_disk_mb.saturating_mul(1024 * 1024),
            catalog,
            actors: ActorConfig {
                session_idle_timeout: Duration::from_secs(self.session_idle_secs.max(1)),
                max_live_sessions: usize::try_from(self.max_live_sessions).unwrap_or(usize::MAX),
                local_model_pool: self.roles.contains("models"),
                ..self.engine().actor_config()?
            },
            cluster: ClusterOptions {
                node_name: self.node_name.clone(),
                seeds: self.seeds.clone(),
                initial_members,
                roles: self.roles.as_str().to_string(),
                peer_listen: self.peer_listen,
                actor_addr: self.actor_addr,
                advertise: self.advertise,
                advertise_actor: self.advertise_actor,
                secret: self.cluster_secret()?,
                tls: self.mesh_tls()?,
                snapshot_every: self.raft_snapshot_every,
                index_replicas: usize::from(self.index_replicas),
            },
        })
    }

    /// The A/B variants of `variants`, checked together (unique names, some share).
    fn experiments(&self) -> anyhow::Result<Experiments> {
        let variants = self
            .variants
            .iter()
            .map(|variant| variant.0.clone())
            .collect();
        Experiments::new(variants).map_err(|error| anyhow::anyhow!("--variants: {error}"))
    }

    /// The keys of `api_keys` and of the `api_keys_file`.
    fn api_keys(&self) -> anyhow::Result<KeyRing> {
        let mut text = self.api_keys.join(",");
        if let Some(path) = &self.api_keys_file {
            let file = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API keys file {}", path.display()))?;
            text.push('\n');
            text.push_str(&file);
        }
        KeyRing::parse(&text).map_err(|error| anyhow::anyhow!("invalid API key entry: {error}"))
    }

    /// The cluster secret, and the second one it also accepts during a rotation.
    fn cluster_secret(&self) -> anyhow::Result<Option<ClusterSecret>> {
        let secret = read_secret(SECRET_ENV, self.cluster_secret_file.as_deref())?;
        let accepted = read_secret(
            ACCEPTED_SECRET_ENV,
            self.accepted_cluster_secret_file.as_deref(),
        )?;
        match (secret, accepted) {
            (Some(secret), Some(accepted)) => Ok(Some(secret.also_accepting(accepted))),
            (secret, None) => Ok(secret),
            (None, Some(_)) => bail!(
                "an accepted cluster secret is only for rotating the cluster secret: set {SECRET_ENV} or --cluster-secret-file too"
            ),
        }
    }

    /// The engine settings, as `eval` and `train` take them from their flags.
    fn engine(&self) -> EngineArgs {
        EngineArgs {
            shards: self.shards,
            segmentation: self.segmentation,
            model: self.model,
            models_dir: self.models_dir.clone(),
            model_workers: self.model_workers,
            encoder_precision: self.encoder_precision,
            max_batch: self.max_batch,
            max_wait_us: self.max_wait_us,
            model_queue: self.model_queue,
            ranker: self.ranker.clone(),
            search_ranker: self.search_ranker.clone(),
        }
    }

    fn mesh_tls(&self) -> anyhow::Result<Option<MeshTls>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(MeshTls {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })),
            _ => bail!("mutual TLS needs all of --tls-cert, --tls-key and --tls-ca"),
        }
    }
}

/// A secret from the environment variable `env`, or else from `file`. Never a flag or a
/// config key: those show in `ps` and in files others read.
fn read_secret(env: &str, file: Option<&Path>) -> anyhow::Result<Option<ClusterSecret>> {
    if let Ok(text) = std::env::var(env) {
        let secret = ClusterSecret::from_hex(&text).with_context(|| format!("in {env}"))?;
        return Ok(Some(secret));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    Ok(Some(ClusterSecret::from_file(path)?))
}

/// The `--config` file; one that cannot be read is an error, where figment would read
/// nothing from it.
fn config_file(path: &Path) -> anyhow::Result<figment::providers::Data<Toml>> {
    std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Toml::file_exact(path))
}
