//! Placement: which index shard owns a product, and where to reach that shard now.
//!
//! Callers ask by id and get an actor reference back; they never index a list of shards
//! with a hash themselves. Writes go to this node's copy of a shard ([`ShardPlacement::shard`]);
//! reads may go to any replica ([`ShardPlacement::replicas`]): every shard actor joins the
//! process group of its shard ([`shard_group`]), which ractor_cluster keeps in step across
//! nodes, so replicas on other nodes answer when this node's copy is down or slow.
//!
//! A node need not hold every shard ([`HeldShards`]): in a cluster, the layer that knows
//! the nodes decides which shards each node's index holds, and a shard this node does not
//! hold is kept empty and out of its process group, so reads go to the nodes that hold it.

use std::sync::atomic::{AtomicUsize, Ordering};

use inkling_storage::ShardLayout;
use ractor::ActorRef;

use crate::ActorError;
pub use crate::held_shards::HeldShards;
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

    /// This node's copy of `shard`, the one writes go to; `Unavailable` while it is down.
    fn shard(&self, shard: usize) -> Result<ActorRef<IndexShardMsg>, ActorError>;

    /// Every running replica of `shard` a read may ask, this node's first; empty while
    /// none runs anywhere reachable.
    fn replicas(&self, shard: usize) -> Vec<ActorRef<IndexShardMsg>>;

    /// The shard that owns `product_id`.
    fn shard_of(&self, product_id: &str) -> usize {
        shard_of(product_id, self.shard_count())
    }

    /// Whether this node's index holds `shard`: writes index only the shards it holds.
    fn holds(&self, _shard: usize) -> bool {
        true
    }
}

/// The process group of every replica of shard `shard` of `shard_count` with this layout,
/// on any node: replicas with another shard count or another embedding model hold other
/// products or other vectors, so they are never mixed.
pub fn shard_group(layout: &ShardLayout, shard_count: usize, shard: usize) -> String {
    let vectors = layout.vector_model.as_deref().unwrap_or("lexical");
    format!("inkling.index.{vectors}.{shard_count}.{shard}")
}

/// This node's shards, each in the slot its supervisor keeps current, and the replicas of
/// the same shards on other nodes.
pub struct NodeShards {
    slots: Vec<ActorSlot<IndexShardMsg>>,
    layout: ShardLayout,
    held: HeldShards,
    /// Spreads reads over remote replicas.
    next_remote: AtomicUsize,
}

impl NodeShards {
    pub fn new(
        slots: Vec<ActorSlot<IndexShardMsg>>,
        layout: ShardLayout,
        held: HeldShards,
    ) -> Self {
        Self {
            slots,
            layout,
            held,
            next_remote: AtomicUsize::new(0),
        }
    }

    /// Puts this node's copy of `shard` in its process group, or takes it out, so reads
    /// from any node come to it or stop coming. A copy that is restarting joins by itself
    /// when it holds the shard.
    pub fn set_serving(&self, shard: usize, serving: bool) {
        let Ok(copy) = self.shard(shard) else {
            return;
        };
        let group = shard_group(&self.layout, self.shard_count(), shard);
        if serving {
            ractor::pg::join(group, vec![copy.get_cell()]);
        } else {
            ractor::pg::leave(group, vec![copy.get_cell()]);
        }
    }

    /// How many copies of `shard` on other nodes serve reads.
    pub fn served_elsewhere(&self, shard: usize) -> usize {
        let group = shard_group(&self.layout, self.shard_count(), shard);
        ractor::pg::get_members(&group)
            .iter()
            .filter(|replica| !replica.get_id().is_local())
            .count()
    }

    /// How many copies of `shard`, on any node this one, serve reads.
    pub fn serving_copies(&self, shard: usize) -> usize {
        let group = shard_group(&self.layout, self.shard_count(), shard);
        ractor::pg::get_members(&group).len()
    }

    pub fn held(&self) -> &HeldShards {
        &self.held
    }
}

impl ShardPlacement for NodeShards {
    fn shard_count(&self) -> usize {
        self.slots.len()
    }

    fn shard(&self, shard: usize) -> Result<ActorRef<IndexShardMsg>, ActorError> {
        match self.slots.get(shard) {
            Some(slot) => slot.get(),
            None => Err(ActorError::Unavailable(format!("no index shard {shard}"))),
        }
    }

    fn replicas(&self, shard: usize) -> Vec<ActorRef<IndexShardMsg>> {
        let group = shard_group(&self.layout, self.shard_count(), shard);
        let mut remote: Vec<ActorRef<IndexShardMsg>> = ractor::pg::get_members(&group)
            .into_iter()
            .filter(|replica| !replica.get_id().is_local())
            .map(ActorRef::from)
            .collect();
        if !remote.is_empty() {
            let turn = self.next_remote.fetch_add(1, Ordering::Relaxed) % remote.len();
            remote.rotate_left(turn);
        }
        let local = self.shard(shard).ok().filter(|_| self.held.holds(shard));
        local.into_iter().chain(remote).collect()
    }

    fn holds(&self, shard: usize) -> bool {
        self.held.holds(shard)
    }
}
