//! The actors that serve shoppers: sessions, their supervisor, the catalog writer, index
//! shards, the ranker, the online signals and the model pool, all supervised by the node
//! supervisor, plus [`Inkling`], the façade that wires them together.
//!
//! `inkling-actors` owns concurrency, supervision and message flow. Every actor has one
//! message enum, and every call carries a timeout. Only the model pool's and the index
//! shards' messages derive `RactorClusterMessage`: ractor_cluster mirrors every remotable
//! actor on every peer, so per-user actors stay local, and pools and shard replicas are
//! found by other nodes through their process groups ([`model_pool::pool_group`],
//! [`placement::shard_group`]). It must never know about sockets, HTTP, node
//! addresses or placement: that is `inkling-replication`'s.

pub mod catalog;
pub mod config;
pub mod embedder;
pub mod held_shards;
pub mod index_shard;
pub mod inkling;
pub mod model_pool;
pub mod node_supervisor;
pub mod placement;
pub mod profile_writer;
pub mod protocol;
pub mod ranker;
pub mod session;
pub mod session_supervisor;
pub mod signals;
pub mod slot;
pub mod understanding;

/// A fail-point, as TiKV uses them: inert unless the crate is built with the `failpoints`
/// feature and a test arms it with `fail::cfg(name, action)`. Production builds compile it
/// to nothing.
#[macro_export]
macro_rules! fail_point {
    ($name:expr) => {{
        #[cfg(feature = "failpoints")]
        ::fail::fail_point!(&$name);
        #[cfg(not(feature = "failpoints"))]
        let _ = || $name;
    }};
    // With an early return: armed with `return`, the enclosing function returns `$early`'s
    // value, as if the step after the fail-point had failed.
    ($name:expr, $early:expr) => {{
        #[cfg(feature = "failpoints")]
        ::fail::fail_point!(&$name, $early);
        #[cfg(not(feature = "failpoints"))]
        let _ = || $name;
    }};
}

use std::collections::HashMap;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};
use serde::{Deserialize, Serialize};

/// Whether this build carries fail-points (the `failpoints` feature, test builds only).
pub const FAILPOINTS: bool = cfg!(feature = "failpoints");

/// Whether the fail-point `name` is armed with `return`: for crates above this one, whose
/// own builds do not carry the `failpoints` feature (the test build turns it on here only).
/// Always false in production builds.
pub fn fail_point_armed(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        (|| {
            ::fail::fail_point!(name, |_| true);
            false
        })()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

pub use config::ActorConfig;
pub use inkling::{Inkling, NodeStorage};
pub use protocol::{RankedItem, RankedList, RecommendRequest, SearchRequest};

/// Errors an actor reports to its caller; serialisable so they cross nodes intact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum ActorError {
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Storage(String),
    /// A bounded queue is full; the caller should back off and retry.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The node's disk is nearly full: it takes no new data until space is freed.
    #[error("{0}")]
    InsufficientStorage(String),
}

impl From<inkling_storage::StorageError> for ActorError {
    fn from(error: inkling_storage::StorageError) -> Self {
        ActorError::Storage(error.to_string())
    }
}

/// Runs blocking storage work (a profile load, catalog scans and writes, the vocabulary
/// rebuild) on tokio's blocking pool, at most as many tasks at once as the machine has
/// cores: unbounded, concurrent tasks only contend for sled and the CPU.
pub async fn storage_task<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(cores)
    });
    // The semaphore is never closed, so acquiring cannot fail.
    let _permit = PERMITS
        .acquire()
        .await
        .expect("storage permits are never closed");
    tokio::task::spawn_blocking(work).await
}

/// [`storage_task`] for work that reports an [`ActorError`], with a failed task as one too.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ActorError> + Send + 'static,
) -> Result<T, ActorError> {
    storage_task(work)
        .await
        .map_err(|error| ActorError::Unavailable(format!("storage task failed: {error}")))?
}

/// The metric label of the actors that take messages of type `M`: `RankerMsg` is `ranker`,
/// `IndexShardMsg` is `index_shard`.
fn actor_kind<M>() -> &'static str {
    static KINDS: std::sync::LazyLock<parking_lot::Mutex<HashMap<&'static str, &'static str>>> =
        std::sync::LazyLock::new(Default::default);
    let type_name = std::any::type_name::<M>();
    let mut kinds = KINDS.lock();
    let kind: &mut &'static str = kinds.entry(type_name).or_insert_with(|| {
        let name = type_name.rsplit("::").next().unwrap_or(type_name);
        let name = name.strip_suffix("Msg").unwrap_or(name);
        let mut kind = String::new();
        for (index, letter) in name.chars().enumerate() {
            if letter.is_uppercase() && index > 0 {
                kind.push('_');
            }
            kind.push(letter.to_ascii_lowercase());
        }
        Box::leak(kind.into_boxed_str())
    });
    kind
}

/// Sends a request built by `build` and waits at most `timeout` for the answer.
///
/// `what` names the callee in errors, so a timeout says which actor was slow.
pub async fn ask<M, T>(
    actor: &ActorRef<M>,
    build: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
    what: &str,
) -> Result<T, ActorError>
where
    M: Message,
    T: Send + 'static,
{
    let in_flight =
        inkling_ops::metrics::ACTOR_MAILBOX_DEPTH.with_label_values(&[actor_kind::<M>()]);
    in_flight.inc();
    let answer = actor.call(build, Some(timeout)).await;
    in_flight.dec();
    match answer {
        Ok(CallResult::Success(answer)) => Ok(answer),
        Ok(CallResult::Timeout) => Err(ActorError::Timeout(format!(
            "{what} did not answer within {timeout:?}"
        ))),
        Ok(CallResult::SenderError) => Err(ActorError::Unavailable(format!(
            "{what} dropped the request"
        ))),
        Err(_) => Err(ActorError::Unavailable(format!("{what} is not running"))),
    }
}
