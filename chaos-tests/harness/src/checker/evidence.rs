//! What the checker judges besides the shoppers' journal: the faults as they happened and
//! every node's reading of every user.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::schedule::Step;

/// A fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub step: Step,
    pub started: Instant,
    /// When the nemesis healed it and when the cluster was whole again.
    pub healed: Instant,
    pub recovered: Instant,
    /// Partitions whose leader the fault took away, as one node's status showed them
    /// (failover is measured from the acknowledgements' own leaders instead).
    pub affected_partitions: Vec<u64>,
    /// Raft ids of the nodes the fault took away.
    pub targets: Vec<u64>,
    /// What went wrong while injecting or healing, if anything.
    pub problem: Option<String>,
}

/// A user's profile as one node's gateway answered it.
#[derive(Debug, Clone, Default)]
pub struct ReadBack {
    pub event_count: u64,
    pub key_hashes: Vec<u64>,
}

/// Every node's reading of every user: node name → user → profile (or why it was not read).
pub type ReadBacks = BTreeMap<String, BTreeMap<String, Result<ReadBack, String>>>;
