//! Process-wide Prometheus metrics.
//!
//! Metrics are registered lazily in one registry so any crate can record without plumbing a
//! handle through every constructor; `render` produces the text exposition for `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    // Registration only fails on duplicate names, which is a programming error caught by tests.
    REGISTRY
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector
}

/// Latency buckets from 50µs to ~3s, wide enough for both fsyncs and HTTP requests.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.0, 17).expect("valid buckets")
}

pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric"),
    )
});

pub static HTTP_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("inkling_http_request_seconds", "HTTP request latency")
                .buckets(latency_buckets()),
            &["route"],
        )
        .expect("valid metric"),
    )
});

pub static EVENTS_INGESTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "inkling_events_ingested_total",
            "Events applied to profiles",
        )
        .expect("valid metric"),
    )
});

pub static GROUP_COMMIT_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "inkling_group_commit_waiters",
                "Durability waiters served by one storage sync",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 12).expect("valid buckets")),
        )
        .expect("valid metric"),
    )
});

pub static STORAGE_SYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "inkling_storage_sync_seconds",
                "Duration of one storage sync",
            )
            .buckets(latency_buckets()),
        )
        .expect("valid metric"),
    )
});

pub static ACTIVE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new("inkling_active_sessions", "Session actors currently alive")
            .expect("valid metric"),
    )
});

/// Restarts by actor kind (`session`, `index_shard`, `ranker`, `model_worker`, ...).
pub static ACTOR_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_actor_restarts_total",
                "Actors restarted by their supervisor after a failure, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

/// Actors left down because they failed more often than their restart budget allows.
pub static ACTOR_GIVE_UPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_actor_restart_budget_exhausted_total",
                "Actors left down after exhausting their restart budget, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&REGISTRY.gather(), &mut buffer) {
        return format!("# failed to encode metrics: {error}\n");
    }
    String::from_utf8(buffer).unwrap_or_default()
}
