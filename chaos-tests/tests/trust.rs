//! The trust boundary on real `inkling serve` processes: the peer plane answers only
//! members holding the cluster secret, API keys are held to their scopes, a slow client
//! is cut off, and a node that joins late catches up through a snapshot sent over the
//! authenticated peer plane.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use inkling_api::{Client, EventBatch, EventBody, EventType, ProductBatch, ProductBody};
use inkling_auth::{ClusterSecret, PeerSigner};
use inkling_chaos_tests::{ClusterSandbox, NodeOptions, wait_for};

const NODES: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(60);

fn binary() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_inkling-node").as_ref()
}

/// How a stranger signs a peer request.
enum Proof<'a> {
    None,
    Signed(&'a PeerSigner),
}

/// Sends `body` to `path` on node `index`'s peer plane; answers the status and body.
fn peer_call(
    cluster: &ClusterSandbox,
    index: usize,
    path: &str,
    body: &str,
    proof: &Proof,
) -> (u16, String) {
    let http = reqwest::blocking::Client::new();
    let url = format!("http://{}{path}", cluster.peer_addr(index));
    let mut request = http
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Proof::Signed(signer) = proof {
        let proof = signer.sign("POST", path, body.as_bytes(), inkling_domain_now());
        for (name, value) in inkling_auth::peer::HEADERS
            .into_iter()
            .zip(proof.header_values())
        {
            request = request.header(name, value);
        }
    }
    let response = request.send().expect("the peer plane answers");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

fn inkling_domain_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// The term every forged message below claims: far above any a real election reaches
/// in a test.
const FORGED_TERM: u64 = 999_999;

/// The groups on node `index` whose term reached the forged one: a vote or append the
/// node accepted from a stranger would have raised it there. Real elections may still
/// raise terms (and placement may still add groups) while the test runs, so only the
/// forged term is a sign of a breach.
fn groups_at_forged_term(cluster: &ClusterSandbox, index: usize) -> Vec<u16> {
    let status = cluster.status(index).expect("status");
    status
        .partitions
        .iter()
        .filter(|group| group.term >= FORGED_TERM)
        .map(|group| group.partition)
        .collect()
}

#[test]
fn the_peer_plane_refuses_non_members_and_changes_nothing() {
    let cluster = ClusterSandbox::start(binary(), 71, NODES);
    let secret = cluster.credentials().secret.clone();
    let stranger = PeerSigner::new(&ClusterSecret::generate(), "node-1");
    let outsider = PeerSigner::new(&secret, "intruder");
    let forged_vote = serde_json::json!({"term": FORGED_TERM, "node_id": 1});
    let vote = serde_json::json!({
        "vote": {"leader_id": forged_vote, "committed": false},
        "last_log_id": null,
    })
    .to_string();
    let append = serde_json::json!({
        "vote": {"leader_id": forged_vote, "committed": true},
        "prev_log_id": null, "leader_commit": null, "entries": [],
    })
    .to_string();
    let snapshot = serde_json::json!({
        "vote": {"leader_id": forged_vote, "committed": true},
        "meta": {
            "last_log_id": null,
            "last_membership": {"log_id": null, "membership": {"configs": [], "nodes": {}}},
            "snapshot_id": "forged",
        },
        "offset": 0, "data": [], "done": true,
    })
    .to_string();
    // Each case: what is sent, how it is signed, and the status it must get.
    let cases: Vec<(&str, &str, Proof, u16)> = vec![
        ("/peer/raft/0/vote", &vote, Proof::None, 401),
        ("/peer/raft/0/vote", &vote, Proof::Signed(&stranger), 401),
        ("/peer/raft/0/vote", &vote, Proof::Signed(&outsider), 403),
        ("/peer/raft/0/append", &append, Proof::None, 401),
        (
            "/peer/raft/0/append",
            &append,
            Proof::Signed(&stranger),
            401,
        ),
        (
            "/peer/raft/0/append",
            &append,
            Proof::Signed(&outsider),
            403,
        ),
        ("/peer/raft/16/snapshot", &snapshot, Proof::None, 401),
        (
            "/peer/raft/16/snapshot",
            &snapshot,
            Proof::Signed(&stranger),
            401,
        ),
        (
            "/peer/raft/16/snapshot",
            &snapshot,
            Proof::Signed(&outsider),
            403,
        ),
        ("/peer/status", "", Proof::Signed(&stranger), 401),
    ];
    for index in 0..NODES {
        for (path, body, proof, expected) in &cases {
            let (status, answer) = peer_call(&cluster, index, path, body, proof);
            assert_eq!(status, *expected, "node {index} {path}: {answer}");
        }
    }
    for index in 0..NODES {
        let breached = groups_at_forged_term(&cluster, index);
        assert!(
            breached.is_empty(),
            "node {index}: a refused message raised the term of groups {breached:?}"
        );
    }
    // What operators and tests once called on the public port is not there any more.
    for path in ["/internal/status", "/internal/replica/users/anyone"] {
        let answer = cluster
            .client(0)
            .send_raw("GET", path, None)
            .expect("answered");
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
    }
}

#[test]
fn keys_are_held_to_their_scopes_on_every_node() {
    let cluster = ClusterSandbox::start(binary(), 72, NODES);
    let credentials = cluster.credentials().clone();
    let keyed = |index: usize, key: Option<&str>| -> Client {
        let client = cluster.client(index);
        client.with_api_key(key)
    };
    let product = ProductBatch {
        products: vec![ProductBody::new("trust-1", "Injected Product", 1.0)],
    };
    let storefront = credentials.storefront_key.expose();
    let admin = credentials.admin_key.expose();
    for index in 0..NODES {
        let as_storefront = keyed(index, Some(storefront));
        let refused = as_storefront.upsert_products(&product).unwrap_err();
        assert_eq!(refused.status, Some(403), "{refused}");
        let refused = as_storefront.erase_user("victim-7").unwrap_err();
        assert_eq!(refused.status, Some(403), "{refused}");
        let refused = keyed(index, None).profile("victim-7").unwrap_err();
        assert_eq!(refused.status, Some(401), "{refused}");
        let refused = keyed(index, Some("ink_not-a-key"))
            .profile("victim-7")
            .unwrap_err();
        assert_eq!(refused.status, Some(401), "{refused}");
    }
    keyed(1, Some(admin))
        .upsert_products(&product)
        .expect("an admin key writes products");
    let far_future = EventBody {
        timestamp: Some(inkling_domain_now() + 24 * 3600 * 1000),
        ..EventBody::on_item("shopper-late", EventType::View, "trust-1")
    };
    let refused = keyed(0, Some(storefront))
        .events(&EventBatch::new(vec![far_future]))
        .unwrap_err();
    assert_eq!(refused.status, Some(400), "{refused}");
    assert!(refused.to_string().contains("timestamp"), "{refused}");
}

/// Sends an unfinished request head and answers how long the node took to close the
/// connection, if it did within `limit`.
fn time_to_disconnect(addr: &str, limit: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Slow: ")
        .expect("write a partial head");
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    match stream.read(&mut buffer) {
        // Closed, or an error answer (408) and then closed.
        Ok(_) => Some(started.elapsed()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(started.elapsed())
        }
        Err(_) => None,
    }
}

#[test]
fn a_client_that_trickles_its_headers_is_disconnected() {
    // A cluster of one on fixed ports: a node on port 0 would pick its peer port too.
    let cluster = ClusterSandbox::start(binary(), 74, 1);
    let public = cluster.url(0).trim_start_matches("http://").to_string();
    let peer = cluster.peer_addr(0);
    for addr in [public, peer] {
        let waited = time_to_disconnect(&addr, Duration::from_secs(40));
        assert!(waited.is_some(), "{addr} kept a slow client for 40 s");
    }
}

#[test]
fn a_node_that_joins_late_catches_up_from_a_snapshot_over_the_peer_plane() {
    let snapshot_often = || NodeOptions::flags(vec!["--raft-snapshot-every".into(), "20".into()]);
    let mut cluster =
        ClusterSandbox::start_with(binary(), 73, (0..NODES).map(|_| snapshot_often()).collect());
    let users: Vec<String> = (0..8).map(|n| format!("snapshot-user-{n}")).collect();
    for round in 0..10 {
        let events = users
            .iter()
            .map(|user| EventBody {
                event_id: Some(format!("{user}-{round}")),
                ..EventBody::on_item(user, EventType::View, "xiaomi-12")
            })
            .collect();
        cluster
            .client(round % NODES)
            .events(&EventBatch::new(events))
            .expect("events acknowledged");
    }
    let joined = cluster.join_with(snapshot_often());
    for user in &users {
        wait_for(
            "the joined node's replica to hold every user",
            TIMEOUT * 3,
            || {
                let answer: serde_json::Value = cluster.client(joined).replica_user(user).ok()?;
                let profile = answer.get("Ok")?;
                (profile["event_count"].as_u64()? == 10).then_some(())
            },
        );
    }
}

/// The files under `folder` (recursively) whose bytes contain `marker`.
fn files_containing(folder: &std::path::Path, marker: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(marker.len()).any(|window| window == marker))
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn an_export_shows_the_events_and_an_erase_leaves_no_trace_in_any_file() {
    let cluster = ClusterSandbox::start(binary(), 75, NODES);
    let marker = format!("marker{}", inkling_domain_now());
    let user = "shopper-forgotten";
    let storefront = cluster
        .client(0)
        .with_api_key(Some(cluster.credentials().storefront_key.expose()));
    let search = EventBody {
        query: Some(format!("{marker} 手机")),
        event_id: Some("forget-1".into()),
        ..EventBody::new(user, EventType::Search)
    };
    let view = EventBody {
        event_id: Some("forget-2".into()),
        ..EventBody::on_item(user, EventType::View, "xiaomi-12")
    };
    storefront
        .events(&EventBatch::new(vec![search, view]))
        .expect("events acknowledged");

    let export = cluster
        .client(1)
        .export_user(user)
        .expect("export answered");
    let keys: Vec<_> = export
        .events
        .iter()
        .filter_map(|e| e.event_id.clone())
        .collect();
    assert_eq!(keys, ["forget-1", "forget-2"], "{export:?}");
    assert!(
        export.events[0]
            .query
            .as_deref()
            .unwrap_or("")
            .contains(&marker)
    );
    let refused = storefront.export_user(user).unwrap_err();
    assert_eq!(
        refused.status,
        Some(403),
        "a storefront key exports: {refused}"
    );

    cluster.client(2).erase_user(user).expect("erase answered");
    // The documented bound: every replica applies the erase within its replication lag.
    for index in 0..NODES {
        let folder = cluster.nodes_data_dir(index);
        wait_for("the marker to be gone from every file", TIMEOUT, || {
            files_containing(&folder, marker.as_bytes())
                .is_empty()
                .then_some(())
        });
    }
    let export = cluster
        .client(0)
        .export_user(user)
        .expect("export answered");
    assert!(
        export.events.is_empty() && export.profile.is_none(),
        "{export:?}"
    );
}

/// Whether node `observer` counts `addr` as a voter or learner of any group.
fn holds_a_seat(cluster: &ClusterSandbox, observer: usize, addr: &str) -> Option<bool> {
    let status = cluster.status(observer).ok()?;
    Some(status.partitions.iter().any(|group| {
        group.voters.iter().any(|voter| voter == addr)
            || group.learners.iter().any(|learner| learner == addr)
    }))
}

#[test]
fn a_node_without_the_secret_or_an_admission_gets_no_vote_and_no_data() {
    let mut cluster = ClusterSandbox::start(binary(), 76, NODES);
    let forger = cluster.join_unadmitted(NodeOptions {
        env: vec![(
            "INKLING_CLUSTER_SECRET".into(),
            ClusterSecret::generate().to_hex(),
        )],
        ..NodeOptions::default()
    });
    let outsider = cluster.join_unadmitted(NodeOptions::default());
    let user = "shopper-watched";
    cluster
        .client(0)
        .events(&EventBatch::new(vec![EventBody::on_item(
            user,
            EventType::View,
            "xiaomi-12",
        )]))
        .expect("events acknowledged");
    // The outsider holds the secret: gossip hears it, so the leaders see it and would
    // place it were it admitted. The forger is never heard at all.
    let outsider_name = cluster.name(outsider).to_string();
    let forger_name = cluster.name(forger).to_string();
    let names = |observer: usize| -> Option<Vec<String>> {
        let status = cluster.status(observer).ok()?;
        Some(
            status
                .members
                .into_iter()
                .map(|member| member.name)
                .collect(),
        )
    };
    wait_for("gossip to hear the outsider", TIMEOUT, || {
        names(0)?
            .contains(&cluster.name(outsider).to_string())
            .then_some(())
    });
    let waiting = |observer: usize| cluster.status(observer).map(|s| s.waiting_for_admission);
    assert_eq!(
        waiting(0).expect("status"),
        std::slice::from_ref(&outsider_name),
        "the status names who waits for admission"
    );
    // Leaders rebalance every second or so: over several rounds, neither gets a seat.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        for stranger in [forger, outsider] {
            let addr = cluster.peer_addr(stranger);
            assert_eq!(
                holds_a_seat(&cluster, 0, &addr),
                Some(false),
                "{addr} got a seat"
            );
        }
        let heard = names(0).expect("status");
        assert!(!heard.contains(&forger_name), "{heard:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    for stranger in [forger, outsider] {
        let answer: serde_json::Value = cluster
            .client(stranger)
            .replica_user(user)
            .expect("answered");
        assert!(
            answer["Ok"].is_null(),
            "node {stranger} received data: {answer}"
        );
    }
    // Once admitted, the outsider is placed: the refusal above was admission's doing.
    cluster.client(0).admit(&outsider_name).expect("admitted");
    let addr = cluster.peer_addr(outsider);
    wait_for("the admitted node to get a seat", TIMEOUT, || {
        holds_a_seat(&cluster, 0, &addr)?.then_some(())
    });
    assert_eq!(waiting(0).expect("status"), Vec::<String>::new());
}
