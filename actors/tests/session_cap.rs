//! The cap on live session actors: beyond it the least recently active sessions are
//! passivated, and a passivated shopper's next request finds every event it sent.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inkling_actors::inkling::NodeStorage;
use inkling_actors::{ActorConfig, Inkling};
use inkling_domain::{Event, EventKind, Taxonomy};
use inkling_storage::{KvEngine, SledEngine};

/// How long a passivated session may take to drain and stop.
const DEADLINE: Duration = Duration::from_secs(10);

async fn start_node(dir: &std::path::Path, max_live_sessions: usize) -> Inkling {
    let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(&dir.join("sled")).unwrap());
    let storage = NodeStorage {
        engine,
        index_dir: dir.join("index"),
        taxonomy: Taxonomy::default(),
    };
    let config = ActorConfig {
        max_live_sessions,
        shards: 1,
        ..Default::default()
    };
    Inkling::start(config, storage).await.unwrap()
}

fn view(user: &str, item: &str) -> Event {
    Event {
        user_id: user.into(),
        session_id: None,
        kind: EventKind::View,
        item_id: Some(item.into()),
        query: None,
        timestamp: None,
        learn: true,
        event_id: None,
        attribution: None,
    }
}

/// Polls until `done` holds or the deadline passes; answers whether it held.
async fn eventually<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done().await
}

async fn live_users(node: &Inkling) -> BTreeSet<String> {
    node.active_users().await.unwrap().into_iter().collect()
}

fn session_is_running(user: &str) -> bool {
    ractor::registry::where_is(format!("session/{user}")).is_some()
}

struct Case {
    name: &'static str,
    cap: usize,
    /// Users whose profile is read, in this order: a first read starts a session, a later
    /// one makes it the most recently active again.
    reads: &'static [&'static str],
    /// The users still live afterwards; everyone else read was passivated.
    live: &'static [&'static str],
}

/// Each user gets an event before its session starts and one while it is live; after the
/// reads, the live sessions are the `cap` most recently read, the others have stopped, and
/// every user's next read sees both events, loaded back from storage where passivated.
async fn check(case: &Case) {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), case.cap).await;
    // Session actors are registered by name process-wide: each case has its own users.
    let user = |name: &str| format!("{}-{name}", case.name);
    let everyone: BTreeSet<String> = case.reads.iter().map(|name| user(name)).collect();
    for name in &everyone {
        node.record_events(vec![view(name, "before")])
            .await
            .unwrap();
    }
    let mut started = BTreeSet::new();
    for name in case.reads {
        let name = user(name);
        node.profile(name.clone()).await.unwrap();
        assert!(
            node.active_sessions().await.unwrap() <= case.cap as u64,
            "{}: more live sessions than the cap after reading {name}",
            case.name
        );
        if started.insert(name.clone()) {
            node.record_events(vec![view(&name, "while-live")])
                .await
                .unwrap();
        }
    }

    let live: BTreeSet<String> = case.live.iter().map(|name| user(name)).collect();
    assert_eq!(live_users(&node).await, live, "{}", case.name);
    let passivated: Vec<&String> = everyone.difference(&live).collect();
    let stopped = eventually(|| {
        let passivated = passivated.clone();
        async move { passivated.iter().all(|name| !session_is_running(name)) }
    })
    .await;
    assert!(stopped, "{}: passivated sessions still run", case.name);

    for name in &everyone {
        let profile = node.profile(name.clone()).await.unwrap();
        assert_eq!(profile.event_count, 2, "{}: {name}", case.name);
        assert!(
            node.active_sessions().await.unwrap() <= case.cap as u64,
            "{}: the cap held while passivated users came back",
            case.name
        );
    }
    node.shutdown().await;
}

#[tokio::test]
async fn the_least_recently_active_sessions_are_passivated_beyond_the_cap() {
    let cases = [
        Case {
            name: "under-cap",
            cap: 4,
            reads: &["a", "b", "c", "d"],
            live: &["a", "b", "c", "d"],
        },
        Case {
            name: "cap-of-one",
            cap: 1,
            reads: &["a", "b", "c"],
            live: &["c"],
        },
        Case {
            name: "oldest-first",
            cap: 3,
            reads: &["a", "b", "c", "d", "e"],
            live: &["c", "d", "e"],
        },
        Case {
            name: "a-read-renews",
            cap: 3,
            reads: &["a", "b", "c", "a", "d", "e"],
            live: &["a", "d", "e"],
        },
        Case {
            name: "back-and-forth",
            cap: 2,
            reads: &["a", "b", "a", "c", "b", "a"],
            live: &["b", "a"],
        },
    ];
    for case in &cases {
        check(case).await;
    }
}

/// Many new shoppers at once: every request is answered, and no more sessions stay live
/// than the cap allows.
#[tokio::test]
async fn a_flood_of_new_users_is_served_under_the_cap() {
    const CAP: usize = 5;
    const USERS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), CAP).await;
    let users: Vec<String> = (0..USERS).map(|index| format!("flood-{index}")).collect();
    let events = users.iter().map(|user| view(user, "item")).collect();
    node.record_events(events).await.unwrap();

    let reads = users.iter().map(|user| node.profile(user.clone()));
    for profile in futures::future::join_all(reads).await {
        assert_eq!(profile.unwrap().event_count, 1);
    }
    assert!(node.active_sessions().await.unwrap() <= CAP as u64);
    let settled = eventually(|| async {
        users.iter().filter(|user| session_is_running(user)).count() <= CAP
    })
    .await;
    assert!(settled, "passivated sessions stop");
    node.shutdown().await;
}

#[tokio::test]
async fn a_node_refuses_a_cap_of_zero() {
    let dir = tempfile::tempdir().unwrap();
    let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(&dir.path().join("sled")).unwrap());
    let storage = NodeStorage {
        engine,
        index_dir: dir.path().join("index"),
        taxonomy: Taxonomy::default(),
    };
    let config = ActorConfig {
        max_live_sessions: 0,
        ..Default::default()
    };
    let refused = Inkling::start(config, storage).await;
    assert!(refused.is_err(), "a cap of zero is refused");
}
