//! What a node's public API lets through: its keys, its limits against abuse, and the window
//! of event times it accepts. The node builds one from its options; the defaults are a
//! loopback node without keys.

use std::time::Duration;

use inkling_api::limits::TimeWindow;
use inkling_auth::KeyRing;

use crate::experiments::Experiments;

/// How the public API of one node is guarded.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Whether this node serves `/v1` (the `gateway` role); without it every `/v1` route
    /// but `/v1/admin/*` answers 421 `not_a_gateway`.
    pub serves_api: bool,
    /// The API keys accepted; empty lets every request through (loopback only: the node
    /// refuses to listen beyond loopback without keys).
    pub keys: KeyRing,
    /// Requests per second per key (per client address without keys).
    pub rate_limit: RateLimit,
    /// Requests this node works on at once; beyond it, 503 `overloaded` at once rather than
    /// a queue that grows until every request misses its deadline.
    pub max_concurrent_requests: usize,
    /// How long a storefront, metrics or probe request may take before it is answered 504
    /// `timeout`. Admin routes are bounded by the cluster instead: a catalog write's deadline
    /// grows with its size.
    pub request_timeout: Duration,
    /// Whether `GET /metrics` is served (404 otherwise).
    pub expose_metrics: bool,
    /// The event times accepted, relative to this node's clock.
    pub event_window: EventWindow,
    /// The A/B variants answers are served under.
    pub experiments: Experiments,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            serves_api: true,
            keys: KeyRing::default(),
            rate_limit: RateLimit::default(),
            max_concurrent_requests: 512,
            request_timeout: Duration::from_secs(30),
            expose_metrics: true,
            event_window: EventWindow::default(),
            experiments: Experiments::default(),
        }
    }
}

/// A token bucket per key: `per_second` sustained, `burst` at once (each at least one; a
/// zero counts as one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    /// A key belongs to a storefront (or an operator), not to one shopper, so its budget must
    /// hold that storefront's whole traffic through one node: the most one node has served in
    /// our load tests is about 2,600 requests/s (docs/benchmarks.md), and an evaluation
    /// replays about 1,000 cases/s, several requests each. 5,000/s with a burst of 10,000 never
    /// throttles that, while a runaway or leaked key is held to a rate that leaves the other
    /// keys their share; [`GatewayConfig::max_concurrent_requests`] is what protects the
    /// node's capacity as a whole.
    fn default() -> Self {
        Self {
            per_second: 5_000,
            burst: 10_000,
        }
    }
}

/// Event times outside `[now - past, now + future_skew]` are refused: they feed shared
/// popularity counters, where one far-future event would pin an item at the top.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventWindow {
    pub past: Duration,
    pub future_skew: Duration,
}

impl Default for EventWindow {
    /// A week back lets a client replay a buffer kept through an outage; five minutes ahead
    /// covers clock skew between a client and the node.
    fn default() -> Self {
        Self {
            past: Duration::from_secs(7 * 24 * 3600),
            future_skew: Duration::from_secs(5 * 60),
        }
    }
}

impl EventWindow {
    /// The event times accepted at `now_ms`.
    pub fn at(&self, now_ms: u64) -> TimeWindow {
        TimeWindow::around(now_ms, millis(self.past), millis(self.future_skew))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
