//! Each cluster mechanism shown once on real `inkling serve` processes on 127.0.N.x: the
//! loss of a partition leader, a frozen node, and the erasure of a user on every replica.
//! The randomized fault suite belongs to the chaos issue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inkling_api::{
    Client, EventBatch, EventBody, EventType, ProductBatch, ProductBody, SearchBody, SearchMode,
};
use inkling_auth::ClusterSecret;
use inkling_auth::secret::{ACCEPTED_SECRET_ENV, SECRET_ENV};
use inkling_chaos_tests::{ClusterSandbox, Credentials, NodeOptions, wait_for};
use inkling_replication::partition_of;

const NODES: usize = 3;
/// Generous for a loaded two-core machine running debug builds; the failover time itself
/// is measured by a benchmark, not asserted here.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(20);

fn binary() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_inkling-node").as_ref()
}

fn view(user: &str, event_id: &str) -> EventBody {
    EventBody {
        event_id: Some(event_id.to_string()),
        ..EventBody::on_item(user, EventType::View, "xiaomi-12")
    }
}

fn batch(events: Vec<EventBody>) -> EventBatch {
    EventBatch::new(events)
}

fn lexical(user: &str, query: &str, k: usize) -> SearchBody {
    SearchBody {
        mode: SearchMode::Lexical,
        ..SearchBody::new(user, query, k)
    }
}

/// The user's profile event count through node `index`'s gateway, if it answers.
fn event_count(cluster: &ClusterSandbox, index: usize, user: &str) -> Option<u64> {
    Some(cluster.client(index).profile(user).ok()?.event_count)
}

/// Writes events for `user` through the running gateways, in turn, until stopped; answers
/// the idempotency keys acknowledged and the number sent. A batch that fails is retried
/// with the same keys through the next gateway, as a client with a retry budget would.
fn write_until_stopped(
    gateways: Vec<Client>,
    user: String,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, u64) {
    let mut acknowledged = Vec::new();
    let mut sequence = 0u64;
    let mut gateway = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{user}-{sequence}");
        let body = batch(vec![view(&user, &key)]);
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        while Instant::now() < deadline {
            gateway = (gateway + 1) % gateways.len();
            if gateways[gateway].events(&body).is_ok() {
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
    let partition = partition_of(&user);
    let leader = cluster.index_of(&cluster.leader_of(0, partition).expect("a leader"));
    let survivors: Vec<usize> = (0..NODES).filter(|index| *index != leader).collect();
    let gateways: Vec<Client> = survivors
        .iter()
        .map(|index| cluster.client(*index))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (user, stop) = (user.clone(), stop.clone());
        std::thread::spawn(move || write_until_stopped(gateways, user, stop))
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
        let answer = cluster
            .client(*reader)
            .search(&lexical("searcher", "手机", 5))
            .expect("search answered");
        assert!(answer.complete, "{answer:?}");
        assert!(!answer.items.is_empty(), "{answer:?}");
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
fn sessions_on(cluster: &ClusterSandbox, index: usize) -> Option<usize> {
    let status = cluster.status(index).ok()?;
    Some(status.partitions.iter().map(|entry| entry.sessions).sum())
}

/// Partitions where a node other than the leader of the newest term holds sessions, as
/// (partition, node) pairs; `None` while some node does not answer.
fn stray_sessions(cluster: &ClusterSandbox) -> Option<Vec<(u16, usize)>> {
    // partition -> (node, term, leads, sessions) for every node
    let mut views: BTreeMap<u16, Vec<(usize, u64, bool, usize)>> = BTreeMap::new();
    for index in 0..cluster.len() {
        let status = cluster.status(index).ok()?;
        for entry in status.partitions {
            views.entry(entry.partition).or_default().push((
                index,
                entry.term,
                entry.state == "Leader",
                entry.sessions,
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
    let mut cluster = ClusterSandbox::start(binary(), 62, NODES);
    // One shopper per partition, each read once so its session is active on its leader.
    let users: BTreeMap<u16, String> = (0..200)
        .map(|n| format!("frozen-{n}"))
        .map(|user| (partition_of(&user), user))
        .collect();
    for user in users.values() {
        let events = batch(vec![view(user, &format!("{user}-0"))]);
        cluster
            .client(1)
            .events(&events)
            .expect("event acknowledged");
        assert_eq!(event_count(&cluster, 1, user), Some(1));
    }
    let (frozen, frozen_name, observer) = (0, "node-1", 1);
    let sessions_before = sessions_on(&cluster, frozen).unwrap();
    assert!(
        sessions_before > 0,
        "the frozen node held no session to go stale"
    );

    cluster.nodes().pause(frozen).expect("SIGSTOP");
    wait_for(
        "the frozen node to be declared down",
        RECOVERY_TIMEOUT,
        || {
            let status = cluster.status(observer).ok()?;
            status
                .dead
                .iter()
                .any(|name| name == frozen_name)
                .then_some(())
        },
    );
    for user in users.values() {
        wait_for(
            "every user to be served by the live nodes",
            RECOVERY_TIMEOUT,
            || (event_count(&cluster, observer, user)? >= 1).then_some(()),
        );
    }
    cluster.nodes().resume(frozen).expect("SIGCONT");
    wait_for("the resumed node to rejoin", RECOVERY_TIMEOUT, || {
        let status = cluster.status(observer).ok()?;
        let live = status.members;
        live.iter()
            .any(|member| member.name == frozen_name)
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
    let events = batch(vec![view(user, "erase-1"), view(user, "erase-2")]);
    cluster
        .client(1)
        .events(&events)
        .expect("events acknowledged");
    let stored_on = |index: usize| -> Option<bool> {
        // The node's own `Result` of an optional profile, as JSON.
        let answer: serde_json::Value = cluster.client(index).replica_user(user).ok()?;
        Some(!answer["Ok"].is_null())
    };
    for index in 0..NODES {
        wait_for("every replica to hold the user", RECOVERY_TIMEOUT, || {
            stored_on(index)?.then_some(())
        });
    }
    let erased = cluster.client(2).erase_user(user).expect("erase answered");
    assert_eq!(erased.erased, user);
    for index in 0..NODES {
        wait_for("every replica to drop the user", RECOVERY_TIMEOUT, || {
            (!stored_on(index)?).then_some(())
        });
        let profile = cluster.client(index).profile(user);
        assert_eq!(
            profile.unwrap_err().status,
            Some(404),
            "node {index} still serves a profile"
        );
    }
}

#[test]
fn a_product_written_through_one_node_is_searchable_on_every_node() {
    let cluster = ClusterSandbox::start(binary(), 64, NODES);
    let kettle = ProductBody {
        category_path: vec!["Kitchen".into()],
        brand: Some("Philips".into()),
        ..ProductBody::new("sandbox-kettle", "Sandbox Electric Kettle", 199.0)
    };
    cluster
        .client(0)
        .upsert_products(&ProductBatch {
            products: vec![kettle],
        })
        .expect("upsert answered");
    let search = |index: usize| -> Option<Vec<String>> {
        let body = lexical(&format!("searcher-{index}"), "sandbox kettle", 3);
        let answer = cluster.client(index).search(&body).ok()?;
        Some(
            answer
                .items
                .into_iter()
                .map(|item| item.product.id)
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
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let gateways: Vec<Client> = (0..NODES).map(|index| cluster.client(index)).collect();
            let stop = stop.clone();
            let user = format!("mover-{writer}");
            std::thread::spawn(move || (user.clone(), write_until_stopped(gateways, user, stop)))
        })
        .collect();

    let joined = cluster.join();
    wait_for(
        "the new node to hold replicas and the catalog",
        RECOVERY_TIMEOUT * 3,
        || {
            let status = cluster.status(joined).ok()?;
            let voter_of = status
                .partitions
                .iter()
                .filter(|group| group.group == "users")
                .count();
            let products = cluster.client(joined).health().ok()?.products;
            let expected = cluster.client(0).health().ok()?.products;
            (voter_of > 0 && products == expected).then_some(())
        },
    );
    cluster.drain(1, RECOVERY_TIMEOUT * 3);
    for index in [0, 2, joined] {
        let status = cluster.status(index).unwrap();
        let drained = cluster.peer_addr(1);
        for group in &status.partitions {
            assert!(
                !group.voters.contains(&drained),
                "node {index} still counts the drained node: {group:?}"
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

/// Writes a certificate authority and one certificate for every node (naming each by its
/// IP address) into `folder`, and answers the flags that turn on mutual TLS.
/// A cluster authority in `folder`, and for each of `names` a certificate naming that node
/// (a DNS name) signed by it: each node's `--tls-*` flags, in the order of `names`.
fn tls_flags(folder: &std::path::Path, names: &[&str]) -> Vec<Vec<String>> {
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
    std::fs::write(folder.join("ca.pem"), ca_cert.pem()).expect("write the CA");
    let issuer = Issuer::new(ca, ca_key);
    let path = |name: String| folder.join(name).display().to_string();
    names
        .iter()
        .map(|name| {
            let node_key = KeyPair::generate().expect("node key");
            let mut node = CertificateParams::new(vec![name.to_string()]).expect("node parameters");
            node.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let node_cert = node
                .signed_by(&node_key, &issuer)
                .expect("node certificate");
            std::fs::write(folder.join(format!("{name}.pem")), node_cert.pem())
                .expect("write a certificate");
            std::fs::write(folder.join(format!("{name}.key")), node_key.serialize_pem())
                .expect("write a key");
            vec![
                "--tls-cert".to_string(),
                path(format!("{name}.pem")),
                "--tls-key".to_string(),
                path(format!("{name}.key")),
                "--tls-ca".to_string(),
                path("ca.pem".to_string()),
            ]
        })
        .collect()
}

#[test]
fn the_actor_mesh_runs_over_mutual_tls_in_the_middle_of_a_secret_rotation() {
    let subnet = 66;
    let folder = tempfile::tempdir().expect("temporary folder");
    let flags = tls_flags(folder.path(), &["node-1", "node-2"]);
    // Step 2 of a rotation half rolled out: node-1 still signs with the sandbox's secret
    // and accepts the new one; node-2 signs with the new one and accepts the old.
    let credentials = Credentials::generate();
    let old = credentials.secret.clone();
    let new = ClusterSecret::generate();
    let accepting = |secret: &ClusterSecret| (ACCEPTED_SECRET_ENV.to_string(), secret.to_hex());
    let envs = [
        vec![accepting(&new)],
        vec![(SECRET_ENV.to_string(), new.to_hex()), accepting(&old)],
    ];
    let specs = flags
        .into_iter()
        .zip(envs)
        .map(|(flags, env)| NodeOptions { flags, env })
        .collect();
    // `start_with` returns once every node has an authenticated mesh session with the
    // other, which a node accepting only TLS grants only over TLS.
    let cluster = ClusterSandbox::start_with_credentials(binary(), subnet, specs, credentials);
    let user = cluster.user_led_by(0, 1);
    let events = batch(vec![view(&user, "over-tls")]);
    cluster
        .client(1)
        .events(&events)
        .expect("events through the mesh");
    assert_eq!(event_count(&cluster, 1, &user), Some(1));
}

/// What node `index` counts under `inkling_peer_refusals_total{reason}`.
fn refusals(cluster: &ClusterSandbox, index: usize, reason: &str) -> Option<f64> {
    let series = format!("inkling_peer_refusals_total{{reason=\"{reason}\"}}");
    metric_sum(cluster, index, &series)
}

/// The sum of node `index`'s `/metrics` lines that start with `series` (a name, or a name
/// with its first labels).
fn metric_sum(cluster: &ClusterSandbox, index: usize, series: &str) -> Option<f64> {
    let text = cluster.client(index).metrics().ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[test]
fn a_certificate_cannot_answer_for_another_node() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let flags = tls_flags(folder.path(), &["node-1", "node-2", "node-3"]);
    // node-2 presents node-3's certificate. Of a pair, the greater name dials the mesh:
    // node-1 must refuse node-2's session (accepting: the client certificate names
    // node-3), node-3 must refuse to dial node-2 (dialling: the server certificate does
    // not name node-2), and the peer planes of both must refuse node-2's raft messages.
    // node-1 and node-3 mesh with each other. (Leadership is not waited for: the impostor,
    // whose messages no one hears, campaigns in ever higher terms that its answers to the
    // leaders' appends then reveal; that is raft without pre-vote, and it holds the secret.)
    // No catalog: the node that loads it may be the impostor.
    let node = |certificate: &Vec<String>| {
        NodeOptions::flags([certificate.clone(), vec!["--catalog".into(), "none".into()]].concat())
    };
    let nodes = vec![node(&flags[0]), node(&flags[2]), node(&flags[2])];
    let cluster = ClusterSandbox::start_unmeshed(binary(), 68, nodes);
    wait_for("node-1 and node-3 to mesh", RECOVERY_TIMEOUT, || {
        let peers = cluster.status(0).ok()?.mesh_peers;
        (peers == ["node-3"]).then_some(())
    });
    for honest in [0, 2] {
        wait_for(
            "the impostor's raft messages refused",
            RECOVERY_TIMEOUT,
            || (refusals(&cluster, honest, "member")? > 0.0).then_some(()),
        );
    }
    wait_for(
        "node-1 to close the impostor's mesh session",
        RECOVERY_TIMEOUT,
        || (refusals(&cluster, 0, "mesh")? > 0.0).then_some(()),
    );
    // node-3 never completes a TLS handshake with node-2, so neither ever lists the other.
    // (node-1 closes the impostor's session only once it has authenticated, so for a
    // moment node-1 and node-2 may list each other: counted above, not sampled here.)
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let impostor = cluster.status(1).expect("status").mesh_peers;
        assert!(!impostor.contains(&"node-3".to_string()), "{impostor:?}");
        let honest = cluster.status(2).expect("status").mesh_peers;
        assert!(!honest.contains(&"node-2".to_string()), "{honest:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
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
    let specs = vec![
        NodeOptions::flags(pool_node),
        NodeOptions::flags(session_node),
    ];
    let cluster = ClusterSandbox::start_with(binary(), 67, specs);

    // Node 0 has no gateway role: the public API is refused with a reason.
    let body = SearchBody::new("anyone", "flask", 1);
    let refused = cluster.client(0).search(&body).expect_err("not a gateway");
    assert_eq!(refused.status, Some(421), "{refused}");
    // Node 0 has no sessions role: the leaders move every user partition's voters off it.
    let session_node_addr = cluster.peer_addr(1);
    wait_for(
        "user partitions voted by node 1 alone",
        RECOVERY_TIMEOUT,
        || {
            let status = cluster.status(1).ok()?;
            let mut users_only = status.partitions.iter().filter(|p| p.partition < 16);
            users_only
                .all(|p| p.voters == [session_node_addr.clone()])
                .then_some(())
        },
    );
    let pools = cluster.status(1).expect("status").model_pools;
    let expected = BTreeMap::from([("inkling.models.all-minilm-l6-v2.cpu".to_string(), 1)]);
    assert_eq!(pools, expected);

    let products = [
        (
            "flask",
            "Stainless Steel Vacuum Thermos Flask",
            "Kitchen",
            99.0,
        ),
        (
            "headphones",
            "Wireless Noise Cancelling Headphones",
            "Audio",
            899.0,
        ),
        ("shoes", "Lightweight Trail Running Shoes", "Sports", 459.0),
    ]
    .map(|(id, title, category, price)| ProductBody {
        category_path: vec![category.into()],
        ..ProductBody::new(id, title, price)
    });
    cluster
        .client(1)
        .upsert_products(&ProductBatch {
            products: products.to_vec(),
        })
        .expect("the node without an encoder embeds new products through the remote pool");
    // Embedded once, by the node that took the write; both replicas index what it sent.
    wait_for("the products indexed on node 0", RECOVERY_TIMEOUT, || {
        (metric_sum(&cluster, 0, "inkling_index_products{")? == 3.0).then_some(())
    });
    let embedded = |index: usize, reason: &str| {
        let series = format!("inkling_passages_embedded_total{{reason=\"{reason}\"}}");
        metric_sum(&cluster, index, &series)
    };
    assert_eq!(embedded(1, "write"), Some(3.0));
    assert_eq!(embedded(0, "write"), Some(0.0));
    for index in 0..2 {
        assert_eq!(embedded(index, "replica"), Some(0.0), "node {index}");
    }

    // Served by node 1's own session: no word of the query is in the flask's title, so
    // only the query's embedding, made by node 0's pool, can find it.
    let top = |mode: SearchMode| -> Option<String> {
        let query = "something to keep my coffee hot for hours";
        let body = SearchBody {
            mode,
            ..SearchBody::new("thirsty", query, 1)
        };
        let answer = cluster.client(1).search(&body).ok()?;
        Some(
            answer
                .items
                .first()
                .map(|item| item.product.id.clone())
                .unwrap_or_default(),
        )
    };
    let hybrid = wait_for("a hybrid search answer", RECOVERY_TIMEOUT, || {
        top(SearchMode::Hybrid)
    });
    assert_eq!(hybrid, "flask");
    assert_ne!(top(SearchMode::Lexical).as_deref(), Some("flask"));
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
        NodeOptions::default(),
        NodeOptions {
            flags: Vec::new(),
            env: vec![("FAILPOINTS".to_string(), stalled)],
        },
    ];
    let cluster = ClusterSandbox::start_with(binary(), 68, specs);
    let user = cluster.user_led_by(1, 1);
    let search = |index: usize| -> Option<(Vec<String>, f64)> {
        let answer = cluster
            .client(index)
            .search(&lexical(&user, "xiaomi phone", 5))
            .ok()?;
        let ids = answer.items.into_iter().map(|item| item.product.id);
        Some((ids.collect(), answer.coverage))
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

/// Whether node `index` finds all `products` shard-test widgets, with every shard answering.
fn finds_every_widget(cluster: &ClusterSandbox, index: usize, products: usize) -> Option<()> {
    let body = lexical("shard-reader", "shardtest widget", 200);
    let answer = cluster.client(index).search(&body).ok()?;
    (answer.items.len() == products && answer.coverage == 1.0).then_some(())
}

/// How many shards each of the `nodes` holds and what it counts in
/// `inkling_index_products`, once they have settled: each of the 8 shards held twice,
/// `products` products in all, and no node holding more than one shard above another
/// (a node still giving a shard up holds more).
fn settled_spread(
    cluster: &ClusterSandbox,
    nodes: &[usize],
    products: f64,
) -> Option<Vec<(usize, f64)>> {
    let mut copies = [0usize; 8];
    let mut spread = Vec::new();
    for index in nodes {
        let held = cluster.status(*index).ok()?.index_shards_held;
        for shard in &held {
            *copies.get_mut(*shard)? += 1;
        }
        let indexed = metric_sum(cluster, *index, "inkling_index_products{")?;
        spread.push((held.len(), indexed));
    }
    let held_products: f64 = spread.iter().map(|(_, products)| products).sum();
    let fewest = spread.iter().map(|(shards, _)| *shards).min()?;
    let most = spread.iter().map(|(shards, _)| *shards).max()?;
    let settled = copies.iter().all(|copies| *copies == 2) && most - fewest <= 1;
    (settled && held_products == products).then_some(spread)
}

#[test]
fn each_index_shard_lives_on_r_nodes_and_a_killed_nodes_shards_move_to_the_others() {
    const PRODUCTS: usize = 120;
    let twice = 2.0 * PRODUCTS as f64;
    let flags = [
        "--catalog",
        "none",
        "--shards",
        "8",
        "--index-replicas",
        "2",
    ];
    let nodes = (0..4)
        .map(|_| NodeOptions::flags(flags.map(String::from).to_vec()))
        .collect();
    let mut cluster = ClusterSandbox::start_with(binary(), 69, nodes);
    cluster.wait_until_meshed();
    let products = (0..PRODUCTS)
        .map(|n| ProductBody {
            category_path: vec!["Gadgets".into()],
            ..ProductBody::new(format!("widget-{n}"), format!("Shardtest widget {n}"), 10.0)
        })
        .collect();
    cluster
        .client(0)
        .upsert_products(&ProductBatch { products })
        .expect("upsert answered");
    // 8 shards twice over 4 nodes: 4 shards each, each product on exactly two nodes.
    let spread = wait_for("each shard on two nodes", RECOVERY_TIMEOUT, || {
        settled_spread(&cluster, &[0, 1, 2, 3], twice)
    });
    println!("(shards, products) per node: {spread:?}");
    assert!(spread.iter().all(|(shards, _)| *shards == 4), "{spread:?}");
    for index in 0..4 {
        wait_for("every product found", RECOVERY_TIMEOUT, || {
            finds_every_widget(&cluster, index, PRODUCTS)
        });
    }

    cluster.kill_hard(3);
    let killed = Instant::now();
    wait_for("every product found after a kill", RECOVERY_TIMEOUT, || {
        finds_every_widget(&cluster, 0, PRODUCTS)
    });
    println!(
        "every product found again {:?} after the kill",
        killed.elapsed()
    );
    // The dead node's shards are built again on the others, from their catalogs.
    // 16 copies over 3 nodes: 6, 5 and 5.
    let spread = wait_for("each shard on two live nodes", RECOVERY_TIMEOUT * 3, || {
        settled_spread(&cluster, &[0, 1, 2], twice)
    });
    println!("(shards, products) per live node after the kill: {spread:?}");
    for index in 0..3 {
        wait_for("every product found", RECOVERY_TIMEOUT, || {
            finds_every_widget(&cluster, index, PRODUCTS)
        });
    }
}

/// One node on a free port of 127.0.0.1 with `flags`, its log in a file at info level.
fn lone_node(flags: &[&str]) -> inkling_sandbox::Sandbox {
    use inkling_sandbox::{Joining, Logs, NodeSpec, Sandbox, SandboxConfig};
    let config = SandboxConfig {
        logs: Logs::Files,
        env: vec![("RUST_LOG".to_string(), "info".to_string())],
        ..SandboxConfig::new(binary())
    };
    let node = NodeSpec {
        listen: "127.0.0.1:0".to_string(),
        advertise: None,
        joining: Joining::Alone,
        flags: flags.iter().map(|flag| flag.to_string()).collect(),
        env: Vec::new(),
    };
    Sandbox::start(config, vec![node]).unwrap_or_else(|error| panic!("{error:#}"))
}

/// `/readyz` of the node's first member: its status and body.
fn readiness(sandbox: &inkling_sandbox::Sandbox) -> (u16, String) {
    let config = inkling_api::ClientConfig::timeout(Duration::from_secs(10));
    let client = Client::new(sandbox.url(0), config).unwrap();
    let answer = client.send_raw("GET", "/readyz", None).unwrap();
    (answer.status, answer.body)
}

/// A node whose log goes to a file, as a service manager's would, writes no terminal
/// colour codes into it; it is ready once it serves its partitions and index shards.
#[test]
fn a_log_written_to_a_file_carries_no_colour_codes() {
    let sandbox = lone_node(&["--catalog", "none", "--model", "none"]);
    let log = std::fs::read_to_string(sandbox.log_path(0)).unwrap();
    assert!(log.contains("inkling listening on"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file: {log}");
    wait_for("the node to be ready", RECOVERY_TIMEOUT, || {
        (readiness(&sandbox).0 == 200).then_some(())
    });
}
