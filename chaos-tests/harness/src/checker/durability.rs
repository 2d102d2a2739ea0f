//! (a) Nothing acknowledged is lost and (b) nothing is applied twice: every acknowledged key
//! must be in every node's reading of its user, exactly once. A profile a node could not
//! read back is unverified, and counts against (a).

use std::collections::{BTreeMap, HashSet};

use super::evidence::{ReadBack, ReadBacks};
use crate::workload::Journal;

/// How many lost events the findings name: the first few make the point.
const LOST_EXAMPLES: usize = 5;

/// What the read-backs showed about (a) and (b).
#[derive(Debug, Default)]
pub(super) struct Durability {
    /// Distinct acknowledged (user, key) pairs.
    pub events_acknowledged: usize,
    /// Acknowledged (user, key) pairs missing from a profile read through any node.
    pub lost: usize,
    /// Events applied more than once, over all users and nodes.
    pub duplicated: usize,
    /// Profiles a node could not read back.
    pub unverified: usize,
    pub findings: Vec<String>,
}

impl Durability {
    /// Property (a)'s failure, if it failed.
    pub fn lost_failure(&self) -> Option<String> {
        (self.lost > 0 || self.unverified > 0).then(|| {
            format!(
                "(a) {} acknowledged events lost, {} profiles unverified",
                self.lost, self.unverified
            )
        })
    }

    /// Property (b)'s failure, if it failed.
    pub fn duplicate_failure(&self) -> Option<String> {
        (self.duplicated > 0).then(|| format!("(b) {} events applied twice", self.duplicated))
    }
}

/// Checks every node's reading of every user the shoppers sent anything to.
pub(super) fn check_read_backs(journal: &Journal, read_backs: &ReadBacks) -> Durability {
    let acked = acknowledged_keys(journal);
    let mut durability = Durability {
        events_acknowledged: acked.values().map(HashSet::len).sum(),
        ..Durability::default()
    };
    // A key missing from several nodes is one lost event.
    let mut lost: HashSet<(&str, &str)> = HashSet::new();
    for (node, users) in read_backs {
        for user in journal.users() {
            let reading = match users.get(user) {
                Some(Ok(reading)) => reading,
                Some(Err(error)) => {
                    durability.unverified += 1;
                    durability
                        .findings
                        .push(format!("{node}: profile of {user} unreadable: {error}"));
                    continue;
                }
                None => continue,
            };
            let twice = applied_twice(reading);
            if twice > 0 {
                durability.duplicated += twice;
                durability.findings.push(format!(
                    "{node}: {user} has {} events for {} distinct keys",
                    reading.event_count,
                    remembered_keys(reading).len()
                ));
            }
            let acked_keys = acked.get(user.as_str()).into_iter().flatten().copied();
            for key in missing_keys(acked_keys, reading) {
                if lost.len() < LOST_EXAMPLES {
                    durability
                        .findings
                        .push(format!("{node}: acknowledged {user}/{key} is missing"));
                }
                lost.insert((user.as_str(), key));
            }
        }
    }
    durability.lost = lost.len();
    durability
}

/// Every acknowledged key, by user.
fn acknowledged_keys(journal: &Journal) -> BTreeMap<&str, HashSet<&str>> {
    let mut acked: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for ack in &journal.acks {
        let keys = acked.entry(ack.user.as_str()).or_default();
        keys.extend(ack.keys.iter().map(String::as_str));
    }
    acked
}

/// The hashes of the event keys a profile remembers applying.
fn remembered_keys(reading: &ReadBack) -> HashSet<u64> {
    reading.key_hashes.iter().copied().collect()
}

/// Events a profile applied more than once: keys it remembers more than once, plus events
/// it counted beyond the distinct keys it remembers. Every event carries a key and no user
/// gets near the key window, so a clean profile counts one event per distinct key.
fn applied_twice(reading: &ReadBack) -> usize {
    let distinct = remembered_keys(reading).len();
    let repeated = reading.key_hashes.len() - distinct;
    let extra = reading.event_count.saturating_sub(distinct as u64) as usize;
    repeated + extra
}

/// The acknowledged keys a profile does not remember.
fn missing_keys<'k>(acked: impl IntoIterator<Item = &'k str>, reading: &ReadBack) -> Vec<&'k str> {
    let remembered = remembered_keys(reading);
    acked
        .into_iter()
        .filter(|key| !remembered.contains(&inkling_domain::event_key_hash(key)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{ack, clean, journal, read_backs, reading};

    #[test]
    fn applied_twice_counts_repeated_keys_and_events_beyond_the_keys() {
        // (remembered keys, event count, events applied twice)
        let cases: &[(&[&str], u64, usize)] = &[
            (&[], 0, 0),
            (&["a", "b", "c"], 3, 0),
            // Fewer events than keys (an event count that lags) is not a duplicate.
            (&["a", "b", "c"], 1, 0),
            (&["a", "b"], 3, 1),
            (&["a", "b"], 5, 3),
            (&["a", "a", "b"], 2, 1),
            // Remembered twice and counted twice: both show.
            (&["a", "a", "b"], 3, 2),
        ];
        for (keys, event_count, expected) in cases {
            assert_eq!(
                applied_twice(&reading(keys, *event_count)),
                *expected,
                "keys {keys:?}, {event_count} events"
            );
        }
    }

    #[test]
    fn missing_keys_are_the_acknowledged_ones_the_profile_does_not_remember() {
        // (acknowledged keys, remembered keys, missing keys)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &[]),
            (&[], &["a"], &[]),
            (&["a", "b"], &["a", "b"], &[]),
            (&["a", "b"], &["b", "a", "c"], &[]),
            (&["a", "b"], &["a"], &["b"]),
            // An empty profile (a 404) misses everything acknowledged.
            (&["a", "b"], &[], &["a", "b"]),
        ];
        for (acked, remembered, expected) in cases {
            let mut missing = missing_keys(acked.iter().copied(), &reading(remembered, 0));
            missing.sort();
            assert_eq!(
                missing, *expected,
                "acked {acked:?}, remembered {remembered:?}"
            );
        }
    }

    /// What one case's read-backs should show.
    #[derive(Debug, PartialEq)]
    struct Expected {
        events_acknowledged: usize,
        lost: usize,
        duplicated: usize,
        unverified: usize,
        findings: usize,
        /// (a)'s and (b)'s failures, in that order.
        failures: Vec<String>,
    }

    fn expect(
        (events_acknowledged, lost, duplicated, unverified): (usize, usize, usize, usize),
        findings: usize,
        failures: &[&str],
    ) -> Expected {
        Expected {
            events_acknowledged,
            lost,
            duplicated,
            unverified,
            findings,
            failures: failures.iter().map(|failure| failure.to_string()).collect(),
        }
    }

    #[test]
    fn every_acknowledged_key_must_be_on_every_node_exactly_once() {
        let one_user = || journal(vec![ack("ann", &["a", "b"], (0, 10), &[])], vec![]);
        let two_users = || {
            journal(
                vec![
                    ack("ann", &["a", "b"], (0, 10), &[]),
                    ack("bob", &["x"], (0, 10), &[]),
                ],
                vec![],
            )
        };
        let seven_keys = ["k1", "k2", "k3", "k4", "k5", "k6", "k7"];
        let cases = vec![
            (
                "every key once on every node",
                two_users(),
                read_backs(&[
                    (
                        "node-1",
                        &[("ann", clean(&["a", "b"])), ("bob", clean(&["x"]))],
                    ),
                    (
                        "node-2",
                        &[("ann", clean(&["b", "a"])), ("bob", clean(&["x"]))],
                    ),
                ]),
                expect((3, 0, 0, 0), 0, &[]),
            ),
            (
                "a key acknowledged twice is one event",
                journal(
                    vec![
                        ack("ann", &["a", "b"], (0, 10), &[]),
                        ack("ann", &["b"], (20, 30), &[]),
                    ],
                    vec![],
                ),
                read_backs(&[("node-1", &[("ann", clean(&["a", "b"]))])]),
                expect((2, 0, 0, 0), 0, &[]),
            ),
            (
                "missing from one replica is lost",
                one_user(),
                read_backs(&[
                    ("node-1", &[("ann", clean(&["a", "b"]))]),
                    ("node-2", &[("ann", clean(&["a"]))]),
                ]),
                expect(
                    (2, 1, 0, 0),
                    1,
                    &["(a) 1 acknowledged events lost, 0 profiles unverified"],
                ),
            ),
            (
                "missing from every replica is one lost event, noted per node",
                one_user(),
                read_backs(&[
                    ("node-1", &[("ann", clean(&["a"]))]),
                    ("node-2", &[("ann", clean(&["a"]))]),
                    ("node-3", &[("ann", clean(&["a"]))]),
                ]),
                expect(
                    (2, 1, 0, 0),
                    3,
                    &["(a) 1 acknowledged events lost, 0 profiles unverified"],
                ),
            ),
            (
                "only the first five lost events are named",
                journal(vec![ack("ann", &seven_keys, (0, 10), &[])], vec![]),
                read_backs(&[("node-1", &[("ann", clean(&[]))])]),
                expect(
                    (7, 7, 0, 0),
                    5,
                    &["(a) 7 acknowledged events lost, 0 profiles unverified"],
                ),
            ),
            (
                "an event applied twice is duplicated",
                one_user(),
                read_backs(&[("node-1", &[("ann", Ok(reading(&["a", "b"], 3)))])]),
                expect((2, 0, 1, 0), 1, &["(b) 1 events applied twice"]),
            ),
            (
                "duplicates add up over nodes",
                one_user(),
                read_backs(&[
                    ("node-1", &[("ann", Ok(reading(&["a", "b", "b"], 3)))]),
                    ("node-2", &[("ann", Ok(reading(&["a", "b"], 4)))]),
                ]),
                expect((2, 0, 4, 0), 2, &["(b) 4 events applied twice"]),
            ),
            (
                "an unreadable profile is unverified, not lost",
                one_user(),
                read_backs(&[
                    ("node-1", &[("ann", Err("timed out".to_string()))]),
                    ("node-2", &[("ann", clean(&["a", "b"]))]),
                ]),
                expect(
                    (2, 0, 0, 1),
                    1,
                    &["(a) 0 acknowledged events lost, 1 profiles unverified"],
                ),
            ),
            (
                "a user a node was not asked about is skipped",
                two_users(),
                read_backs(&[("node-1", &[("ann", clean(&["a", "b"]))])]),
                expect((3, 0, 0, 0), 0, &[]),
            ),
            (
                "a reading of a user nobody wrote to is ignored",
                one_user(),
                read_backs(&[(
                    "node-1",
                    &[("ann", clean(&["a", "b"])), ("eve", Ok(reading(&[], 9)))],
                )]),
                expect((2, 0, 0, 0), 0, &[]),
            ),
            (
                "a user sent events but never acknowledged loses nothing",
                {
                    let mut sent_only = one_user();
                    sent_only
                        .sent
                        .insert("cat".to_string(), vec!["z".to_string()]);
                    sent_only
                },
                read_backs(&[(
                    "node-1",
                    &[("ann", clean(&["a", "b"])), ("cat", clean(&[]))],
                )]),
                expect((2, 0, 0, 0), 0, &[]),
            ),
        ];
        for (name, journal, read_backs, expected) in cases {
            check_case(name, &journal, &read_backs, expected);
        }
    }

    fn check_case(name: &str, journal: &Journal, read_backs: &ReadBacks, expected: Expected) {
        let found = check_read_backs(journal, read_backs);
        let found = Expected {
            events_acknowledged: found.events_acknowledged,
            lost: found.lost,
            duplicated: found.duplicated,
            unverified: found.unverified,
            findings: found.findings.len(),
            failures: [found.lost_failure(), found.duplicate_failure()]
                .into_iter()
                .flatten()
                .collect(),
        };
        assert_eq!(found, expected, "{name}");
    }
}
