//! The cluster: membership and failure detection (chitchat), shoppers' durable state in
//! user partitions replicated by raft (openraft), the actor mesh between nodes
//! (ractor_cluster), and routing of every shopper request to the node that leads the
//! shopper's partition.
//!
//! `inkling-replication` owns nodes, placement and the traffic between nodes. It stores raft
//! logs and state through the storage engine trait and applies committed events through
//! the actors' `ProfileWriter`; it must never hold business logic of its own (profiles,
//! ranking, understanding) nor the public API, which is `inkling-gateway`'s.
//!
//! Inside, modules point one way: `bootstrap` starts the [`Cluster`] façade (`routing`),
//! which reaches other nodes through the `mesh` and serves what is led here with
//! [`LocalReplicas`] (`replicas`); the mesh's router hands what other nodes send to the
//! same `LocalReplicas`, and never calls the façade back.

// openraft's storage and RPC traits return its large error types by value; the helpers
// that build them return the same types rather than boxing and unboxing at every call.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod bootstrap;
pub mod gossip_auth;
mod index_placement;
pub mod log_store;
pub mod membership;
pub mod mesh;
mod mesh_accept;
pub mod network;
pub mod partition;
pub mod peer_api;
pub mod peer_http;
pub mod privacy;
pub mod raft_types;
pub mod rebalance;
pub mod replicas;
pub mod request;
pub mod routing;
pub mod state_machine;
pub mod status;
pub mod tls;

pub use bootstrap::{ClusterConfig, InitialMember};
pub use mesh::MeshConfig;
pub use partition::{CATALOG_GROUP, PARTITIONS, PartitionId, partition_of};
pub use raft_types::node_id_of;
pub use replicas::LocalReplicas;
pub use request::UserRecords;
pub use routing::{Cluster, Commit};
pub use status::{ClusterStatus, PartitionStatus};
pub use tls::MeshTls;
