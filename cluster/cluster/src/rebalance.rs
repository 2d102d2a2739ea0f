//! Moving replicas as nodes join and drain.
//!
//! Each node, for every group it leads, compares the group's voters with the placement
//! over the live members that are not draining and have the group's role (`sessions` for
//! user partitions, `index` for the catalog), by rendezvous hashing, so a joining node
//! takes over about one in N placements. A node that should hold the group first joins as
//! a learner and catches up (openraft replicates the log or sends a snapshot: the data moves
//! before ownership does); only then does the leader replace the voter set. A voter that
//! stopped answering stays a candidate: membership changes only when a live node outranks
//! it or it drains, never because the failure detector suspects it. Every live member also
//! learns every group it is not a voter of: the catalog, so every node can search it, and
//! the user partitions, so every node's online signals see every committed event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use openraft::{BasicNode, ChangeMembers};

use crate::membership::Member;
use crate::partition::{CATALOG_GROUP, PartitionId, REPLICAS, placement};
use crate::raft_types::{NodeId, Raft, node_id_of};
use crate::routing::Cluster;

/// How often a leader checks its groups' placement.
const REBALANCE_INTERVAL: Duration = Duration::from_millis(1000);
/// How long a new replica may take to catch up before the move is retried later.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a membership change may take to commit before it is retried later.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a draining node waits for a peer's view of the cluster.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The role a node needs to be a voter of `group`: user partitions' leaders hold sessions,
/// and the catalog group's voters acknowledge product writes once indexed.
fn voter_role(group: PartitionId) -> &'static str {
    if group == CATALOG_GROUP {
        "index"
    } else {
        "sessions"
    }
}

/// The members a group's voters may be placed on, those that learn it, and those leaving.
struct Candidates {
    placeable: BTreeMap<NodeId, BasicNode>,
    learning: BTreeMap<NodeId, BasicNode>,
    draining: BTreeSet<NodeId>,
}

impl Candidates {
    fn for_group(group: PartitionId, members: &[Member]) -> Self {
        let mut candidates = Self {
            placeable: BTreeMap::new(),
            learning: BTreeMap::new(),
            draining: BTreeSet::new(),
        };
        for member in members {
            let id = node_id_of(&member.name);
            if member.draining {
                candidates.draining.insert(id);
                continue;
            }
            let node = BasicNode::new(&member.http_addr);
            if member
                .roles
                .split(',')
                .any(|role| role == voter_role(group))
            {
                candidates.placeable.insert(id, node.clone());
            }
            candidates.learning.insert(id, node);
        }
        candidates
    }
}

/// How many entries the furthest-behind replica of a group this node leads trails its log.
fn replication_lag(raft: &Raft) -> u64 {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let last = metrics.last_log_index.unwrap_or(0);
    let Some(replication) = &metrics.replication else {
        return 0;
    };
    replication
        .values()
        .map(|matched| last.saturating_sub(matched.map_or(0, |log_id| log_id.index)))
        .max()
        .unwrap_or(0)
}

impl Cluster {
    /// Runs until the node stops.
    pub(crate) async fn rebalance_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REBALANCE_INTERVAL).await;
            if self.is_stopping() {
                return;
            }
            let members = self.membership.live_members().await;
            let mut most_behind = 0;
            for group in 0..=CATALOG_GROUP {
                let Some(raft) = self.leading(group) else {
                    continue;
                };
                most_behind = most_behind.max(replication_lag(&raft));
                if let Err(error) = self.rebalance_group(group, &raft, &members).await {
                    tracing::warn!(group, error = %format!("{error:#}"), "rebalancing failed; retrying later");
                }
            }
            inkling_ops::metrics::RAFT_REPLICATION_LAG.set(most_behind as i64);
            self.notice_if_drained().await;
        }
    }

    /// This node's raft of the group, if it leads the group now.
    fn leading(&self, group: PartitionId) -> Option<Raft> {
        let raft = self.member_raft(group)?;
        let leads = raft.metrics().borrow().current_leader == Some(self.me);
        leads.then(|| raft.clone())
    }

    async fn rebalance_group(
        &self,
        group: PartitionId,
        raft: &Raft,
        members: &[Member],
    ) -> anyhow::Result<()> {
        let mut candidates = Candidates::for_group(group, members);
        let (voters, nodes) = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let nodes: BTreeMap<NodeId, BasicNode> = membership
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect();
            (voters, nodes)
        };
        // A voter gossip does not list stays placeable: no automatic downing.
        let listed: BTreeSet<NodeId> = members.iter().map(|m| node_id_of(&m.name)).collect();
        for voter in &voters {
            if !listed.contains(voter)
                && let Some(node) = nodes.get(voter)
            {
                candidates.placeable.insert(*voter, node.clone());
            }
        }
        let ids: Vec<NodeId> = candidates.placeable.keys().copied().collect();
        let desired: BTreeSet<NodeId> = placement(group, &ids, REPLICAS).into_iter().collect();
        if !desired.is_empty() && desired != voters {
            for id in desired.difference(&voters) {
                let node = candidates.placeable[id].clone();
                tracing::info!(group, node = %node.addr, "adding a replica");
                tokio::time::timeout(CATCH_UP_TIMEOUT, raft.add_learner(*id, node, true))
                    .await
                    .context("the new replica did not catch up in time")??;
            }
            tracing::info!(group, ?desired, "moving the voters");
            // Displaced voters stay on as learners; draining ones are removed below.
            let change = ChangeMembers::ReplaceAllVoters(desired.clone());
            tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, true))
                .await
                .context("the membership change did not commit in time")??;
        }
        self.keep_every_node_learning(raft, &candidates, &desired, &nodes)
            .await?;
        Ok(())
    }

    /// Every live node that is not a voter learns the group, whatever its roles: every node
    /// indexes the whole catalog, and every node's online signals learn from every
    /// committed event, so recommendations do not get worse as nodes are added. Draining
    /// nodes stop learning.
    async fn keep_every_node_learning(
        &self,
        raft: &Raft,
        candidates: &Candidates,
        voters: &BTreeSet<NodeId>,
        nodes: &BTreeMap<NodeId, BasicNode>,
    ) -> anyhow::Result<()> {
        for (id, node) in &candidates.learning {
            if !nodes.contains_key(id) && !voters.contains(id) {
                tokio::time::timeout(CHANGE_TIMEOUT, raft.add_learner(*id, node.clone(), false))
                    .await
                    .context("adding a learner did not commit in time")??;
            }
        }
        let leaving: BTreeSet<NodeId> = candidates
            .draining
            .iter()
            .filter(|id| nodes.contains_key(id) && !voters.contains(id))
            .copied()
            .collect();
        if !leaving.is_empty() {
            let change = ChangeMembers::RemoveNodes(leaving);
            tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, true))
                .await
                .context("removing draining learners did not commit in time")??;
        }
        Ok(())
    }

    /// A draining node lets `drained` resolve once no group's leader counts it as a voter
    /// or learner. Only leaders know: a node removed from a group hears nothing more of it.
    async fn notice_if_drained(&self) {
        if !self.draining.load(Ordering::Relaxed) {
            return;
        }
        if (0..=CATALOG_GROUP).any(|group| self.leading(group).is_some()) {
            return;
        }
        for member in self.membership.live_members().await {
            if member.name == self.name {
                continue;
            }
            let Some(status) = self.peer_status(&member.http_addr, STATUS_TIMEOUT).await else {
                return;
            };
            let holds_me = status.partitions.iter().any(|group| {
                group.state == "Leader"
                    && (group.voters.contains(&self.addr) || group.learners.contains(&self.addr))
            });
            if holds_me {
                return;
            }
        }
        self.drained.notify_one();
    }

    /// Starts draining: the node stops being placeable, so leaders move its replicas away;
    /// it keeps serving meanwhile.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.membership.set_draining(true).await;
    }

    /// Resolves once a draining node holds no replica any more.
    pub async fn drained(&self) {
        self.drained.notified().await;
    }
}
