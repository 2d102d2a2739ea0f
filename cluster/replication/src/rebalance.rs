//! Moving replicas as nodes join and drain.
//!
//! Each node, for every group it leads, compares the group's voters with the placement
//! over the live admitted members (`admission`) that are not draining and have the group's
//! role (`sessions` for user partitions, `index` for the catalog), by rendezvous hashing,
//! so a joining node takes over about one in N placements. A node that should hold the group first joins as
//! a learner and catches up (openraft replicates the log or sends a snapshot: the data moves
//! before ownership does); only then does the leader replace the voter set. The leader
//! never waits for a catch-up: it looks again on its next pass, so a plan that changes
//! meanwhile (the new node starts draining, another joins) takes effect within a pass
//! instead of after every pending catch-up of every group it leads. A voter that
//! stopped answering stays a candidate: membership changes only when a live node outranks
//! it or it drains, never because the failure detector suspects it. Every live admitted
//! member also learns every group it is not a voter of: the catalog, so every node can
//! build any index shard the placement gives it (`index_placement`), and the user
//! partitions, so every node's online signals see every committed event. A member that
//! is not admitted is neither placed nor taught anything: it receives no data.

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
use crate::status::peer_status;

/// How often a leader checks its groups' placement.
const REBALANCE_INTERVAL: Duration = Duration::from_millis(1000);
/// How far behind the leader's log a new replica may be when it becomes a voter: about
/// one append's worth, so a busy group's steady trickle does not hold the move up forever.
const CAUGHT_UP_SLACK: u64 = crate::bootstrap::ENTRIES_PER_APPEND;
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

/// The admitted members a group's voters may be placed on, those that learn it, and those
/// leaving.
struct Candidates {
    placeable: BTreeMap<NodeId, BasicNode>,
    learning: BTreeMap<NodeId, BasicNode>,
    draining: BTreeSet<NodeId>,
}

impl Candidates {
    fn for_group(group: PartitionId, members: &[Member], admitted: &BTreeSet<String>) -> Self {
        let mut candidates = Self {
            placeable: BTreeMap::new(),
            learning: BTreeMap::new(),
            draining: BTreeSet::new(),
        };
        for member in members {
            if !admitted.contains(&member.name) {
                continue;
            }
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

/// How many entries each replica of a group this node leads trails its log; empty when
/// this node does not lead it. A replica nothing has been matched with yet trails the
/// whole log.
fn replication_lags(raft: &Raft) -> BTreeMap<NodeId, u64> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let last = metrics.last_log_index.unwrap_or(0);
    let Some(replication) = &metrics.replication else {
        return BTreeMap::new();
    };
    replication
        .iter()
        .map(|(id, matched)| {
            let matched = matched.map_or(0, |log_id| log_id.index);
            (*id, last.saturating_sub(matched))
        })
        .collect()
}

/// How many entries the furthest-behind replica of a group this node leads trails its log.
fn replication_lag(raft: &Raft) -> u64 {
    replication_lags(raft).into_values().max().unwrap_or(0)
}

/// Whether every new voter has caught up; one the leader replicates nothing to yet has not.
fn caught_up<'a>(
    new_voters: impl IntoIterator<Item = &'a NodeId>,
    lags: &BTreeMap<NodeId, u64>,
) -> bool {
    new_voters
        .into_iter()
        .all(|id| lags.get(id).is_some_and(|lag| *lag <= CAUGHT_UP_SLACK))
}

/// What a group's raft membership is now: its voters, and every node it holds (voters and
/// learners) with its address.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GroupMembers {
    pub voters: BTreeSet<NodeId>,
    pub nodes: BTreeMap<NodeId, BasicNode>,
}

impl GroupMembers {
    fn of(raft: &Raft) -> Self {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        Self {
            voters: membership.voter_ids().collect(),
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect(),
        }
    }
}

/// The changes a group's leader makes, in this order: each new voter joins as a learner
/// (`catch_up`), the voter set is replaced (`voters`) once they have all caught up, every
/// other live node learns the group (`learners`), and draining nodes that are no voters
/// leave it (`remove`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    pub catch_up: Vec<(NodeId, BasicNode)>,
    pub voters: Option<BTreeSet<NodeId>>,
    pub learners: Vec<(NodeId, BasicNode)>,
    pub remove: BTreeSet<NodeId>,
}

/// What the leader of `group` should change, given the live members gossip lists, the names
/// admitted, and the group's membership now.
pub(crate) fn plan(
    group: PartitionId,
    members: &[Member],
    admitted: &BTreeSet<String>,
    current: &GroupMembers,
) -> Changes {
    let mut candidates = Candidates::for_group(group, members, admitted);
    // A voter gossip does not list stays placeable: no automatic downing.
    let listed: BTreeSet<NodeId> = members.iter().map(|m| node_id_of(&m.name)).collect();
    for voter in &current.voters {
        if !listed.contains(voter)
            && let Some(node) = current.nodes.get(voter)
        {
            candidates.placeable.insert(*voter, node.clone());
        }
    }
    let ids: Vec<NodeId> = candidates.placeable.keys().copied().collect();
    let desired: BTreeSet<NodeId> = placement(group, &ids, REPLICAS).into_iter().collect();
    let mut changes = Changes::default();
    if !desired.is_empty() && desired != current.voters {
        changes.catch_up = desired
            .difference(&current.voters)
            .map(|id| (*id, candidates.placeable[id].clone()))
            .collect();
        changes.voters = Some(desired.clone());
    }
    // Every live node that is not a voter learns the group, whatever its roles: every node
    // keeps the whole catalog, to build whichever index shards it is given, and every
    // node's online signals learn from every committed event, so recommendations do not get
    // worse as nodes are added. Draining nodes stop learning.
    changes.learners = candidates
        .learning
        .iter()
        .filter(|(id, _)| !current.nodes.contains_key(id) && !desired.contains(id))
        .map(|(id, node)| (*id, node.clone()))
        .collect();
    changes.remove = candidates
        .draining
        .iter()
        .filter(|id| current.nodes.contains_key(id) && !desired.contains(id))
        .copied()
        .collect();
    changes
}

/// Makes the changes [`plan`] proposes for a group this node leads.
async fn rebalance_group(
    group: PartitionId,
    raft: &Raft,
    members: &[Member],
    admitted: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let current = GroupMembers::of(raft);
    let changes = plan(group, members, admitted, &current);
    for (id, node) in &changes.catch_up {
        if current.nodes.contains_key(id) {
            continue;
        }
        tracing::info!(group, node = %node.addr, "adding a replica");
        // Not blocking: openraft catches it up in the background, and a later pass promotes it.
        tokio::time::timeout(CHANGE_TIMEOUT, raft.add_learner(*id, node.clone(), false))
            .await
            .context("adding a new replica did not commit in time")??;
    }
    let new_voters = changes.catch_up.iter().map(|(id, _)| id);
    if let Some(desired) = changes.voters
        && caught_up(new_voters, &replication_lags(raft))
    {
        tracing::info!(group, ?desired, "moving the voters");
        // Displaced voters stay on as learners; draining ones are removed below.
        let change = ChangeMembers::ReplaceAllVoters(desired);
        tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, true))
            .await
            .context("the membership change did not commit in time")??;
    }
    for (id, node) in changes.learners {
        tokio::time::timeout(CHANGE_TIMEOUT, raft.add_learner(id, node, false))
            .await
            .context("adding a learner did not commit in time")??;
    }
    if !changes.remove.is_empty() {
        let change = ChangeMembers::RemoveNodes(changes.remove);
        tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, true))
            .await
            .context("removing draining learners did not commit in time")??;
    }
    Ok(())
}

impl Cluster {
    /// Runs until the node stops.
    pub(crate) async fn rebalance_forever(self: Arc<Self>) {
        let mut reported_outsiders = BTreeSet::new();
        loop {
            tokio::time::sleep(REBALANCE_INTERVAL).await;
            if self.replicas.is_stopping() {
                return;
            }
            let members = self.membership.live_members().await;
            let admitted = self.admitted_names(&members, &mut reported_outsiders).await;
            let mut most_behind = 0;
            for group in 0..=CATALOG_GROUP {
                let Some(raft) = self.replicas.leading(group) else {
                    continue;
                };
                most_behind = most_behind.max(replication_lag(&raft));
                if let Err(error) = rebalance_group(group, &raft, &members, &admitted).await {
                    tracing::warn!(group, error = %format!("{error:#}"), "rebalancing failed; retrying later");
                }
            }
            inkling_ops::metrics::RAFT_REPLICATION_LAG.set(most_behind as i64);
            self.place_index_shards(&members, &admitted);
            self.notice_if_drained().await;
        }
    }

    /// A draining node lets `drained` resolve once no group's leader counts it as a voter
    /// or learner and it holds no index shard. Only leaders know: a node removed from a group hears nothing more of it.
    /// What it still waits for is kept for the status and logged when it changes, so a
    /// drain that stalls says why.
    async fn notice_if_drained(&self) {
        if !self.draining.load(Ordering::Relaxed) {
            return;
        }
        let waits = self.drain_waits().await;
        let changed = *self.drain_waiting_for.lock() != waits;
        if changed && !waits.is_empty() {
            tracing::info!(waiting_for = ?waits, "draining");
        }
        *self.drain_waiting_for.lock() = waits.clone();
        if waits.is_empty() {
            tracing::info!("drained: no group holds this node any more");
            self.drained.notify_one();
        }
    }

    /// What a draining node's exit still waits for: groups it leads, index shards not yet
    /// served elsewhere, peers that did not answer, and leaders that still count it as a
    /// voter or learner. Empty once drained.
    async fn drain_waits(&self) -> Vec<String> {
        let led: Vec<String> = (0..=CATALOG_GROUP)
            .filter(|group| self.replicas.leading(*group).is_some())
            .map(|group| format!("group {group}: this node still leads it"))
            .collect();
        if !led.is_empty() {
            return led;
        }
        let me = self.replicas.addr().to_string();
        let mut waits = self.index_drain_waits();
        for member in self.membership.live_members().await {
            if member.name == self.replicas.name() {
                continue;
            }
            let Some(status) = peer_status(&self.http, &member.http_addr, STATUS_TIMEOUT).await
            else {
                waits.push(format!("{}: did not answer its status", member.name));
                continue;
            };
            for group in &status.partitions {
                let holds_me = group.state == "Leader"
                    && (group.voters.contains(&me) || group.learners.contains(&me));
                if holds_me {
                    waits.push(format!(
                        "group {}: {} leads it and still counts this node as a replica",
                        group.partition, member.name
                    ));
                }
            }
        }
        waits
    }

    /// What a draining node still waits for before it exits; empty when it is not draining
    /// or is done.
    pub fn drain_waiting_for(&self) -> Vec<String> {
        self.drain_waiting_for.lock().clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A live member by name, with its roles; `draining` marks one leaving.
    fn member(name: &str, roles: &str, draining: bool) -> Member {
        Member {
            name: name.to_string(),
            http_addr: address(name),
            roles: roles.to_string(),
            draining,
            generation: 1,
            actor_addr: None,
            public_addr: None,
        }
    }

    fn address(name: &str) -> String {
        format!("{name}:7000")
    }

    fn group_members(voters: &[&str], learners: &[&str]) -> GroupMembers {
        let node = |name: &&str| (node_id_of(name), BasicNode::new(address(name)));
        GroupMembers {
            voters: voters.iter().map(|name| node_id_of(name)).collect(),
            nodes: voters.iter().chain(learners).map(node).collect(),
        }
    }

    /// [`Changes`] by node name, in the order they are made.
    #[derive(Debug, Default, PartialEq)]
    struct Named {
        catch_up: Vec<String>,
        voters: Option<Vec<String>>,
        learners: Vec<String>,
        remove: Vec<String>,
    }

    fn named(changes: Changes, names: &[&str]) -> Named {
        let name = |id: &NodeId| {
            let found = names.iter().find(|name| node_id_of(name) == *id);
            found.expect("a node of the case").to_string()
        };
        let sorted = |ids: &BTreeSet<NodeId>| {
            let mut names: Vec<String> = ids.iter().map(name).collect();
            names.sort();
            names
        };
        let added = |nodes: Vec<(NodeId, BasicNode)>| {
            let added: Vec<String> = nodes.iter().map(|(id, _)| name(id)).collect();
            for ((id, node), added) in nodes.iter().zip(&added) {
                assert_eq!(node.addr, address(added), "{id} joins at its own address");
            }
            added
        };
        Named {
            catch_up: added(changes.catch_up),
            voters: changes.voters.as_ref().map(sorted),
            learners: added(changes.learners),
            remove: sorted(&changes.remove),
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    struct Case {
        name: &'static str,
        group: PartitionId,
        /// Live members: (name, roles, draining).
        members: &'static [(&'static str, &'static str, bool)],
        voters: &'static [&'static str],
        learners: &'static [&'static str],
        /// Live members that are not admitted.
        outsiders: &'static [&'static str],
        expected: Named,
    }

    fn check(case: &Case) {
        let members: Vec<Member> = case
            .members
            .iter()
            .map(|(name, roles, draining)| member(name, roles, *draining))
            .collect();
        let current = group_members(case.voters, case.learners);
        let mut everyone: Vec<&str> = case.members.iter().map(|(name, _, _)| *name).collect();
        everyone.extend(case.voters.iter().chain(case.learners));
        let admitted: BTreeSet<String> = case
            .members
            .iter()
            .map(|(name, _, _)| name.to_string())
            .filter(|name| !case.outsiders.contains(&name.as_str()))
            .collect();
        let changes = named(plan(case.group, &members, &admitted, &current), &everyone);
        assert_eq!(changes, case.expected, "{}", case.name);
    }

    #[test]
    fn leaders_propose_the_changes_placement_asks_for() {
        const USERS: PartitionId = 0;
        let cases = [
            Case {
                name: "a placed group is left alone",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("c", "sessions", false),
                ],
                voters: &["a", "b", "c"],
                learners: &[],
                outsiders: &[],
                expected: Named::default(),
            },
            Case {
                name: "a joining node catches up before it votes",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("c", "sessions", false),
                ],
                voters: &["a", "b"],
                learners: &[],
                outsiders: &[],
                expected: Named {
                    catch_up: names(&["c"]),
                    voters: Some(names(&["a", "b", "c"])),
                    ..Named::default()
                },
            },
            Case {
                name: "a learner that should vote catches up again before it votes",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("c", "sessions", false),
                ],
                voters: &["a", "b"],
                learners: &["c"],
                outsiders: &[],
                expected: Named {
                    catch_up: names(&["c"]),
                    voters: Some(names(&["a", "b", "c"])),
                    ..Named::default()
                },
            },
            Case {
                name: "a node without the voter role only learns",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("g", "gateway", false),
                ],
                voters: &["a", "b"],
                learners: &[],
                outsiders: &[],
                expected: Named {
                    learners: names(&["g"]),
                    ..Named::default()
                },
            },
            Case {
                name: "a learner already held is not added again",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("g", "gateway", false),
                ],
                voters: &["a", "b"],
                learners: &["g"],
                outsiders: &[],
                expected: Named::default(),
            },
            Case {
                name: "the catalog's voters need the index role",
                group: CATALOG_GROUP,
                members: &[("a", "index", false), ("b", "sessions", false)],
                voters: &["a"],
                learners: &[],
                outsiders: &[],
                expected: Named {
                    learners: names(&["b"]),
                    ..Named::default()
                },
            },
            Case {
                name: "a draining voter is replaced, then removed",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("c", "sessions", false),
                    ("d", "sessions", true),
                ],
                voters: &["a", "b", "d"],
                learners: &[],
                outsiders: &[],
                expected: Named {
                    catch_up: names(&["c"]),
                    voters: Some(names(&["a", "b", "c"])),
                    remove: names(&["d"]),
                    ..Named::default()
                },
            },
            Case {
                name: "a draining learner is removed",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("c", "sessions", false),
                    ("d", "sessions,index", true),
                ],
                voters: &["a", "b", "c"],
                learners: &["d"],
                outsiders: &[],
                expected: Named {
                    remove: names(&["d"]),
                    ..Named::default()
                },
            },
            Case {
                name: "a draining node the group does not hold is not added",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("d", "sessions", true),
                ],
                voters: &["a", "b"],
                learners: &[],
                outsiders: &[],
                expected: Named::default(),
            },
            Case {
                name: "a voter gossip does not list keeps its vote",
                group: USERS,
                members: &[("a", "sessions", false), ("b", "sessions", false)],
                voters: &["a", "b", "c"],
                learners: &[],
                outsiders: &[],
                expected: Named::default(),
            },
            Case {
                name: "a member not admitted is neither placed nor taught",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("c", "sessions", false),
                    ("x", "sessions,index", false),
                ],
                voters: &["a", "b", "c"],
                learners: &[],
                outsiders: &["x"],
                expected: Named::default(),
            },
            Case {
                name: "a group short of voters is filled with admitted members only",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("c", "sessions", false),
                    ("x", "sessions", false),
                    ("y", "sessions", false),
                ],
                voters: &["a", "b"],
                learners: &[],
                outsiders: &["x", "y"],
                expected: Named {
                    catch_up: names(&["c"]),
                    voters: Some(names(&["a", "b", "c"])),
                    ..Named::default()
                },
            },
            Case {
                name: "a lone outsider never gets the catalog",
                group: CATALOG_GROUP,
                members: &[("a", "index", false), ("x", "index", false)],
                voters: &["a"],
                learners: &[],
                outsiders: &["x"],
                expected: Named::default(),
            },
            Case {
                name: "a draining outsider is ignored",
                group: USERS,
                members: &[
                    ("a", "sessions", false),
                    ("b", "sessions", false),
                    ("x", "sessions", true),
                ],
                voters: &["a", "b"],
                learners: &[],
                outsiders: &["x"],
                expected: Named::default(),
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn new_voters_are_promoted_only_once_caught_up() {
        let slack = CAUGHT_UP_SLACK;
        // (case, each new voter's lag where the leader replicates to it, promoted)
        let cases: [(&str, &[Option<u64>], bool); 6] = [
            ("no new voter", &[], true),
            ("in step", &[Some(0)], true),
            ("one append behind", &[Some(slack)], true),
            ("further behind", &[Some(slack + 1)], false),
            ("not replicated to yet", &[None], false),
            ("one of two behind", &[Some(0), Some(5 * slack)], false),
        ];
        for (name, new_voters, expected) in cases {
            let ids: Vec<NodeId> = (0..new_voters.len() as NodeId).collect();
            let lags: BTreeMap<NodeId, u64> = ids
                .iter()
                .zip(new_voters)
                .filter_map(|(id, lag)| Some((*id, (*lag)?)))
                .collect();
            assert_eq!(caught_up(&ids, &lags), expected, "{name}");
        }
    }
}
