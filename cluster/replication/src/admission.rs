//! Who may hold replicas: only admitted nodes become voters or learners of a raft group, so
//! a node that merely holds the cluster secret and gossips receives no data.
//!
//! A node is admitted when it is a founder (named in this node's configured initial
//! members), when some raft group this node knows already holds it (it was admitted
//! before), or when a live admitted member vouches for it in gossip, which a member does
//! for every node its operator admitted (`inkling cluster admit NAME`). Gossip is signed
//! with the cluster secret, so only secret holders can vouch, and a vouch counts only from
//! a member that is itself admitted: a node cannot admit itself.

use std::collections::BTreeSet;

use crate::membership::Member;
use crate::raft_types::{NodeId, node_id_of};
use crate::routing::Cluster;

/// The longest node name an operator may admit.
const MAX_NAME_BYTES: usize = 128;

/// Why an admission was refused or failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdmitError {
    /// The name cannot be a node's: the caller's mistake (a 400).
    #[error("cannot admit {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// This node could not record the admission (a 503: try again, or another node).
    #[error("the admission was not recorded: {0}")]
    NotRecorded(String),
}

/// What admission is decided from.
#[derive(Debug, Default)]
pub(crate) struct AdmissionFacts {
    /// The initial members this node's config names.
    pub founders: BTreeSet<String>,
    /// Every node, voter or learner, of the raft groups as this node knows them.
    pub raft_nodes: BTreeSet<NodeId>,
    /// Every live member's name, with the names it vouches for.
    pub vouches: Vec<(String, Vec<String>)>,
}

/// The admitted names among the live members and those they vouch for. Vouches count only
/// from admitted members, so admission spreads from founders and raft members outward.
pub(crate) fn admitted(facts: &AdmissionFacts) -> BTreeSet<String> {
    let mut admitted: BTreeSet<String> = facts.founders.clone();
    admitted.extend(
        facts
            .vouches
            .iter()
            .map(|(name, _)| name)
            .filter(|name| facts.raft_nodes.contains(&node_id_of(name)))
            .cloned(),
    );
    loop {
        let newly: Vec<String> = facts
            .vouches
            .iter()
            .filter(|(voucher, _)| admitted.contains(voucher))
            .flat_map(|(_, vouched)| vouched)
            .filter(|name| !admitted.contains(*name))
            .cloned()
            .collect();
        if newly.is_empty() {
            return admitted;
        }
        admitted.extend(newly);
    }
}

/// Whether `name` could be a node's name.
fn check_name(name: &str) -> Result<(), AdmitError> {
    let reason = if name.is_empty() {
        Some("a node name cannot be empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("a node name has at most 128 bytes")
    } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("a node name has no spaces or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(AdmitError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Cluster {
    /// Admits the node named `name` into the cluster: it is recorded durably on this node,
    /// which vouches for it in gossip from then on, so the leaders place replicas on it
    /// once it is live (or at once, when it already is). Admitting a node twice, or one not
    /// started yet, is fine.
    pub async fn admit(&self, name: &str) -> Result<(), AdmitError> {
        check_name(name)?;
        self.membership
            .record_admission(name)
            .await
            .map_err(|error| AdmitError::NotRecorded(format!("{error:#}")))?;
        tracing::info!(node = name, "admitted");
        Ok(())
    }

    /// Live members that gossip but are not admitted, by name: they hold no replica until
    /// an operator admits them (for `inkling status`).
    pub(crate) async fn waiting_for_admission(&self) -> Vec<String> {
        let admitted = admitted(&self.admission_facts().await);
        let mut waiting: Vec<String> = self
            .membership
            .live_members()
            .await
            .into_iter()
            .map(|member| member.name)
            .filter(|name| !admitted.contains(name))
            .collect();
        waiting.sort();
        waiting
    }

    /// What this node knows now to decide who is admitted.
    async fn admission_facts(&self) -> AdmissionFacts {
        let raft_nodes = self
            .replicas
            .rafts()
            .flat_map(|(_, raft)| {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                let membership = metrics.membership_config.membership();
                membership.nodes().map(|(id, _)| *id).collect::<Vec<_>>()
            })
            .collect();
        AdmissionFacts {
            founders: self.membership.founders(),
            raft_nodes,
            vouches: self.membership.vouches().await,
        }
    }

    /// The names of the admitted nodes among `members` and those they vouch for; live
    /// members left out are logged once each, with what admits them.
    pub(crate) async fn admitted_names(
        &self,
        members: &[Member],
        reported: &mut BTreeSet<String>,
    ) -> BTreeSet<String> {
        let admitted = admitted(&self.admission_facts().await);
        for member in members {
            if !admitted.contains(&member.name) && reported.insert(member.name.clone()) {
                tracing::warn!(
                    node = %member.name,
                    addr = %member.http_addr,
                    "a node gossips but is not admitted: it gets no replica until an operator runs `inkling cluster admit {}`",
                    member.name
                );
            }
        }
        reported.retain(|name| !admitted.contains(name));
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        name: &'static str,
        founders: &'static [&'static str],
        raft_nodes: &'static [&'static str],
        /// Live members and whom each vouches for.
        vouches: &'static [(&'static str, &'static [&'static str])],
        admitted: &'static [&'static str],
    }

    fn check(case: &Case) {
        let names = |names: &[&str]| -> BTreeSet<String> {
            names.iter().map(|name| name.to_string()).collect()
        };
        let facts = AdmissionFacts {
            founders: names(case.founders),
            raft_nodes: case
                .raft_nodes
                .iter()
                .map(|name| node_id_of(name))
                .collect(),
            vouches: case
                .vouches
                .iter()
                .map(|(voucher, vouched)| {
                    let vouched = vouched.iter().map(|name| name.to_string()).collect();
                    (voucher.to_string(), vouched)
                })
                .collect(),
        };
        assert_eq!(admitted(&facts), names(case.admitted), "{}", case.name);
    }

    #[test]
    fn founders_raft_members_and_those_they_vouch_for_are_admitted() {
        let cases = [
            Case {
                name: "founders are admitted, live or not",
                founders: &["a", "b", "c"],
                raft_nodes: &[],
                vouches: &[("a", &[]), ("x", &[])],
                admitted: &["a", "b", "c"],
            },
            Case {
                name: "a live node a raft group holds is admitted",
                founders: &["a"],
                raft_nodes: &["a", "d"],
                vouches: &[("a", &[]), ("d", &[])],
                admitted: &["a", "d"],
            },
            Case {
                name: "a node an admitted member vouches for is admitted",
                founders: &["a"],
                raft_nodes: &[],
                vouches: &[("a", &["d"]), ("d", &[])],
                admitted: &["a", "d"],
            },
            Case {
                name: "a node is admitted before it is live",
                founders: &["a"],
                raft_nodes: &[],
                vouches: &[("a", &["d"])],
                admitted: &["a", "d"],
            },
            Case {
                name: "admission spreads through admitted vouchers",
                founders: &["a"],
                raft_nodes: &[],
                vouches: &[("e", &["f"]), ("d", &["e"]), ("a", &["d"])],
                admitted: &["a", "d", "e", "f"],
            },
            Case {
                name: "a node cannot vouch for itself",
                founders: &["a"],
                raft_nodes: &[],
                vouches: &[("a", &[]), ("x", &["x"])],
                admitted: &["a"],
            },
            Case {
                name: "outsiders vouching for each other stay out",
                founders: &["a"],
                raft_nodes: &["a"],
                vouches: &[("a", &[]), ("x", &["y"]), ("y", &["x"])],
                admitted: &["a"],
            },
            Case {
                name: "a joiner nobody admitted stays out",
                founders: &[],
                raft_nodes: &["a", "b"],
                vouches: &[("a", &[]), ("b", &[]), ("j", &[])],
                admitted: &["a", "b"],
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn names_that_cannot_be_nodes_are_refused() {
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        let cases: &[(&str, bool)] = &[
            ("node-4", true),
            ("n", true),
            ("", false),
            (&long, false),
            ("node 4", false),
            ("node\u{0}4", false),
            ("node-4\n", false),
        ];
        for (name, valid) in cases {
            assert_eq!(check_name(name).is_ok(), *valid, "{name:?}");
        }
    }
}
