//! The nemesis's schedule: which fault, on which node, for how long, drawn from a seed so a
//! run can be replayed. The schedule is a pure function of (seed, kinds, node count, length);
//! what the cluster does under it depends on timing and is not replayed.

use std::time::Duration;

use serde::Serialize;

/// Every kind of fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kill -9`, then a restart on the same data folder.
    Kill,
    /// SIGSTOP for longer than failure detection takes, then SIGCONT.
    Pause,
    /// One node cut off from all others, both ways.
    Isolate,
    /// The cluster split into a minority and a majority (on 3 nodes the minority is one
    /// node, so this is `isolate` with the minority chosen the same way on larger clusters).
    Split,
    /// One node can hear its peers but nothing it sends reaches them.
    OneWay,
    /// Every link of one node delayed.
    Latency,
    /// Every link of one node lossy (UDP drops, TCP retransmission delays).
    Loss,
    /// A new node joins, takes replicas, then drains and leaves.
    JoinDrain,
    /// Every node stopped (SIGTERM) and started again, one after the other.
    RollingRestart,
    /// One node's disk is full: its log appends fail. It is restarted once space is back.
    DiskFull,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Isolate,
        FaultKind::Split,
        FaultKind::OneWay,
        FaultKind::Latency,
        FaultKind::Loss,
        FaultKind::JoinDrain,
        FaultKind::RollingRestart,
        FaultKind::DiskFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Isolate => "isolate",
            FaultKind::Split => "split",
            FaultKind::OneWay => "one-way",
            FaultKind::Latency => "latency",
            FaultKind::Loss => "loss",
            FaultKind::JoinDrain => "join-drain",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::DiskFull => "disk-full",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|kind| kind.name()).collect();
                format!(
                    "`{text}` is not a fault kind; kinds are {}",
                    names.join(", ")
                )
            })
    }

    /// Whether the fault takes one node away from its peers for a while: the faults after
    /// which failover time is measured.
    pub fn takes_a_node_away(self) -> bool {
        matches!(
            self,
            FaultKind::Kill
                | FaultKind::Pause
                | FaultKind::Isolate
                | FaultKind::Split
                | FaultKind::OneWay
                | FaultKind::DiskFull
        )
    }

    /// How long the fault lasts before it is healed. A pause and the cuts outlast failure
    /// detection (about 3 s) so the cluster really declares the node gone.
    fn hold(self) -> Duration {
        match self {
            FaultKind::Kill => Duration::from_secs(3),
            FaultKind::Pause | FaultKind::Isolate | FaultKind::Split | FaultKind::OneWay => {
                Duration::from_secs(5)
            }
            FaultKind::Latency | FaultKind::Loss => Duration::from_secs(6),
            FaultKind::DiskFull => Duration::from_secs(4),
            FaultKind::JoinDrain | FaultKind::RollingRestart => Duration::ZERO,
        }
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub kind: FaultKind,
    /// The node it targets (ignored by rolling restarts and join-drain).
    pub node: usize,
    #[serde(serialize_with = "millis")]
    pub hold: Duration,
    /// The added delay of a latency fault, in milliseconds.
    pub delay_ms: u64,
    /// The loss probability of a loss fault.
    pub loss: f64,
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let node = format!("node-{}", self.node + 1);
        let hold = self.hold.as_secs_f64();
        match self.kind {
            FaultKind::Kill => write!(f, "kill -9 {node}, restart after {hold:.1}s"),
            FaultKind::Pause => write!(f, "SIGSTOP {node} for {hold:.1}s"),
            FaultKind::Isolate => write!(f, "isolate {node} for {hold:.1}s"),
            FaultKind::Split => write!(f, "split {node} (minority) from the rest for {hold:.1}s"),
            FaultKind::OneWay => write!(f, "cut {node}'s outgoing links for {hold:.1}s"),
            FaultKind::Latency => {
                write!(
                    f,
                    "delay {node}'s links by {} ms for {hold:.1}s",
                    self.delay_ms
                )
            }
            FaultKind::Loss => {
                let percent = self.loss * 100.0;
                write!(f, "lose {percent:.0}% of {node}'s packets for {hold:.1}s")
            }
            FaultKind::JoinDrain => write!(f, "join a new node, then drain it"),
            FaultKind::RollingRestart => write!(f, "rolling restart of every node"),
            FaultKind::DiskFull => write!(f, "fill {node}'s disk for {hold:.1}s, then restart it"),
        }
    }
}

/// splitmix64: small, fast and fully determined by its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in 0..bound (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

fn step(rng: &mut Rng, kind: FaultKind, nodes: usize) -> Step {
    let node = rng.below(nodes);
    let delay_ms = [50, 100, 200][rng.below(3)];
    let loss = [0.1, 0.2, 0.3][rng.below(3)];
    Step {
        kind,
        node,
        hold: kind.hold(),
        delay_ms,
        loss,
    }
}

/// Every kind in `kinds` once, in an order and on nodes drawn from `seed`.
pub fn each_once(seed: u64, kinds: &[FaultKind], nodes: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<FaultKind> = kinds.to_vec();
    for index in (1..order.len()).rev() {
        order.swap(index, rng.below(index + 1));
    }
    order
        .into_iter()
        .map(|kind| step(&mut rng, kind, nodes))
        .collect()
}

/// `count` faults drawn from `kinds`, every kind at least once when `count` allows: rounds
/// of every kind in a seeded order.
pub fn rounds(seed: u64, kinds: &[FaultKind], nodes: usize, count: usize) -> Vec<Step> {
    let mut steps = Vec::with_capacity(count);
    let mut round = 0u64;
    while steps.len() < count && !kinds.is_empty() {
        let seed_of_round = Rng::new(seed ^ round.wrapping_mul(0x2545_f491_4f6c_dd1d)).next_u64();
        steps.extend(each_once(seed_of_round, kinds, nodes));
        round += 1;
    }
    steps.truncate(count);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_the_same_schedule_and_another_does_not() {
        let render = |seed| {
            rounds(seed, &FaultKind::ALL, 3, 25)
                .iter()
                .map(|step| step.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(render(7), render(7));
        assert_ne!(render(7), render(8));
    }

    #[test]
    fn every_kind_appears_once_per_round() {
        let steps = each_once(42, &FaultKind::ALL, 3);
        let mut kinds: Vec<FaultKind> = steps.iter().map(|step| step.kind).collect();
        kinds.sort();
        assert_eq!(kinds, FaultKind::ALL.to_vec());
        assert!(steps.iter().all(|step| step.node < 3));
    }

    #[test]
    fn kinds_parse_from_their_names_and_refuse_others() {
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::parse(kind.name()), Ok(kind));
        }
        let refused = FaultKind::parse("meteor").unwrap_err();
        assert!(refused.contains("kill, pause"), "{refused}");
    }
}
