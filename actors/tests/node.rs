//! The actors of one node working together on real sled files and real tantivy indexes.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use inkling_actors::inkling::NodeStorage;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_actors::protocol::SearchMode;
use inkling_actors::{ActorConfig, Inkling, RecommendRequest, SearchRequest};
use inkling_domain::{
    Event, EventKind, Filters, Language, PassageVector, ProductWrite, Reason, Taxonomy,
};
use inkling_storage::{KvEngine, SledEngine};

use common::{classic_catalog, product};

async fn start_node(dir: &std::path::Path, config: ActorConfig) -> Inkling {
    let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(&dir.join("sled")).unwrap());
    let taxonomy = Taxonomy {
        aliases: [("手机".to_string(), vec!["mobile phones".to_string()])].into(),
        ..Default::default()
    };
    let storage = NodeStorage {
        engine,
        index_dir: dir.join("index"),
        taxonomy,
    };
    let node = Inkling::start(config, storage).await.unwrap();
    node.upsert_products(classic_catalog()).await.unwrap();
    node
}

fn event(user: &str, kind: EventKind, item: &str) -> Event {
    Event {
        user_id: user.into(),
        session_id: None,
        kind,
        item_id: Some(item.into()),
        query: None,
        timestamp: None,
        learn: true,
        event_id: None,
        attribution: None,
    }
}

fn ids(list: &inkling_actors::RankedList) -> Vec<&str> {
    list.items
        .iter()
        .map(|item| item.product.id.as_str())
        .collect()
}

#[tokio::test]
async fn search_is_personalised_by_recorded_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    node.record_events(vec![
        event("fan", EventKind::View, "xiaomi-12"),
        event("fan", EventKind::AddToCart, "xiaomi-12"),
    ])
    .await
    .unwrap();

    let search = |user: &str, filters: Filters| SearchRequest {
        filters,
        ..SearchRequest::new(user, "phone", 10)
    };
    let anonymous = node
        .search(search("new", Filters::default()))
        .await
        .unwrap();
    assert_eq!(
        anonymous.items.len(),
        3,
        "only the phones match: {:?}",
        ids(&anonymous)
    );
    assert!(anonymous.missing_shards.is_empty());

    let fan = node
        .search(search("fan", Filters::default()))
        .await
        .unwrap();
    let xiaomi_for = |list: &inkling_actors::RankedList| {
        list.items
            .iter()
            .find(|item| item.product.id == "xiaomi-12")
            .cloned()
            .unwrap()
    };
    let (for_fan, for_stranger) = (xiaomi_for(&fan), xiaomi_for(&anonymous));
    assert!(
        for_fan.score > for_stranger.score + 0.2,
        "{for_fan:?} vs {for_stranger:?}"
    );
    assert!(
        for_fan
            .reasons
            .iter()
            .any(|reason| reason.text(Language::En).contains("Xiaomi")),
        "{:?}",
        for_fan.reasons
    );

    let cheap = node
        .search(search(
            "fan",
            Filters {
                price_max: Some(4000.0),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert_eq!(ids(&cheap), ["xiaomi-12"]);

    let profile = node.profile("fan".into()).await.unwrap();
    assert_eq!(profile.event_count, 2);
    assert_eq!(profile.recent_queries.back().unwrap().query, "phone");
}

#[tokio::test]
async fn recommendations_follow_the_profile_and_skip_purchases() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    let recommend = |user: &str| RecommendRequest {
        user_id: user.into(),
        session_id: None,
        k: 3,
        filters: Filters::default(),
        explain: false,
        buy_again: false,
        item: None,
    };
    let cold = node.recommend(recommend("newcomer")).await.unwrap();
    assert_eq!(cold.items.len(), 3, "a newcomer still gets top-rated items");

    node.record_events(vec![
        event("buyer", EventKind::View, "macbook-pro"),
        event("buyer", EventKind::Purchase, "iphone-14"),
    ])
    .await
    .unwrap();
    let list = node.recommend(recommend("buyer")).await.unwrap();
    assert!(
        !ids(&list).contains(&"iphone-14"),
        "purchased item re-shown: {:?}",
        ids(&list)
    );
    assert_eq!(ids(&list)[0], "iphone-se", "{:?}", list.items);
}

#[tokio::test]
async fn profiles_survive_passivation_and_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = ActorConfig {
        session_idle_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    {
        let node = start_node(dir.path(), config.clone()).await;
        node.record_events(vec![event("u", EventKind::View, "ipad-mini")])
            .await
            .unwrap();
        // Events change the stored profile; a session starts with the shopper's first read.
        assert_eq!(node.active_sessions().await.unwrap(), 0);
        assert_eq!(node.profile("u".into()).await.unwrap().event_count, 1);
        assert_eq!(node.active_sessions().await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            node.active_sessions().await.unwrap(),
            0,
            "idle session was passivated"
        );
        node.record_events(vec![event("u", EventKind::Click, "ipad-mini")])
            .await
            .unwrap();
        assert_eq!(node.profile("u".into()).await.unwrap().event_count, 2);
        node.shutdown().await;
    }
    let node = start_node(dir.path(), config).await;
    let profile = node.profile("u".into()).await.unwrap();
    assert_eq!(profile.event_count, 2);
    assert!(profile.category_affinity.contains_key("平板"));
}

#[tokio::test]
async fn a_killed_session_is_restarted_with_its_durable_profile() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    node.record_events(vec![event("victim", EventKind::View, "xiaomi-12")])
        .await
        .unwrap();
    assert_eq!(node.profile("victim".into()).await.unwrap().event_count, 1);
    let session = ractor::registry::where_is("session/victim").expect("session is registered");
    session.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restarted = ractor::registry::where_is("session/victim").expect("session was restarted");
    assert_ne!(restarted.get_id(), session.get_id());
    assert_eq!(node.profile("victim".into()).await.unwrap().event_count, 1);
}

#[tokio::test]
async fn deleted_products_disappear_from_search() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    assert!(node.delete_product("xiaomi-12".into()).await.unwrap());
    assert!(!node.delete_product("xiaomi-12".into()).await.unwrap());
    let request = SearchRequest::new("deleting-user", "xiaomi", 5);
    assert!(node.search(request).await.unwrap().items.is_empty());
}

fn session_event(user: &str, session: &str, item: &str, learn: bool) -> Event {
    Event {
        session_id: Some(session.into()),
        learn,
        event_id: None,
        ..event(user, EventKind::View, item)
    }
}

#[tokio::test]
async fn recommendations_follow_what_shoppers_did_next_but_never_learn_from_held_out_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    let mut events = Vec::new();
    for shopper in ["a", "b"] {
        events.push(session_event(shopper, "s", "xiaomi-12", true));
        events.push(session_event(shopper, "s", "ipad-mini", true));
    }
    // Held out: replayed for the shopper's own session only.
    events.push(session_event("c", "s", "macbook-pro", false));
    events.push(session_event("c", "s", "iphone-se", false));
    node.record_events(events).await.unwrap();

    let recommend = |user: &str| RecommendRequest {
        user_id: user.into(),
        session_id: Some("new".into()),
        k: 3,
        filters: Filters::default(),
        explain: false,
        buy_again: false,
        item: None,
    };
    node.record_events(vec![session_event("next", "new", "xiaomi-12", true)])
        .await
        .unwrap();
    let list = node.recommend(recommend("next")).await.unwrap();
    // The iPad Mini is no phone and no Xiaomi: only what other shoppers did brings it up,
    // ahead of the phones the profile alone would suggest.
    let position = ids(&list).iter().position(|id| *id == "ipad-mini");
    assert!(position.is_some_and(|p| p <= 1), "{:?}", list.items);
    let learned = [
        "shoppers with sessions like yours viewed this",
        "viewed after Xiaomi 12 by many shoppers",
    ];
    let reasons = &list.items[position.unwrap()].reasons;
    assert!(
        reasons
            .iter()
            .any(|reason| learned.contains(&reason.text(Language::En).as_str())),
        "{reasons:?}"
    );

    node.record_events(vec![session_event("probe", "new", "macbook-pro", true)])
        .await
        .unwrap();
    let list = node.recommend(recommend("probe")).await.unwrap();
    let reasons: Vec<String> = list
        .items
        .iter()
        .flat_map(|item| &item.reasons)
        .map(|reason| reason.text(Language::En))
        .collect();
    // Anything learned from the held-out session would surface with one of these reasons.
    assert!(
        !reasons.iter().any(|reason| {
            reason.contains("viewed after Macbook Pro") || reason.contains("sessions like yours")
        }),
        "{reasons:?}"
    );
}

/// Session actors are registered by name in ractor's process-wide registry, and tests run in
/// parallel in one process: each test searches as its own user.
fn search_for(user: &str, query: &str, mode: SearchMode) -> SearchRequest {
    SearchRequest {
        mode,
        ..SearchRequest::new(user, query, 10)
    }
}

fn encoder_config() -> ActorConfig {
    let models_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.deps/models");
    let model = inkling_models::encoder::ModelName::AllMiniLmL6V2;
    ActorConfig {
        encoder: Some(ModelPoolConfig::new(model, models_dir)),
        ..Default::default()
    }
}

/// Searches in every mode and says whether `id` was among the hits of each.
async fn found_by_mode(node: &Inkling, query: &str, id: &str) -> Vec<(SearchMode, bool)> {
    let mut found = Vec::new();
    for mode in [SearchMode::Lexical, SearchMode::Vector, SearchMode::Hybrid] {
        let answer = node
            .search(search_for("catalog-writes-user", query, mode))
            .await
            .unwrap();
        found.push((mode, ids(&answer).contains(&id)));
    }
    found
}

#[tokio::test]
async fn catalog_writes_reach_text_and_vector_search_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), encoder_config()).await;
    let lamp = product(
        "desk-lamp",
        "LED desk lamp with USB charging port",
        "照明",
        "Ikea",
        199.0,
    );

    let written = std::time::Instant::now();
    node.upsert_products(vec![lamp]).await.unwrap();
    let everywhere = [
        (SearchMode::Lexical, true),
        (SearchMode::Vector, true),
        (SearchMode::Hybrid, true),
    ];
    assert_eq!(
        found_by_mode(&node, "desk lamp", "desk-lamp").await,
        everywhere
    );
    assert!(
        written.elapsed() < Duration::from_secs(1),
        "{:?}",
        written.elapsed()
    );

    // A price change is visible to filters at once.
    let mut cheaper = product(
        "desk-lamp",
        "LED desk lamp with USB charging port",
        "照明",
        "Ikea",
        99.0,
    );
    cheaper.price = 99.0;
    node.upsert_products(vec![cheaper]).await.unwrap();
    let mut under_100 = search_for("catalog-writes-user", "desk lamp", SearchMode::Hybrid);
    under_100.filters.price_max = Some(100.0);
    let answer = node.search(under_100).await.unwrap();
    assert_eq!(ids(&answer), ["desk-lamp"]);
    assert_eq!(answer.items[0].product.price, 99.0);

    let deleted = std::time::Instant::now();
    assert!(node.delete_product("desk-lamp".into()).await.unwrap());
    let nowhere = everywhere.map(|(mode, _)| (mode, false));
    assert_eq!(
        found_by_mode(&node, "desk lamp", "desk-lamp").await,
        nowhere
    );
    assert!(
        deleted.elapsed() < Duration::from_secs(1),
        "{:?}",
        deleted.elapsed()
    );
}

/// What an empty query finds (the best-rated of every shard that answered), sorted, and
/// whether every shard answered.
async fn browse_every_product(node: &Inkling) -> (Vec<String>, bool) {
    let request = search_for("shard-holder", "", SearchMode::Lexical);
    let answer = node.search(request).await.unwrap();
    let mut found: Vec<String> = ids(&answer).into_iter().map(String::from).collect();
    found.sort();
    (found, answer.missing_shards.is_empty())
}

/// A shard the node gives up is emptied and its products drop out of searches; taken
/// back, it is rebuilt from the node's catalog and restart keeps what the node held.
#[tokio::test]
async fn a_shard_given_up_is_emptied_and_a_shard_taken_back_is_rebuilt_from_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    let every: BTreeSet<usize> = (0..node.shard_count()).collect();
    let (all, complete) = browse_every_product(&node).await;
    assert_eq!((all.len(), complete), (classic_catalog().len(), true));
    let half: BTreeSet<usize> = every
        .iter()
        .copied()
        .filter(|shard| shard % 2 == 0)
        .collect();
    // (name, the shards held, whether every product is found)
    let cases = [
        ("half the shards", half.clone(), false),
        ("every shard again", every.clone(), true),
        ("half once more", half.clone(), false),
    ];
    for (name, held, complete) in cases {
        node.hold_shards(held.clone()).await.unwrap();
        assert_eq!(node.held_shards(), held, "{name}");
        let (found, every_shard_answered) = browse_every_product(&node).await;
        assert_eq!(found == all, complete, "{name}: {found:?}");
        assert_eq!(every_shard_answered, complete, "{name}");
    }
    node.shutdown().await;
    drop(node);
    let node = start_node(dir.path(), ActorConfig::default()).await;
    assert_eq!(
        node.held_shards(),
        half,
        "what the node held survives a restart"
    );
}

/// A replica indexes the vector a write carries when its own encoder made it, and
/// computes one itself when the write carries none or another encoder's.
#[tokio::test]
async fn a_write_keeps_its_own_encoders_vector_and_replaces_anothers() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), encoder_config()).await;
    let lamp = product("carried-lamp", "LED desk lamp", "照明", "Ikea", 199.0);
    let computed = node.embed_passages(vec![lamp.clone()]).await.unwrap();
    let own = computed[0].vector.clone().expect("an encoder embeds");
    // Not what the encoder would compute for the lamp, so a kept vector is told apart.
    let mut marker = vec![0.0; own.values.len()];
    marker[0] = 1.0;
    // (name, the encoder the carried vector names, whether it is kept)
    let cases = [
        ("this node's encoder", Some(own.encoder.as_str()), true),
        ("another encoder", Some("another-model@9"), false),
        ("no vector", None, false),
    ];
    for (name, encoder, kept) in cases {
        let write = ProductWrite {
            product: lamp.clone(),
            vector: encoder.map(|encoder| PassageVector {
                encoder: encoder.to_string(),
                values: marker.clone(),
            }),
        };
        node.write_products(vec![write]).await.unwrap();
        let stored = node.all_product_writes().await.unwrap();
        let stored = stored
            .iter()
            .find(|w| w.product.id == "carried-lamp")
            .unwrap();
        let vector = stored.vector.as_ref().expect("a stored vector");
        assert_eq!(vector.encoder, own.encoder, "{name}");
        assert_eq!(vector.values == marker, kept, "{name}");
        if !kept {
            let close = vector
                .values
                .iter()
                .zip(&own.values)
                .all(|(a, b)| (a - b).abs() < 1e-3);
            assert!(close, "{name}: recomputed as the encoder computes it");
        }
    }
}

#[tokio::test]
async fn searches_keep_answering_during_a_bulk_load() {
    let dir = tempfile::tempdir().unwrap();
    // What this checks is that searches complete while the shards index, not how fast: on a
    // loaded two-core machine a shard busy writing can miss the default 500 ms deadline.
    let config = ActorConfig {
        shard_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(60),
        ..ActorConfig::default()
    };
    let node = Arc::new(start_node(dir.path(), config).await);
    let loader = {
        let node = node.clone();
        tokio::spawn(async move {
            for batch in 0..10 {
                let products = (0..500)
                    .map(|i| {
                        product(
                            &format!("bulk-{batch}-{i}"),
                            &format!("bulk item {i}"),
                            "杂货",
                            "Acme",
                            10.0,
                        )
                    })
                    .collect();
                node.upsert_products(products).await.unwrap();
            }
        })
    };
    let mut answered = 0;
    while !loader.is_finished() {
        let answer = node
            .search(search_for("bulk-load-user", "iphone", SearchMode::Lexical))
            .await
            .unwrap();
        assert!(
            ids(&answer).contains(&"iphone-14"),
            "missing shards: {:?}",
            answer.missing_shards
        );
        answered += 1;
    }
    loader.await.unwrap();
    assert!(answered > 1, "only {answered} searches ran during the load");
    assert_eq!(node.catalog_size().await.unwrap(), 5 + 5_000);
}

fn in_session(user: &str, session: &str, kind: EventKind, item: &str) -> Event {
    Event {
        session_id: Some(session.into()),
        ..event(user, kind, item)
    }
}

fn recommend_in(user: &str, session: &str) -> RecommendRequest {
    RecommendRequest {
        user_id: user.into(),
        session_id: Some(session.into()),
        k: 5,
        filters: Filters::default(),
        explain: false,
        buy_again: false,
        item: None,
    }
}

/// What the shopper says in a session's conversation binds that session's recommendations;
/// each case: what they said, the ids allowed, and a reason the first item must carry.
#[tokio::test]
async fn recommendations_respect_what_the_shopper_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    // Trending overall: the iPad; trending among phones: the Xiaomi.
    let mut events = Vec::new();
    for shopper in 0..4 {
        let name = format!("trend-{shopper}");
        events.push(in_session(&name, "s", EventKind::View, "ipad-mini"));
        events.push(in_session(&name, "s", EventKind::View, "ipad-mini"));
        if shopper < 2 {
            events.push(in_session(&name, "t", EventKind::View, "xiaomi-12"));
        }
    }
    node.record_events(events).await.unwrap();

    let cases: [(&str, &str, &[&str], &str); 3] = [
        // A newcomer who named a category gets what is trending in it, first.
        (
            "我想找一款手机",
            "phones",
            &["xiaomi-12", "iphone-se", "iphone-14"],
            "popular in 手机 today",
        ),
        // A stated budget filters and is explained.
        (
            "有没有8000元以内的手机？",
            "budget",
            &["xiaomi-12", "iphone-se", "iphone-14"],
            "within your ¥8,000 budget",
        ),
        (
            "有没有4000元以内的？",
            "tight-budget",
            &["xiaomi-12", "ipad-mini"],
            "within your ¥4,000 budget",
        ),
    ];
    for (said, shopper, allowed, reason) in cases {
        let search = SearchRequest {
            session_id: Some("chat".into()),
            ..search_for(shopper, said, SearchMode::Lexical)
        };
        node.search(search).await.unwrap();
        let list = node.recommend(recommend_in(shopper, "chat")).await.unwrap();
        assert!(!list.items.is_empty(), "{said}: nothing recommended");
        for item in &list.items {
            assert!(
                allowed.contains(&item.product.id.as_str()),
                "{said}: {:?}",
                ids(&list)
            );
        }
        let first = &list.items[0].reasons;
        assert!(
            first.iter().any(|r| r.text(Language::En) == reason),
            "{said}: {first:?}"
        );
    }
    let phones = node
        .recommend(recommend_in("phones", "chat"))
        .await
        .unwrap();
    assert_eq!(ids(&phones)[0], "xiaomi-12", "{:?}", phones.items);
    // Another session of the same shopper is a new conversation: no constraint holds.
    let elsewhere = node
        .recommend(recommend_in("budget", "other"))
        .await
        .unwrap();
    assert!(
        ids(&elsewhere).contains(&"macbook-pro"),
        "{:?}",
        ids(&elsewhere)
    );
}

#[tokio::test]
async fn what_shoppers_cart_together_is_recommended_together() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), ActorConfig::default()).await;
    let mut events = Vec::new();
    for shopper in ["cart-a", "cart-b"] {
        events.push(in_session(shopper, "s", EventKind::AddToCart, "iphone-14"));
        events.push(in_session(shopper, "s", EventKind::Purchase, "macbook-pro"));
    }
    node.record_events(events).await.unwrap();
    node.record_events(vec![in_session(
        "cart-c",
        "s",
        EventKind::AddToCart,
        "iphone-14",
    )])
    .await
    .unwrap();
    let list = node.recommend(recommend_in("cart-c", "s")).await.unwrap();
    let macbook = list
        .items
        .iter()
        .find(|item| item.product.id == "macbook-pro")
        .unwrap_or_else(|| panic!("{:?}", ids(&list)));
    assert!(
        macbook.reasons.contains(&Reason::BoughtTogether {
            title: "iPhone 14".into()
        }),
        "{:?}",
        macbook.reasons
    );
}

#[tokio::test]
async fn a_cold_item_brings_products_with_similar_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), encoder_config()).await;
    // Nobody has gone anywhere after the iPhone SE: only its embedding can say what is like it.
    node.record_events(vec![in_session(
        "cold-item",
        "s",
        EventKind::View,
        "iphone-se",
    )])
    .await
    .unwrap();
    let list = node
        .recommend(recommend_in("cold-item", "s"))
        .await
        .unwrap();
    let iphone = list
        .items
        .iter()
        .find(|item| item.product.id == "iphone-14")
        .unwrap_or_else(|| panic!("{:?}", ids(&list)));
    assert!(
        iphone.reasons.contains(&Reason::SimilarToViewed {
            title: "iPhone SE".into()
        }),
        "{:?}",
        iphone.reasons
    );
}

/// Readiness reads which shards no copy serves: a shard this node gives up, with no other
/// node holding it, is unserved. Seven shards: a group no other test in this process has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_no_copy_serves_is_reported_unserved() {
    let dir = tempfile::tempdir().unwrap();
    let config = ActorConfig {
        shards: 7,
        ..ActorConfig::default()
    };
    let node = start_node(dir.path(), config).await;
    assert_eq!(node.unserved_shards(), Vec::<usize>::new());
    node.hold_shards([0, 3].into()).await.unwrap();
    assert_eq!(node.unserved_shards(), [1, 2, 4, 5, 6]);
    node.hold_shards((0..7).collect()).await.unwrap();
    assert_eq!(node.unserved_shards(), Vec::<usize>::new());
    node.shutdown().await;
}
