//! Operational plumbing shared by every layer: Prometheus metrics and log/trace setup.
//!
//! `inkling-ops` owns the process-wide metric registry and the functions that initialise
//! logging. It is a leaf: it must never know about products, profiles, actors, nodes or HTTP,
//! so that every other crate can depend on it without creating a cycle.

pub mod metrics;

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber once; later calls are no-ops.
///
/// The filter comes from `RUST_LOG` and defaults to `info` (with hnsw_rs, which reports
/// every graph it creates at info, held to warnings), so an operator can raise the level of
/// one module without rebuilding.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,hnsw_rs=warn,openraft=error,openraft::replication=off,chitchat=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
