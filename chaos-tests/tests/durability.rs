//! An event answered with 2xx survives `kill -9` of the node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use inkling_api::{Client, EventBatch, EventBody, EventType};
use inkling_chaos_tests::{ClusterSandbox, wait_for};

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
        match client.events(&EventBatch { events }) {
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
    let binary = env!("CARGO_BIN_EXE_inkling-node");
    let mut node = ClusterSandbox::single(binary.as_ref());

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
