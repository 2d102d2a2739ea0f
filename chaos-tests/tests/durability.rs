//! An event answered with 2xx survives `kill -9` of the node, and a node short of disk
//! turns new data away whole instead of failing halfway through a write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use inkling_api::{Client, EventBatch, EventBody, EventType, ProductBatch, ProductBody};
use inkling_chaos_tests::{ClusterSandbox, NodeOptions, wait_for};

fn binary() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_inkling-node").as_ref()
}

const WRITERS: usize = 8;
/// Events acknowledged, all writers together, before the kill: enough to prove something.
const ACKNOWLEDGED_BEFORE_KILL: u64 = 20;

/// Per writer: (events acknowledged, events sent); one writer is one shopper. Every
/// acknowledged event is also counted in `acknowledged_by_all`.
fn write_until_stopped(
    client: Client,
    writer: usize,
    stop: Arc<AtomicBool>,
    acknowledged_by_all: Arc<AtomicU64>,
) -> (u64, u64) {
    let user = format!("writer-{writer}");
    let (mut acknowledged, mut sent) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let events = vec![
            EventBody::on_item(&user, EventType::View, "xiaomi-12"),
            EventBody::on_item(&user, EventType::Click, "iphone-se"),
        ];
        sent += 2;
        match client.events(&EventBatch::new(events)) {
            Ok(_) => {
                acknowledged += 2;
                acknowledged_by_all.fetch_add(2, Ordering::Relaxed);
            }
            // The node is gone: what was not acknowledged may or may not have survived.
            Err(_) => break,
        }
    }
    (acknowledged, sent)
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let mut node = ClusterSandbox::single(binary());

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged_by_all = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (client, stop) = (node.client(0), stop.clone());
            let counter = acknowledged_by_all.clone();
            std::thread::spawn(move || write_until_stopped(client, writer, stop, counter))
        })
        .collect();
    wait_for(
        "events acknowledged before the kill",
        Duration::from_secs(60),
        || {
            let acknowledged = acknowledged_by_all.load(Ordering::Relaxed);
            (acknowledged >= ACKNOWLEDGED_BEFORE_KILL).then_some(())
        },
    );
    // Kill while the writers are still mid-request, then let them notice.
    node.kill_hard(0);
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<(u64, u64)> = writers
        .into_iter()
        .map(|writer| writer.join().unwrap())
        .collect();
    let total_acknowledged: u64 = counts.iter().map(|(acknowledged, _)| acknowledged).sum();
    assert!(
        total_acknowledged >= ACKNOWLEDGED_BEFORE_KILL,
        "too few writes to prove anything: {counts:?}"
    );

    node.restart(0);
    let client = node.client(0);
    for (writer, (acknowledged, sent)) in counts.into_iter().enumerate() {
        let stored = match client.profile(&format!("writer-{writer}")) {
            Ok(profile) => profile.event_count,
            Err(error) if error.status == Some(404) => 0,
            Err(error) => panic!("writer-{writer}: {error}"),
        };
        assert!(
            (acknowledged..=sent).contains(&stored),
            "writer-{writer}: {acknowledged} acknowledged, {sent} sent, {stored} stored"
        );
    }
}

#[test]
fn a_node_short_of_disk_refuses_new_data_whole_and_still_erases() {
    // A threshold no disk meets: the node behaves as on a nearly full one.
    let flags = ["--min-free-disk-mb", "1000000000000", "--catalog", "none"];
    let node = NodeOptions::flags(flags.map(String::from).to_vec());
    let cluster = ClusterSandbox::start_with(binary(), 77, vec![node]);
    let client = cluster.client(0);
    let events = EventBatch::new(vec![EventBody::on_item(
        "shopper-full",
        EventType::View,
        "p-1",
    )]);
    let products = ProductBatch {
        products: vec![ProductBody::new("p-1", "Product", 1.0)],
    };
    let refusals = [
        ("events", client.events(&events).map(|_| ())),
        ("products", client.upsert_products(&products).map(|_| ())),
    ];
    for (what, outcome) in refusals {
        let refused = outcome.expect_err(what);
        assert_eq!(refused.status, Some(507), "{what}: {refused}");
        assert_eq!(
            refused.code.as_deref(),
            Some("insufficient_storage"),
            "{what}"
        );
        assert!(
            refused.message.contains("--min-free-disk-mb"),
            "{what}: {refused}"
        );
    }
    client
        .erase_user("shopper-full")
        .expect("an erasure frees space and still runs");
    let metrics = client.metrics().expect("metrics");
    let free = metrics
        .lines()
        .find_map(|line| line.strip_prefix("inkling_disk_free_bytes "))
        .and_then(|value| value.parse::<f64>().ok());
    assert!(
        free.is_some_and(|free| free > 0.0),
        "free space reported: {free:?}"
    );
}

#[test]
fn a_partition_with_a_replica_short_of_disk_refuses_new_data_on_every_node() {
    let roomy = || NodeOptions::flags(["--catalog", "none"].map(String::from).to_vec());
    let short = ["--min-free-disk-mb", "1000000000000", "--catalog", "none"];
    let nodes = vec![
        roomy(),
        roomy(),
        NodeOptions::flags(short.map(String::from).to_vec()),
    ];
    let cluster = ClusterSandbox::start_with(binary(), 78, nodes);
    cluster.wait_until_led();
    let short_node = cluster.name(2).to_string();
    let client = cluster.client(0);
    // A shopper whose partition node 0 leads: node 2 is only a follower there.
    let shopper = cluster.user_led_by(0, 0);
    let events = EventBatch::new(vec![EventBody::on_item(&shopper, EventType::View, "p-1")]);

    // Every user partition has all three nodes as replicas, so once gossip carries node
    // 2's state, node 0 turns the shopper's events away although its own disk has room.
    let refused = wait_for(
        "node 0 refusing for node 2's disk",
        Duration::from_secs(60),
        || client.events(&events).err(),
    );
    assert_eq!(refused.status, Some(507), "{refused}");
    assert_eq!(refused.code.as_deref(), Some("insufficient_storage"));
    assert!(refused.message.contains(&short_node), "{refused}");
    client
        .erase_user(&shopper)
        .expect("an erasure frees space and still runs");
}
