//! Durable state: the key-value engine, the catalog and profile stores, and the text index.
//!
//! `inkling-storage` owns everything that must survive a restart: the key-value [`engine`]
//! (a trait, with sled as its implementation, plus group commit), the typed [`catalog`],
//! [`profile`] and fitted-model ([`fitted_models`]) stores on top of it, the per-user data keys
//! that make erasing a user final ([`user_keys`]: what a user's records hold is sealed under
//! keys kept outside sled, which an erasure destroys), the [`disk`] guard that turns new
//! data away before the disk is full, and the [`shard_index`] of one
//! index shard (tantivy for text with bilingual [`analysis`], HNSW for vectors). It must
//! never know about actors, messages, nodes or HTTP: callers drive it with plain function
//! calls, so it can be tested, benchmarked and swapped on its own.

pub mod analysis;
pub mod catalog;
pub mod disk;
pub mod engine;
pub mod fitted_models;
pub mod profile;
pub mod shard_index;
pub mod user_keys;
pub mod vector_index;

pub use analysis::ChineseSegmentation;
pub use catalog::CatalogStore;
pub use disk::{DiskGuard, LowDisk};
pub use engine::{GroupCommit, KeyValues, Keyspace, KvEngine, SledEngine};
pub use fitted_models::ModelStore;
pub use profile::ProfileStore;
pub use shard_index::{IndexHit, IndexQuery, IndexedProduct, Retrieval, ShardIndex, ShardLayout};
pub use user_keys::{KeyId, UserKeys};

/// Errors from the storage layer. They carry enough context to be shown to an operator.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("corrupt record in {keyspace:?}: {source}")]
    Corrupt {
        keyspace: Keyspace,
        source: serde_json::Error,
    },
    #[error("storage is shut down")]
    ShutDown,
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
