//! What the user partitions' raft groups replicate: commands on shoppers' durable state.

use std::io::Cursor;

use inkling_domain::{Event, Product, ProductWrite};
use serde::{Deserialize, Serialize};

/// A raft node id: a stable hash of the node's name (see [`node_id_of`]).
pub type NodeId = u64;

/// A command in a user partition's log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Events of users of one partition, folded into their profiles with the clock the
    /// leader read when it proposed them, so every replica computes the same profile.
    RecordEvents { at_ms: u64, events: Vec<Event> },
    /// Erases the user's profile on every replica.
    EraseUser { user_id: String },
    /// Stores and indexes products on every replica, each embedding them (the catalog
    /// group only): what logs written before [`Command::WriteProducts`] hold.
    UpsertProducts(Vec<Product>),
    /// Stores and indexes products with the passage vectors the node that took the write
    /// computed, on every replica of the catalog group, none of which embeds them again.
    WriteProducts(Vec<ProductWrite>),
    /// Removes a product from every replica's catalog and index (the catalog group only).
    DeleteProduct(String),
}

impl Command {
    /// Whether applying it stores more than it frees.
    pub fn adds_data(&self) -> bool {
        matches!(
            self,
            Command::RecordEvents { .. } | Command::UpsertProducts(_) | Command::WriteProducts(_)
        )
    }
}

/// What applying a command did, answered to the node that proposed it: the events recorded,
/// the products written or deleted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub count: usize,
    /// The term of the leader that committed the command and that leader's id: what the
    /// chaos checker reads to prove one owner per partition and term.
    #[serde(default)]
    pub term: u64,
    #[serde(default)]
    pub leader: NodeId,
}

openraft::declare_raft_types!(
    /// The raft types of a user partition.
    pub PartitionRaft:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<PartitionRaft>;
pub type Entry = openraft::Entry<PartitionRaft>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;

/// A node's raft id, derived from its name so every node computes the same id for a peer.
pub fn node_id_of(name: &str) -> NodeId {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}
