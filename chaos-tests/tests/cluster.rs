//! Each cluster mechanism shown once on real `inkling serve` processes on 127.0.N.x: the
//! loss of a partition leader, a frozen node, and the erasure of a user on every replica.
//! The randomized fault suite belongs to the chaos issue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inkling_chaos_tests::{ClusterSandbox, NodeSpec, get_json, post_json, wait_for};
use inkling_cluster::partition_of;
use serde_json::{Value, json};

const NODES: usize = 3;
/// Generous for a loaded two-core machine running debug builds; the failover time itself
/// is measured by a benchmark, not asserted here.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(20);

fn binary() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_inkling-node").as_ref()
}

fn view(user: &str, event_id: &str) -> Value {
    json!({ "user_id": user, "type": "view", "item_id": "xiaomi-12", "event_id": event_id })
}

/// The user's profile event count through node `index`'s gateway, if it answers.
fn event_count(cluster: &ClusterSandbox, index: usize, user: &str) -> Option<u64> {
    get_json(&cluster.url(index), &format!("/v1/users/{user}/profile")).ok()?["event_count"]
        .as_u64()
}

/// Writes events for `user` through the running gateways, in turn, until stopped; answers
/// the idempotency keys acknowledged and the number sent. A batch that fails is retried
/// with the same keys through the next gateway, as a client with a retry budget would.
fn write_until_stopped(
    urls: Vec<String>,
    user: String,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, u64) {
    let mut acknowledged = Vec::new();
    let mut sequence = 0u64;
    let mut gateway = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{user}-{sequence}");
        let body = json!({ "events": [view(&user, &key)] });
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        while Instant::now() < deadline {
            gateway = (gateway + 1) % urls.len();
            if post_json(&urls[gateway], "/v1/events", &body).is_ok() {
                acknowledged.push(key.clone());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        sequence += 1;
    }
    (acknowledged, sequence)
}

#[test]
fn kill_9_of_a_partition_leader_loses_no_acknowledged_event() {
    let mut cluster = ClusterSandbox::start(binary(), 61, NODES);
    let user = "shopper-kill".to_string();
    let partition = u64::from(partition_of(&user));
    let leader = cluster.index_of(&cluster.leader_of(0, partition).expect("a leader"));
    let survivors: Vec<usize> = (0..NODES).filter(|index| *index != leader).collect();
    let urls: Vec<String> = survivors.iter().map(|index| cluster.url(*index)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (urls, user, stop) = (urls.clone(), user.clone(), stop.clone());
        std::thread::spawn(move || write_until_stopped(urls, user, stop))
    };
    wait_for(
        "events acknowledged before the kill",
        RECOVERY_TIMEOUT,
        || (event_count(&cluster, survivors[0], &user)? >= 5).then_some(()),
    );
    cluster.kill_hard(leader);
    let killed_at = Instant::now();
    let served_again = wait_for("the user to be served again", RECOVERY_TIMEOUT, || {
        event_count(&cluster, survivors[1], &user).map(|_| killed_at.elapsed())
    });
    // Keep writing a little while the new leader serves.
    let before = event_count(&cluster, survivors[0], &user).unwrap_or(0);
    wait_for(
        "events acknowledged after the kill",
        RECOVERY_TIMEOUT,
        || (event_count(&cluster, survivors[0], &user)? >= before + 5).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, sent) = writer.join().unwrap();
    println!("served again {served_again:?} after kill -9 of the leader");
    // Every node indexes the whole catalog: a search during the loss is complete.
    for reader in &survivors {
        let body = json!({ "user_id": "searcher", "query": "手机", "k": 5, "mode": "lexical" });
        let answer =
            post_json(&cluster.url(*reader), "/v1/search", &body).expect("search answered");
        assert_eq!(answer["complete"], true, "{answer}");
        assert!(!answer["items"].as_array().unwrap().is_empty(), "{answer}");
    }

    for reader in survivors {
        let stored = event_count(&cluster, reader, &user).expect("profile readable");
        assert!(
            (acknowledged.len() as u64..=sent).contains(&stored),
            "read through node {reader}: {} acknowledged, {sent} sent, {stored} stored",
            acknowledged.len()
        );
    }
}

/// Node `index`'s number of live sessions.
fn sessions_on(cluster: &ClusterSandbox, index: usize) -> Option<u64> {
    let status = cluster.status(index).ok()?;
    status["partitions"]
        .as_array()?
        .iter()
        .map(|entry| entry["sessions"].as_u64())
        .sum()
}

/// Partitions where a node other than the leader of the newest term holds sessions, as
/// (partition, node) pairs; `None` while some node does not answer.
fn stray_sessions(cluster: &ClusterSandbox) -> Option<Vec<(u64, usize)>> {
    // partition -> (node, term, leads, sessions) for every node
    let mut views: BTreeMap<u64, Vec<(usize, u64, bool, u64)>> = BTreeMap::new();
    for index in 0..cluster.len() {
        let status = cluster.status(index).ok()?;
        for entry in status["partitions"].as_array()? {
            views
                .entry(entry["partition"].as_u64()?)
                .or_default()
                .push((
                    index,
                    entry["term"].as_u64()?,
                    entry["state"] == "Leader",
                    entry["sessions"].as_u64()?,
                ));
        }
    }
    let mut stray = Vec::new();
    for (partition, nodes) in views {
        let newest = nodes.iter().map(|(_, term, _, _)| *term).max().unwrap_or(0);
        for (node, term, leads, sessions) in nodes {
            if sessions > 0 && !(leads && term == newest) {
                stray.push((partition, node));
            }
        }
    }
    Some(stray)
}

#[test]
fn a_frozen_node_is_declared_down_and_rejoins_with_no_second_session() {
    let cluster = ClusterSandbox::start(binary(), 62, NODES);
    // One shopper per partition, each read once so its session is active on its leader.
    let users: BTreeMap<u16, String> = (0..200)
        .map(|n| format!("frozen-{n}"))
        .map(|user| (partition_of(&user), user))
        .collect();
    for user in users.values() {
        let events = json!({ "events": [view(user, &format!("{user}-0"))] });
        post_json(&cluster.url(1), "/v1/events", &events).expect("event acknowledged");
        assert_eq!(event_count(&cluster, 1, user), Some(1));
    }
    let (frozen, frozen_name, observer) = (0, "node-1", 1);
    let sessions_before = sessions_on(&cluster, frozen).unwrap();
    assert!(
        sessions_before > 0,
        "the frozen node held no session to go stale"
    );

    cluster.node(frozen).signal("STOP");
    wait_for(
        "the frozen node to be declared down",
        RECOVERY_TIMEOUT,
        || {
            let status = cluster.status(observer).ok()?;
            let dead = status["dead"].as_array()?;
            dead.iter().any(|name| name == frozen_name).then_some(())
        },
    );
    for user in users.values() {
        wait_for(
            "every user to be served by the live nodes",
            RECOVERY_TIMEOUT,
            || (event_count(&cluster, observer, user)? >= 1).then_some(()),
        );
    }
    cluster.node(frozen).signal("CONT");
    wait_for("the resumed node to rejoin", RECOVERY_TIMEOUT, || {
        let status = cluster.status(observer).ok()?;
        let live = status["members"].as_array()?;
        live.iter()
            .any(|member| member["name"] == frozen_name)
            .then_some(())
    });
    // The resumed node learns it was deposed and drops the sessions of partitions it no
    // longer leads; it may win elections again, but then it is the only leader.
    wait_for(
        "sessions only on the newest leaders",
        RECOVERY_TIMEOUT,
        || stray_sessions(&cluster)?.is_empty().then_some(()),
    );
}

#[test]
fn an_erased_user_is_gone_from_every_replica() {
    let cluster = ClusterSandbox::start(binary(), 63, NODES);
    let user = "shopper-erased";
    let events = json!({ "events": [view(user, "erase-1"), view(user, "erase-2")] });
    post_json(&cluster.url(1), "/v1/events", &events).expect("events acknowledged");
    let stored_on = |index: usize| -> Option<bool> {
        let answer = get_json(
            &cluster.url(index),
            &format!("/internal/replica/users/{user}"),
        )
        .ok()?;
        Some(!answer["Ok"].is_null())
    };
    for index in 0..NODES {
        wait_for("every replica to hold the user", RECOVERY_TIMEOUT, || {
            stored_on(index)?.then_some(())
        });
    }
    let erased = NodeDelete::call(&cluster.url(2), user);
    assert_eq!(erased["erased"], user);
    for index in 0..NODES {
        wait_for("every replica to drop the user", RECOVERY_TIMEOUT, || {
            (!stored_on(index)?).then_some(())
        });
        let profile = get_json(&cluster.url(index), &format!("/v1/users/{user}/profile"));
        assert!(
            profile.unwrap_err().contains("404"),
            "node {index} still serves a profile"
        );
    }
}

#[test]
fn a_product_written_through_one_node_is_searchable_on_every_node() {
    let cluster = ClusterSandbox::start(binary(), 64, NODES);
    let product = json!({ "products": [{
        "id": "sandbox-kettle", "title": "Sandbox Electric Kettle", "category_path": ["Kitchen"],
        "brand": "Philips", "price": 199
    }]});
    inkling_chaos_tests::NodeProcess::agent()
        .put(&format!("{}/v1/products", cluster.url(0)))
        .send_json(product)
        .expect("upsert answered");
    let search = |index: usize| -> Option<Vec<String>> {
        let body = json!({ "user_id": format!("searcher-{index}"), "query": "sandbox kettle", "k": 3, "mode": "lexical" });
        let answer = post_json(&cluster.url(index), "/v1/search", &body).ok()?;
        Some(
            answer["items"]
                .as_array()?
                .iter()
                .filter_map(|item| item["product"]["id"].as_str().map(str::to_string))
                .collect(),
        )
    };
    for index in 0..NODES {
        wait_for(
            "the product to be searchable on every node",
            RECOVERY_TIMEOUT,
            || {
                search(index)?
                    .contains(&"sandbox-kettle".to_string())
                    .then_some(())
            },
        );
    }
}

#[test]
fn a_node_joins_and_another_drains_under_traffic_without_losing_events() {
    let mut cluster = ClusterSandbox::start(binary(), 65, NODES);
    let urls: Vec<String> = (0..NODES).map(|index| cluster.url(index)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (urls, stop) = (urls.clone(), stop.clone());
            let user = format!("mover-{writer}");
            std::thread::spawn(move || (user.clone(), write_until_stopped(urls, user, stop)))
        })
        .collect();

    let joined = cluster.join();
    wait_for(
        "the new node to hold replicas and the catalog",
        RECOVERY_TIMEOUT * 3,
        || {
            let status = cluster.status(joined).ok()?;
            let voter_of = status["partitions"]
                .as_array()?
                .iter()
                .filter(|group| group["group"] == "users")
                .count();
            let products = get_json(&cluster.url(joined), "/healthz").ok()?["products"].as_u64()?;
            let expected = get_json(&cluster.url(0), "/healthz").ok()?["products"].as_u64()?;
            (voter_of > 0 && products == expected).then_some(())
        },
    );
    cluster.drain(1, RECOVERY_TIMEOUT * 3);
    for index in [0, 2, joined] {
        let status = cluster.status(index).unwrap();
        let drained = cluster.url(1).trim_start_matches("http://").to_string();
        for group in status["partitions"].as_array().unwrap() {
            let voters = group["voters"].as_array().unwrap();
            assert!(
                !voters.iter().any(|voter| voter == &drained),
                "node {index} still counts the drained node: {group}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let (user, (acknowledged, sent)) = writer.join().unwrap();
        assert!(
            acknowledged.len() >= 3,
            "{user}: too few writes to prove anything"
        );
        for reader in [0, joined] {
            let stored = wait_for("the profile to be readable", RECOVERY_TIMEOUT, || {
                event_count(&cluster, reader, &user)
            });
            assert!(
                (acknowledged.len() as u64..=sent).contains(&stored),
                "{user} read through node {reader}: {} acknowledged, {sent} sent, {stored} stored",
                acknowledged.len()
            );
        }
    }
}

struct NodeDelete;

impl NodeDelete {
    fn call(base_url: &str, user: &str) -> Value {
        inkling_chaos_tests::NodeProcess::agent()
            .delete(&format!("{base_url}/v1/users/{user}"))
            .call()
            .expect("erase answered")
            .into_json()
            .expect("erase answer is JSON")
    }
}

/// Writes a certificate authority and one certificate for every node (naming each by its
/// IP address) into `folder`, and answers the flags that turn on mutual TLS.
fn tls_flags(folder: &std::path::Path, ips: Vec<String>) -> Vec<String> {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer};
    use rcgen::{KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let node_key = KeyPair::generate().expect("node key");
    let mut node = CertificateParams::new(ips).expect("node parameters");
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let node_cert = node
        .signed_by(&node_key, &issuer)
        .expect("node certificate");
    let files = [
        ("ca.pem", ca_cert.pem()),
        ("node.pem", node_cert.pem()),
        ("node.key", node_key.serialize_pem()),
    ];
    for (name, pem) in &files {
        std::fs::write(folder.join(name), pem).expect("write a PEM file");
    }
    let path = |name: &str| folder.join(name).display().to_string();
    vec![
        "--tls-cert".to_string(),
        path("node.pem"),
        "--tls-key".to_string(),
        path("node.key"),
        "--tls-ca".to_string(),
        path("ca.pem"),
    ]
}

#[test]
fn the_actor_mesh_runs_over_mutual_tls() {
    let subnet = 66;
    let folder = tempfile::tempdir().expect("temporary folder");
    let ips = (1..=2)
        .map(|node| format!("127.0.{subnet}.{node}"))
        .collect();
    let flags = tls_flags(folder.path(), ips);
    // `start_with` returns once every node has an authenticated mesh session with the
    // other, which a node accepting only TLS grants only over TLS.
    let specs = vec![NodeSpec::flags(flags.clone()), NodeSpec::flags(flags)];
    let cluster = ClusterSandbox::start_with(binary(), subnet, specs);
    let user = cluster.user_led_by(0, 1);
    let events = json!({ "events": [view(&user, "over-tls")] });
    post_json(&cluster.url(1), "/v1/events", &events).expect("events through the mesh");
    assert_eq!(event_count(&cluster, 1, &user), Some(1));
}

#[test]
fn roles_split_the_model_pool_the_sessions_and_the_api_between_nodes() {
    let encoder = ["--model", "all-minilm-l6-v2", "--models-dir"].map(String::from);
    let models_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../.deps/models").to_string();
    let common: Vec<String> = encoder
        .into_iter()
        .chain([
            models_dir,
            "--catalog".into(),
            "none".into(),
            "--roles".into(),
        ])
        .collect();
    let pool_node = [common.clone(), vec!["models,index".into()]].concat();
    let session_node = [common, vec!["gateway,sessions,index".into()]].concat();
    let specs = vec![NodeSpec::flags(pool_node), NodeSpec::flags(session_node)];
    let cluster = ClusterSandbox::start_with(binary(), 67, specs);

    // Node 0 has no gateway role: the public API is refused with a reason.
    let body = json!({ "user_id": "anyone", "query": "flask", "k": 1 });
    let refused = post_json(&cluster.url(0), "/v1/search", &body).expect_err("not a gateway");
    assert!(refused.contains("421"), "{refused}");
    // Node 0 has no sessions role: the leaders move every user partition's voters off it.
    let session_node_addr = cluster.url(1).trim_start_matches("http://").to_string();
    wait_for(
        "user partitions voted by node 1 alone",
        RECOVERY_TIMEOUT,
        || {
            let status = cluster.status(1).ok()?;
            let partitions = status["partitions"].as_array()?;
            let users_only = partitions
                .iter()
                .filter(|p| p["partition"].as_u64() < Some(16));
            users_only
                .map(|p| p["voters"].clone())
                .all(|voters| voters == json!([session_node_addr]))
                .then_some(())
        },
    );
    let pools = cluster.status(1).expect("status")["model_pools"].clone();
    assert_eq!(pools, json!({ "inkling.models.all-minilm-l6-v2.cpu": 1 }));

    let products = json!({ "products": [
        { "id": "flask", "title": "Stainless Steel Vacuum Thermos Flask", "category_path": ["Kitchen"], "price": 99 },
        { "id": "headphones", "title": "Wireless Noise Cancelling Headphones", "category_path": ["Audio"], "price": 899 },
        { "id": "shoes", "title": "Lightweight Trail Running Shoes", "category_path": ["Sports"], "price": 459 },
    ]});
    inkling_chaos_tests::NodeProcess::agent()
        .put(&format!("{}/v1/products", cluster.url(1)))
        .send_json(products)
        .expect("the node without an encoder embeds new products through the remote pool");

    // Served by node 1's own session: no word of the query is in the flask's title, so
    // only the query's embedding, made by node 0's pool, can find it.
    let top = |mode: &str| -> Option<String> {
        let body = json!({ "user_id": "thirsty", "query": "something to keep my coffee hot for hours", "k": 1, "mode": mode });
        let answer = post_json(&cluster.url(1), "/v1/search", &body).ok()?;
        Some(
            answer["items"][0]["product"]["id"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    let hybrid = wait_for("a hybrid search answer", RECOVERY_TIMEOUT, || top("hybrid"));
    assert_eq!(hybrid, "flask");
    assert_ne!(top("lexical").as_deref(), Some("flask"));
}

#[test]
fn a_search_whose_local_shards_stall_is_answered_by_replicas_on_another_node() {
    // Node 1's copy of every shard takes 3 s to search, far past the shard deadline; the
    // test build of the binary reads FAILPOINTS.
    let stalled = (0..4)
        .map(|shard| format!("index-shard-{shard}-search=sleep(3000)"))
        .collect::<Vec<_>>()
        .join(";");
    let specs = vec![
        NodeSpec::default(),
        NodeSpec {
            flags: Vec::new(),
            env: vec![("FAILPOINTS".to_string(), stalled)],
        },
    ];
    let cluster = ClusterSandbox::start_with(binary(), 68, specs);
    let user = cluster.user_led_by(1, 1);
    let search = |index: usize| -> Option<(Vec<String>, f64)> {
        let body = json!({ "user_id": user, "query": "xiaomi phone", "k": 5, "mode": "lexical" });
        let answer = post_json(&cluster.url(index), "/v1/search", &body).ok()?;
        let ids = answer["items"].as_array()?.iter();
        let ids = ids.filter_map(|item| item["product"]["id"].as_str().map(str::to_string));
        Some((ids.collect(), answer["coverage"].as_f64()?))
    };
    // Served by node 1's session, whose own shards never answer in time: every shard
    // answers from node 0's replicas (retried, since a loaded machine may miss a deadline).
    let ids = wait_for(
        "a complete answer from remote replicas",
        RECOVERY_TIMEOUT,
        || {
            let (ids, coverage) = search(1)?;
            (coverage == 1.0).then_some(ids)
        },
    );
    assert!(!ids.is_empty());
}
