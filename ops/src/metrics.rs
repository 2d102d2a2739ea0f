//! Process-wide Prometheus metrics.
//!
//! Metrics are registered lazily in one registry so any crate can record without plumbing a
//! handle through every constructor; `render` produces the text exposition for `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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

/// Raft entries proposed on this node, from the proposal to the leader having applied it.
pub static RAFT_COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "inkling_raft_commit_seconds",
                "Proposals led here: time until committed by a quorum and applied",
            )
            .buckets(latency_buckets()),
        )
        .expect("valid metric"),
    )
});

pub static PEER_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_peer_refusals_total",
                "Peers refused: peer-plane requests without a valid proof of the cluster secret (proof) or from a name that is not a member or not its certificate's (member), and mesh sessions whose certificate names another node (mesh)",
            ),
            &["reason"],
        )
        .expect("valid metric"),
    )
});

pub static GOSSIP_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_gossip_refusals_total",
                "Gossip datagrams dropped: a tag that does not match (tag), a time too far from this node's clock (stale), or unreadable (malformed)",
            ),
            &["reason"],
        )
        .expect("valid metric"),
    )
});

pub static RAFT_LEADER_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "inkling_raft_leader_changes_total",
            "Times this node started or stopped leading a raft group",
        )
        .expect("valid metric"),
    )
});

pub static RAFT_GROUPS_LED: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "inkling_raft_groups_led",
            "Raft groups (user partitions and the catalog) this node leads",
        )
        .expect("valid metric"),
    )
});

/// The furthest any replica of a group led here trails the leader's log.
pub static RAFT_REPLICATION_LAG: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "inkling_raft_replication_lag_entries",
            "Most entries any replica of a group led here is behind its leader",
        )
        .expect("valid metric"),
    )
});

pub static DISK_FREE_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "inkling_disk_free_bytes",
            "Free bytes on the disk holding the data folder, read at each scrape and before new data is proposed",
        )
        .expect("valid metric"),
    )
});

pub static CLUSTER_LIVE_MEMBERS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "inkling_cluster_live_members",
            "Members gossip holds alive, this node included",
        )
        .expect("valid metric"),
    )
});

pub static CLUSTER_MESH_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "inkling_cluster_mesh_sessions",
            "Authenticated actor-mesh sessions with other nodes",
        )
        .expect("valid metric"),
    )
});

/// Calls to actors on other nodes, by what was called (`router`, `model_pool`,
/// `index_shard`) and whether an answer came back.
pub static CLUSTER_CALL_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "inkling_cluster_call_seconds",
                "Calls to actors on other nodes over the actor mesh",
            )
            .buckets(latency_buckets()),
            &["target", "outcome"],
        )
        .expect("valid metric"),
    )
});

/// Records one call to an actor on another node.
pub fn observe_remote_call(target: &str, started: std::time::Instant, answered: bool) {
    let outcome = if answered { "answered" } else { "failed" };
    CLUSTER_CALL_SECONDS
        .with_label_values(&[target, outcome])
        .observe(started.elapsed().as_secs_f64());
}

/// Replicas of each index shard this node can reach over the actor mesh, by `shard`
/// (`MODEL.COUNT.SHARD`) and `location` (`local`, `remote`). Set when `/metrics` is scraped.
pub static SHARD_REPLICAS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "inkling_cluster_shard_replicas",
                "Replicas of each index shard reachable from this node",
            ),
            &["shard", "location"],
        )
        .expect("valid metric"),
    )
});

/// Live products in each index shard replica this node holds, by `shard` (its number).
pub static INDEX_PRODUCTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "inkling_index_products",
                "Live products in each index shard replica this node holds",
            ),
            &["shard"],
        )
        .expect("valid metric"),
    )
});

/// The share of the index's shards that answered each search or recommendation this
/// node's gateway answered: 1 when every shard did.
pub static ANSWER_COVERAGE: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "inkling_answer_coverage",
                "Share of the index shards that answered each ranked answer",
            )
            .buckets(vec![0.25, 0.5, 0.75, 0.9, 0.99, 1.0]),
        )
        .expect("valid metric"),
    )
});

/// Product passages this node's catalog writer embedded, by `reason`: `write` (a catalog
/// write this node took), `replica` (a replicated write that carried no vector of this
/// node's encoder) and `reindex` (re-indexing a product whose stored vector is missing or
/// another encoder's). Replicas of a write normally embed nothing.
pub static PASSAGES_EMBEDDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_passages_embedded_total",
                "Product passages this node's catalog writer embedded",
            ),
            &["reason"],
        )
        .expect("valid metric"),
    )
});

/// Searches and recommendations this gateway answered, by route (`search`, `recommend`)
/// and A/B variant: the denominator of click-through and conversion rates.
pub static RANKED_ANSWERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_ranked_answers_total",
                "Searches and recommendations answered, by route and variant",
            ),
            &["route", "variant"],
        )
        .expect("valid metric"),
    )
});

/// Of [`RANKED_ANSWERS`], those with no item at all.
pub static EMPTY_ANSWERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_empty_answers_total",
                "Searches and recommendations answered with no item, by route and variant",
            ),
            &["route", "variant"],
        )
        .expect("valid metric"),
    )
});

/// Clicks, carts and purchases acknowledged with the `request_id` of the answer they
/// followed, by event type and the variant that served the answer (`retired` for a variant
/// this gateway no longer serves).
pub static ATTRIBUTED_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_attributed_events_total",
                "Events acknowledged with the request id of the answer they followed, by type and variant",
            ),
            &["type", "variant"],
        )
        .expect("valid metric"),
    )
});

/// Requests sent to actors of one kind (`ranker`, `index_shard`, `model_pool`, ...) and not
/// yet answered: queued in the mailbox or being handled. ractor does not expose a mailbox's
/// length, so callers count what they are waiting for.
pub static ACTOR_MAILBOX_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "inkling_actor_mailbox_depth",
                "Requests sent to actors of this kind and not yet answered",
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

/// The current value of [`ACTOR_MAILBOX_DEPTH`] for each actor kind that has been asked.
pub fn mailbox_depths() -> std::collections::BTreeMap<String, i64> {
    use prometheus::core::Collector;
    let mut depths = std::collections::BTreeMap::new();
    for family in ACTOR_MAILBOX_DEPTH.collect() {
        for metric in family.get_metric() {
            let kind = metric
                .get_label()
                .iter()
                .find(|label| label.name() == "kind");
            if let Some(kind) = kind {
                depths.insert(
                    kind.value().to_string(),
                    metric.get_gauge().get_value() as i64,
                );
            }
        }
    }
    depths
}

/// Texts encoded per model batch, by device (`cpu`, `cuda`).
pub static MODEL_BATCH_TEXTS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("inkling_model_batch_texts", "Texts encoded per model batch")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 8).expect("valid buckets")),
            &["device"],
        )
        .expect("valid metric"),
    )
});

/// Time one model batch spends in the encoder, by device.
pub static MODEL_INFERENCE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "inkling_model_inference_seconds",
                "Time a model batch spends in the encoder",
            )
            .buckets(latency_buckets()),
            &["device"],
        )
        .expect("valid metric"),
    )
});

/// Texts waiting for a model worker, by device.
pub static MODEL_QUEUE_TEXTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "inkling_model_queue_texts",
                "Texts waiting for a model worker",
            ),
            &["device"],
        )
        .expect("valid metric"),
    )
});

/// Embedding requests refused because the pool's queue was full, by device.
pub static MODEL_REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_model_requests_rejected_total",
                "Embedding requests refused as overloaded (queue full)",
            ),
            &["device"],
        )
        .expect("valid metric"),
    )
});

/// Texts looked up in the query-embedding cache, by `result` (`hit`, `miss`).
pub static EMBEDDING_CACHE_LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "inkling_embedding_cache_lookups_total",
                "Texts looked up in the embedding cache",
            ),
            &["result"],
        )
        .expect("valid metric"),
    )
});

/// Stalls of the async runtime, recorded by [`crate::runtime::spawn_stall_probe`].
pub static RUNTIME_TICK_LAG_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "inkling_runtime_tick_lag_seconds",
                "How much later than asked a 50 ms probe timer woke on the async runtime: how long a ready task waited for a worker",
            )
            .buckets(latency_buckets()),
        )
        .expect("valid metric"),
    )
});

pub static RUNTIME_BUSY_RATIO: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        Gauge::new(
            "inkling_runtime_busy_ratio",
            "Share of the async worker threads' time spent running tasks over the last second (1 = every worker always busy)",
        )
        .expect("valid metric"),
    )
});

pub static RUNTIME_GLOBAL_QUEUE_DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "inkling_runtime_global_queue_depth",
            "Tasks waiting in the async runtime's shared queue, sampled by the probe",
        )
        .expect("valid metric"),
    )
});

/// Registers every metric, so that a scrape shows each one (at zero) before anything has
/// recorded it: a gauge that appears only later looks like a gap on a dashboard.
pub fn register_all() {
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_LATENCY);
    LazyLock::force(&EVENTS_INGESTED);
    LazyLock::force(&GROUP_COMMIT_SIZE);
    LazyLock::force(&STORAGE_SYNC_SECONDS);
    LazyLock::force(&ACTIVE_SESSIONS);
    LazyLock::force(&ACTOR_RESTARTS);
    LazyLock::force(&ACTOR_GIVE_UPS);
    LazyLock::force(&RAFT_COMMIT_SECONDS);
    LazyLock::force(&RAFT_LEADER_CHANGES);
    for reason in ["proof", "member", "mesh"] {
        PEER_REFUSALS.with_label_values(&[reason]);
    }
    for reason in ["tag", "stale", "malformed"] {
        GOSSIP_REFUSALS.with_label_values(&[reason]);
    }
    LazyLock::force(&RAFT_GROUPS_LED);
    LazyLock::force(&RAFT_REPLICATION_LAG);
    LazyLock::force(&DISK_FREE_BYTES);
    LazyLock::force(&CLUSTER_LIVE_MEMBERS);
    LazyLock::force(&CLUSTER_MESH_SESSIONS);
    LazyLock::force(&CLUSTER_CALL_SECONDS);
    LazyLock::force(&ACTOR_MAILBOX_DEPTH);
    LazyLock::force(&SHARD_REPLICAS);
    LazyLock::force(&INDEX_PRODUCTS);
    LazyLock::force(&ANSWER_COVERAGE);
    LazyLock::force(&RANKED_ANSWERS);
    LazyLock::force(&EMPTY_ANSWERS);
    LazyLock::force(&ATTRIBUTED_EVENTS);
    for reason in ["write", "replica", "reindex"] {
        PASSAGES_EMBEDDED.with_label_values(&[reason]);
    }
    LazyLock::force(&MODEL_BATCH_TEXTS);
    LazyLock::force(&MODEL_INFERENCE_SECONDS);
    LazyLock::force(&MODEL_QUEUE_TEXTS);
    LazyLock::force(&MODEL_REJECTED);
    for result in ["hit", "miss"] {
        EMBEDDING_CACHE_LOOKUPS.with_label_values(&[result]);
    }
    LazyLock::force(&RUNTIME_TICK_LAG_SECONDS);
    LazyLock::force(&RUNTIME_BUSY_RATIO);
    LazyLock::force(&RUNTIME_GLOBAL_QUEUE_DEPTH);
}

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&REGISTRY.gather(), &mut buffer) {
        return format!("# failed to encode metrics: {error}\n");
    }
    String::from_utf8(buffer).unwrap_or_default()
}
