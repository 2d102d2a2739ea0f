//! `inkling profile build` on a real node's sled files: segments and association rules are
//! fitted offline, stored, and used by the node after a restart.

use std::time::Duration;

use inkling_api::{
    Client, ClientConfig, EventBatch, EventBody, EventType, ProfileView, RecommendBody,
};
use inkling_models::baskets::RuleThresholds;
use inkling_node::{CatalogSource, Node, NodeOptions};
use inkling_tools::profiles::{ProfileBuild, build};

/// Starts a node on `data`, runs `work` with a client of its HTTP API, then stops it
/// cleanly.
fn with_node<T>(data: &std::path::Path, work: impl FnOnce(&Client) -> T) -> T {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = NodeOptions::new(
        data.to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
        CatalogSource::Demo,
    );
    let (base_url, stop, server) = runtime.block_on(async {
        let node = Node::start(&options).await.unwrap();
        let address = node.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(node.serve(async {
            let _ = stopped.await;
        }));
        (format!("http://{address}"), stop, server)
    });
    let client = Client::new(&base_url, ClientConfig::timeout(Duration::from_secs(30))).unwrap();
    let outcome = work(&client);
    drop(client);
    stop.send(()).unwrap();
    runtime.block_on(server).unwrap().unwrap();
    outcome
}

fn basket(user: &str, items: &[&str]) -> Vec<EventBody> {
    items
        .iter()
        .map(|item| EventBody {
            session_id: Some("s".into()),
            ..EventBody::on_item(user, EventType::AddToCart, *item)
        })
        .collect()
}

#[test]
fn profile_build_fits_segments_and_rules_that_a_restarted_node_uses() {
    let data = tempfile::tempdir().unwrap();
    with_node(data.path(), |client| {
        let mut events = Vec::new();
        for shopper in ["phone-a", "phone-b", "phone-c"] {
            events.extend(basket(shopper, &["iphone-14", "ipad-mini"]));
        }
        for shopper in ["laptop-a", "laptop-b"] {
            events.extend(basket(shopper, &["macbook-pro"]));
        }
        client.events(&EventBatch::new(events)).unwrap();
    });

    let options = ProfileBuild {
        data_dir: data.path().to_path_buf(),
        segments: 2,
        iterations: 20,
        thresholds: RuleThresholds::default(),
    };
    let report = build(&options).unwrap();
    assert_eq!(report.profiles, 5);
    assert_eq!(report.segmented, 5);
    assert_eq!(report.segment_sizes.len(), 2);
    assert_eq!(report.baskets, 5);
    // iPhone 14 -> iPad Mini and back, each with support 3.
    assert_eq!(report.rules, 2);

    with_node(data.path(), |client| {
        let profile = |user: &str| -> ProfileView { client.profile(user).unwrap() };
        assert_eq!(profile("phone-a").segment, profile("phone-b").segment);
        assert!(profile("phone-a").segment.is_some());
        assert_ne!(profile("phone-a").segment, profile("laptop-a").segment);

        // The restarted node has learned nothing online: the mined rules alone bring this.
        let events = basket("newcomer", &["iphone-14"]);
        client.events(&EventBatch::new(events)).unwrap();
        let answer = client
            .recommend(&RecommendBody {
                session_id: Some("s".into()),
                ..RecommendBody::new("newcomer", 3)
            })
            .unwrap();
        let ipad = answer
            .items
            .iter()
            .find(|item| item.product.id == "ipad-mini")
            .unwrap_or_else(|| panic!("{answer:?}"));
        assert!(
            ipad.reasons
                .iter()
                .any(|reason| reason.code == "bought_together"
                    && reason.params["title"] == "iPhone 14"
                    && reason.text == "often bought together with iPhone 14"),
            "{ipad:?}"
        );
    });

    let missing = ProfileBuild {
        data_dir: data.path().join("nowhere"),
        ..options
    };
    let error = build(&missing).unwrap_err().to_string();
    assert!(error.contains("holds no node data"), "{error}");
}
