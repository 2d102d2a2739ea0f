//! Which partition holds a user, and which nodes hold a partition.
//!
//! A user's partition is a stable hash of the user id, so it never changes as nodes come
//! and go; only the partition's voters move. There are [`PARTITIONS`] of them: enough that
//! leadership spreads evenly over a handful of nodes and a moving partition is a small share
//! of the data, few enough that every node's raft heartbeats stay cheap on two cores.

use xxhash_rust::xxh3::xxh3_64;

use crate::raft_types::NodeId;

pub type PartitionId = u16;

/// The number of user partitions. Changing it re-homes every user: it is fixed for the
/// life of a cluster.
pub const PARTITIONS: PartitionId = 16;

/// The raft group that replicates the catalog, numbered after the user partitions.
pub const CATALOG_GROUP: PartitionId = PARTITIONS;

/// Voters per partition: a quorum of 2 out of 3 survives the loss of any one node.
pub const REPLICAS: usize = 3;

pub fn partition_of(user_id: &str) -> PartitionId {
    (xxh3_64(user_id.as_bytes()) % u64::from(PARTITIONS)) as PartitionId
}

/// The nodes that hold `partition`, best first, by rendezvous hashing over `members` (raft
/// node ids): adding or removing a node moves only the partitions whose top choices it
/// changes, about one in N.
pub fn placement(partition: PartitionId, members: &[NodeId], replicas: usize) -> Vec<NodeId> {
    let mut ranked: Vec<(u64, NodeId)> = members
        .iter()
        .map(|member| {
            let key = format!("{partition}/{member}");
            (xxh3_64(key.as_bytes()), *member)
        })
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.dedup_by_key(|(_, member)| *member);
    ranked
        .into_iter()
        .take(replicas)
        .map(|(_, member)| member)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_spread_over_every_partition() {
        let mut seen = [0usize; PARTITIONS as usize];
        for user in 0..10_000 {
            seen[partition_of(&format!("user-{user}")) as usize] += 1;
        }
        let expected = 10_000 / PARTITIONS as usize;
        for count in seen {
            assert!(count > expected / 2 && count < expected * 2, "{seen:?}");
        }
    }

    #[test]
    fn adding_a_node_moves_about_one_in_n_placements() {
        let before = [11, 22, 33, 44];
        let after = [11, 22, 33, 44, 55];
        let mut moved = 0;
        for partition in 0..PARTITIONS {
            let old = placement(partition, &before, 1);
            let new = placement(partition, &after, 1);
            if old != new {
                assert_eq!(new, [55], "only the new node gains first choices");
                moved += 1;
            }
        }
        assert!(
            moved < PARTITIONS as usize / 2,
            "{moved} of {PARTITIONS} moved"
        );
    }

    #[test]
    fn placement_is_distinct_and_bounded_by_members() {
        let members = [11, 22];
        let chosen = placement(3, &members, REPLICAS);
        assert_eq!(chosen.len(), 2);
        assert_ne!(chosen[0], chosen[1]);
    }
}
