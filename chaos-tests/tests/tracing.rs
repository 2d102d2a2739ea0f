//! One request served across two nodes is one trace: each node exports its spans over
//! OTLP/HTTP to a collector the test runs, and the spans of both share the trace id the
//! gateway answered with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inkling_api::client::route;
use inkling_api::{ProductBatch, ProductBody, SearchBody, SearchMode};
use inkling_chaos_tests::{ClusterSandbox, NodeOptions, wait_for};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Span names by `service.instance.id`, for every span of every export received.
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// An OTLP/HTTP (JSON) trace receiver on a free loopback port; answers its URL and what it
/// has received as (instance, trace id, span name).
fn start_collector() -> (String, Received) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("collector listens");
    let url = format!(
        "http://{}",
        server.server_addr().to_ip().expect("IP address")
    );
    let received: Received = Arc::default();
    let sink = received.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            if let Ok(export) = serde_json::from_str::<Value>(&body) {
                sink.lock().unwrap().extend(spans_of(&export));
            }
            let _ = request.respond(tiny_http::Response::empty(200));
        }
    });
    (url, received)
}

fn spans_of(export: &Value) -> Vec<(String, String, String)> {
    let mut spans = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        let instance = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|attribute| attribute["key"] == "service.instance.id")
            .and_then(|attribute| attribute["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string();
        let scopes = resource["scopeSpans"].as_array().into_iter().flatten();
        for span in scopes.flat_map(|scope| scope["spans"].as_array().into_iter().flatten()) {
            let trace_id = span["traceId"].as_str().unwrap_or_default().to_lowercase();
            let name = span["name"].as_str().unwrap_or_default().to_string();
            spans.push((instance.clone(), trace_id, name));
        }
    }
    spans
}

#[test]
fn a_request_served_across_two_nodes_is_one_trace_with_spans_from_both() {
    let (collector, received) = start_collector();
    let models_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../.deps/models");
    let flags = ["--model", "all-minilm-l6-v2", "--models-dir", models_dir]
        .into_iter()
        .chain(["--catalog", "none"])
        .map(String::from)
        .collect();
    let spec = NodeOptions {
        flags,
        env: vec![
            ("INKLING_OTLP_ENDPOINT".into(), collector),
            // Export every 100 ms rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
    };
    let cluster = ClusterSandbox::start_with(binary(), 59, vec![spec; 2]);
    cluster.wait_until_meshed();
    let products = [
        (
            "flask",
            "Stainless Steel Vacuum Thermos Flask",
            "Kitchen",
            99.0,
        ),
        ("shoes", "Lightweight Trail Running Shoes", "Sports", 459.0),
    ]
    .map(|(id, title, category, price)| ProductBody {
        category_path: vec![category.into()],
        ..ProductBody::new(id, title, price)
    });
    let gateway = cluster.client(0);
    gateway
        .upsert_products(&ProductBatch {
            products: products.to_vec(),
        })
        .expect("products written");

    // Node 0's gateway forwards the shopper to node 1, which leads the shopper's partition.
    let user = cluster.user_led_by(1, 0);
    let body = SearchBody {
        mode: SearchMode::Hybrid,
        ..SearchBody::new(user, "vacuum flask", 2)
    };
    let trace_id = wait_for("a search served through node 0", TIMEOUT, || {
        gateway.call_traced(route::search(&body)).ok()?.trace_id
    });

    let expected: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("node-1", vec!["POST /v1/search"]),
        (
            "node-2",
            vec![
                "router.user",
                "session.search",
                "model_pool.embed.cpu",
                "ranker.search",
                "index_shard.search.0",
            ],
        ),
    ]);
    let seen = wait_for("every stage's span in the collector", TIMEOUT, || {
        let seen: BTreeSet<(String, String)> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, trace, _)| *trace == trace_id)
            .map(|(instance, _, name)| (instance.clone(), name.clone()))
            .collect();
        let complete = expected.iter().all(|(instance, names)| {
            names
                .iter()
                .all(|name| seen.contains(&(instance.to_string(), name.to_string())))
        });
        complete.then_some(seen)
    });
    assert!(seen.len() >= 6, "{seen:?}");
}

fn binary() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_inkling-node").as_ref()
}
