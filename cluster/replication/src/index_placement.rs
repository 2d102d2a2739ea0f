//! Which index shards each node's index holds.
//!
//! Every shard is held by `index_replicas` of the live admitted nodes with the `index`
//! role that are not draining, chosen by rendezvous hashing with a bound on each node's
//! load, so each node indexes about R/N of the catalog and a joining node takes over
//! about its share. The catalog itself stays replicated through its raft group; the index is
//! derived from it, so a node that takes a shard over builds it from its own copy of the
//! catalog, with the stored vectors: nothing crosses the network and nothing is embedded
//! again. Unlike raft voters, a shard follows the live members: a node gossip declares dead
//! loses its shards to the others at once, since rebuilding derived data is cheap and a
//! search must not wait for the node to come back.
//!
//! A node gives a shard up only once at least as many copies on other nodes serve reads
//! as the placement wants, so a move never leaves a shard unserved; a draining node gives
//! every shard up that way before it exits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::membership::Member;
use crate::partition::{PartitionId, placement};
use crate::raft_types::{NodeId, node_id_of};
use crate::routing::Cluster;

/// Added to a shard's number for its placement key, so shards spread independently of the
/// raft groups that share the low numbers.
const PLACEMENT_KEY_BASE: PartitionId = 1_000;

/// The nodes a shard may be placed on: live, admitted, not draining, with the index role.
pub(crate) fn index_nodes(members: &[Member], admitted: &BTreeSet<String>) -> Vec<NodeId> {
    members
        .iter()
        .filter(|member| admitted.contains(&member.name) && !member.draining)
        .filter(|member| member.roles.split(',').any(|role| role == "index"))
        .map(|member| node_id_of(&member.name))
        .collect()
}

/// The nodes that hold each shard. Every shard ranks the nodes by rendezvous hashing;
/// copies are handed out in rounds, each shard's first choice first, then its second, and
/// so on, skipping nodes that already hold their share (`S × R / N` shards, one more for
/// `S × R mod N` of them). Rendezvous alone left one node of four with 6 of 8 shards, where
/// the share is 4. Every node computes the same table from the same members.
fn shard_table(nodes: &[NodeId], shard_count: usize, replicas: usize) -> Vec<Vec<NodeId>> {
    let mut nodes = nodes.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    let copies = replicas.min(nodes.len());
    let mut holders: Vec<Vec<NodeId>> = vec![Vec::new(); shard_count];
    if copies == 0 {
        return holders;
    }
    let rankings: Vec<Vec<NodeId>> = (0..shard_count)
        .map(|shard| {
            let key = PLACEMENT_KEY_BASE.saturating_add(u16::try_from(shard).unwrap_or(u16::MAX));
            placement(key, &nodes, nodes.len())
        })
        .collect();
    let mut load = Load::new(shard_count * copies, nodes.len());
    for rank in 0..nodes.len() {
        for (shard, ranking) in rankings.iter().enumerate() {
            let node = ranking[rank];
            if holders[shard].len() < copies && load.has_room(node) {
                holders[shard].push(node);
                load.add(node);
            }
        }
    }
    // A shard left short has only nodes with room that already hold it: one of them takes
    // over another shard's copy from a full node, which then holds this shard instead.
    for shard in 0..shard_count {
        while holders[shard].len() < copies {
            if let Some((other, full, spare)) = swap_for(shard, &holders, &load) {
                let at = holders[other].iter().position(|node| *node == full);
                holders[other][at.expect("the full node holds the other shard")] = spare;
                load.add(spare);
                holders[shard].push(full);
                continue;
            }
            // None (never seen): the first choice that does not hold it, above its share.
            let node = rankings[shard]
                .iter()
                .find(|node| !holders[shard].contains(node))
                .copied()
                .expect("fewer copies than nodes");
            holders[shard].push(node);
            load.add(node);
        }
    }
    holders
}

/// For `shard`, short of a copy: another shard, a node that holds it but not `shard`, and
/// a node with room that holds `shard` but not the other one.
fn swap_for(shard: usize, holders: &[Vec<NodeId>], load: &Load) -> Option<(usize, NodeId, NodeId)> {
    let spares: Vec<NodeId> = holders[shard]
        .iter()
        .copied()
        .filter(|node| load.has_room(*node))
        .collect();
    for (other, other_holders) in holders.iter().enumerate() {
        for full in other_holders {
            if holders[shard].contains(full) {
                continue;
            }
            if let Some(spare) = spares.iter().find(|spare| !other_holders.contains(spare)) {
                return Some((other, *full, *spare));
            }
        }
    }
    None
}

/// How many shards each node was given, against its share.
struct Load {
    held: BTreeMap<NodeId, usize>,
    share: usize,
    /// How many nodes may hold one more than `share`.
    extra: usize,
}

impl Load {
    fn new(copies: usize, nodes: usize) -> Self {
        Self {
            held: BTreeMap::new(),
            share: copies / nodes,
            extra: copies % nodes,
        }
    }

    fn has_room(&self, node: NodeId) -> bool {
        let held = self.held.get(&node).copied().unwrap_or(0);
        let above_share = self.held.values().filter(|h| **h > self.share).count();
        held < self.share || (held == self.share && above_share < self.extra)
    }

    fn add(&mut self, node: NodeId) {
        *self.held.entry(node).or_default() += 1;
    }
}

/// The shards `me` should hold among `shard_count`.
pub(crate) fn placed_on(
    me: NodeId,
    nodes: &[NodeId],
    shard_count: usize,
    replicas: usize,
) -> BTreeSet<usize> {
    shard_table(nodes, shard_count, replicas)
        .into_iter()
        .enumerate()
        .filter(|(_, holders)| holders.contains(&me))
        .map(|(shard, _)| shard)
        .collect()
}

/// What `me` should hold now: the shards placed on it, and those it holds that fewer
/// copies elsewhere serve than the placement wants.
pub(crate) fn next_held(
    me: NodeId,
    nodes: &[NodeId],
    replicas: usize,
    held: &BTreeSet<usize>,
    shard_count: usize,
    served_elsewhere: impl Fn(usize) -> usize,
) -> BTreeSet<usize> {
    let table = shard_table(nodes, shard_count, replicas);
    let mut next = placed_on(me, nodes, shard_count, replicas);
    for shard in held {
        let holders = table.get(*shard).map_or(&[][..], Vec::as_slice);
        let wanted = holders.iter().filter(|node| **node != me).count();
        if served_elsewhere(*shard) < wanted.max(1) {
            next.insert(*shard);
        }
    }
    next
}

impl Cluster {
    /// Moves this node's index towards what the placement wants, one move at a time, in the
    /// background: building a shard can take a while, and the rebalancing loop must not
    /// wait for it.
    pub(crate) fn place_index_shards(
        self: &Arc<Self>,
        members: &[Member],
        admitted: &BTreeSet<String>,
    ) {
        if self.index_move_in_flight.load(Ordering::Acquire) {
            return;
        }
        let inkling = self.replicas.actors().clone();
        let held = inkling.held_shards();
        let next = next_held(
            self.replicas.me(),
            &index_nodes(members, admitted),
            self.index_replicas,
            &held,
            inkling.shard_count(),
            |shard| inkling.shard_served_elsewhere(shard),
        );
        if next == held {
            return;
        }
        self.index_move_in_flight.store(true, Ordering::Release);
        let cluster = self.clone();
        tokio::spawn(async move {
            if let Err(error) = inkling.hold_shards(next).await {
                tracing::warn!(%error, "moving index shards failed; retrying later");
            }
            cluster.index_move_in_flight.store(false, Ordering::Release);
        });
    }

    /// What a draining node's index still waits for: each shard it holds, with how many
    /// copies elsewhere serve it.
    pub(crate) fn index_drain_waits(&self) -> Vec<String> {
        let inkling = self.replicas.actors();
        inkling
            .held_shards()
            .into_iter()
            .map(|shard| {
                let elsewhere = inkling.shard_served_elsewhere(shard);
                format!("index shard {shard}: held here until enough copies elsewhere serve it ({elsewhere} do)")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(list: &[usize]) -> BTreeSet<usize> {
        list.iter().copied().collect()
    }

    #[test]
    fn each_shard_goes_to_r_nodes_and_each_node_holds_about_r_over_n() {
        let nodes = [11, 22, 33, 44];
        // (shards, replicas, the most any node may hold)
        let cases = [(8, 2, 4), (8, 1, 2), (16, 2, 8), (8, 4, 8), (8, 3, 6)];
        for (count, replicas, at_most) in cases {
            let mut copies = vec![0; count];
            for node in nodes {
                let held = placed_on(node, &nodes, count, replicas);
                assert!(
                    held.len() <= at_most,
                    "{count}/{replicas}: {node} holds {held:?}"
                );
                for shard in held {
                    copies[shard] += 1;
                }
            }
            assert!(
                copies.iter().all(|c| *c == replicas),
                "{count}/{replicas}: {copies:?}"
            );
        }
    }

    #[test]
    fn copies_that_do_not_divide_evenly_differ_by_one_at_most() {
        // (nodes, shards, replicas)
        let cases: [(&[NodeId], usize, usize); 3] = [
            (&[11, 22, 33], 8, 2),
            (&[11, 22, 33], 4, 2),
            (&[11, 22, 33, 44, 55], 8, 3),
        ];
        for (nodes, count, replicas) in cases {
            let mut loads: Vec<usize> = nodes
                .iter()
                .map(|node| placed_on(*node, nodes, count, replicas).len())
                .collect();
            loads.sort_unstable();
            assert_eq!(loads.iter().sum::<usize>(), count * replicas, "{loads:?}");
            assert!(
                loads[loads.len() - 1] - loads[0] <= 1,
                "{count}/{replicas}: {loads:?}"
            );
        }
    }

    #[test]
    fn a_joining_node_moves_few_copies() {
        let before = [11, 22, 33, 44];
        let after = [11, 22, 33, 44, 55];
        // (shards, replicas, the most copies that may move: half of them; the bound on
        // each node's load moves more than the new node's share, which is the least)
        let cases = [(8, 2, 8), (16, 2, 16), (16, 3, 24)];
        for (count, replicas, at_most) in cases {
            let old = shard_table(&before, count, replicas);
            let new = shard_table(&after, count, replicas);
            let moved: usize = old
                .iter()
                .zip(&new)
                .map(|(old, new)| new.iter().filter(|node| !old.contains(node)).count())
                .sum();
            println!("{count}/{replicas}: {moved} copies moved");
            assert!(moved <= at_most, "{count}/{replicas}: {moved} copies moved");
        }
    }

    #[test]
    fn a_node_alone_holds_every_shard() {
        assert_eq!(placed_on(11, &[11], 4, 2), shards(&[0, 1, 2, 3]));
        assert_eq!(placed_on(11, &[], 4, 2), shards(&[]));
    }

    #[test]
    fn a_shard_is_given_up_only_once_enough_copies_elsewhere_serve_it() {
        let nodes = [11, 22, 33, 44];
        let me = 11;
        let mine = placed_on(me, &nodes, 8, 2);
        let theirs: BTreeSet<usize> = (0..8).filter(|s| !mine.contains(s)).collect();
        let everything: BTreeSet<usize> = (0..8).collect();
        // (name, copies elsewhere of each shard, what `me` holds next)
        let cases = [
            ("nobody else serves yet", 0, everything.clone()),
            ("one copy elsewhere is not enough", 1, everything.clone()),
            ("two copies elsewhere", 2, mine.clone()),
        ];
        for (name, elsewhere, expected) in cases {
            let next = next_held(me, &nodes, 2, &everything, 8, |_| elsewhere);
            assert_eq!(next, expected, "{name}");
        }
        assert!(!theirs.is_empty());
        // A draining node (not among the index nodes) keeps everything until others serve.
        let others = [22, 33, 44];
        assert_eq!(next_held(me, &others, 2, &mine, 8, |_| 1), mine);
        assert_eq!(next_held(me, &others, 2, &mine, 8, |_| 2), shards(&[]));
    }
}
