//! An event answered with 2xx survives `kill -9` of the node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use inkling_chaos_tests::{NodeProcess, data_dir};
use serde_json::json;

const WRITERS: usize = 8;

/// Per writer: (events acknowledged, events sent); one writer is one shopper.
fn write_until_stopped(base_url: String, writer: usize, stop: Arc<AtomicBool>) -> (u64, u64) {
    let agent = NodeProcess::agent();
    let url = format!("{base_url}/v1/events");
    let (mut acknowledged, mut sent) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let body = json!({ "events": [
            { "user_id": format!("writer-{writer}"), "type": "view", "item_id": "xiaomi-12" },
            { "user_id": format!("writer-{writer}"), "type": "click", "item_id": "iphone-se" },
        ]});
        sent += 2;
        match agent.post(&url).send_json(body) {
            Ok(response) if response.status() == 200 => acknowledged += 2,
            // The node is gone: what was not acknowledged may or may not have survived.
            _ => break,
        }
    }
    (acknowledged, sent)
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let binary = env!("CARGO_BIN_EXE_inkling-node");
    let (_guard, dir) = data_dir();
    let node = NodeProcess::start(binary.as_ref(), &dir);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (url, stop) = (node.base_url.clone(), stop.clone());
            std::thread::spawn(move || write_until_stopped(url, writer, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // Kill while the writers are still mid-request, then let them notice.
    node.kill_hard();
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<(u64, u64)> = writers
        .into_iter()
        .map(|writer| writer.join().unwrap())
        .collect();
    let total_acknowledged: u64 = counts.iter().map(|(acknowledged, _)| acknowledged).sum();
    assert!(
        total_acknowledged >= 20,
        "too few writes to prove anything: {counts:?}"
    );

    let restarted = NodeProcess::start(binary.as_ref(), &dir);
    for (writer, (acknowledged, sent)) in counts.into_iter().enumerate() {
        let stored = match restarted.get_json(&format!("/v1/users/writer-{writer}/profile")) {
            Ok(profile) => profile["event_count"].as_u64().unwrap(),
            Err(error) if error.contains("404") => 0,
            Err(error) => panic!("writer-{writer}: {error}"),
        };
        assert!(
            (acknowledged..=sent).contains(&stored),
            "writer-{writer}: {acknowledged} acknowledged, {sent} sent, {stored} stored"
        );
    }
}
