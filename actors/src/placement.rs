//! Placement: which index shard owns a product, and where to reach that shard now.
//!
//! Callers ask by id and get an actor reference back; they never index a list of shards
//! with a hash themselves, so a placement that spreads shards over nodes (and keeps replicas
//! of each) can replace [`LocalShards`], the single-node placement, without changing them.

use ractor::ActorRef;

use crate::ActorError;
use crate::index_shard::IndexShardMsg;
use crate::slot::ActorSlot;

/// Stable placement of a product on one of `shards` shards: the same id maps to the same
/// shard on every node and every release, because the hash function is fixed (xxh3), not
/// std's.
pub fn shard_of(product_id: &str, shards: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(product_id.as_bytes()) % shards.max(1) as u64) as usize
}

pub trait ShardPlacement: Send + Sync + 'static {
    /// How many shards the catalog is split into.
    fn shard_count(&self) -> usize;

    /// Where to reach `shard` now; `Unavailable` while no copy of it runs.
    fn shard(&self, shard: usize) -> Result<ActorRef<IndexShardMsg>, ActorError>;

    /// The shard that owns `product_id`.
    fn shard_of(&self, product_id: &str) -> usize {
        shard_of(product_id, self.shard_count())
    }

    /// The shard that owns `product_id`, and where to reach it.
    fn owner(&self, product_id: &str) -> (usize, Result<ActorRef<IndexShardMsg>, ActorError>) {
        let shard = self.shard_of(product_id);
        (shard, self.shard(shard))
    }
}

/// Every shard on this node, each in the slot its supervisor keeps current.
pub struct LocalShards {
    slots: Vec<ActorSlot<IndexShardMsg>>,
}

impl LocalShards {
    pub fn new(slots: Vec<ActorSlot<IndexShardMsg>>) -> Self {
        Self { slots }
    }
}

impl ShardPlacement for LocalShards {
    fn shard_count(&self) -> usize {
        self.slots.len()
    }

    fn shard(&self, shard: usize) -> Result<ActorRef<IndexShardMsg>, ActorError> {
        match self.slots.get(shard) {
            Some(slot) => slot.get(),
            None => Err(ActorError::Unavailable(format!("no index shard {shard}"))),
        }
    }
}
