//! The actors of one node working together on real sled files and real tantivy indexes.

use std::sync::Arc;
use std::time::Duration;

use inkling_actors::inkling::NodeStorage;
use inkling_actors::{ActorConfig, Inkling, RecommendRequest, SearchRequest};
use inkling_storage::{Event, EventKind, Filters, KvEngine, Product, SledEngine, Taxonomy};

fn product(id: &str, title: &str, category: &str, brand: &str, price: f64) -> Product {
    Product {
        id: id.into(),
        title: title.into(),
        category_path: vec![category.into()],
        brand: Some(brand.into()),
        price,
        currency: "CNY".into(),
        rating: Some(4.5),
        in_stock: true,
        attributes: Default::default(),
    }
}

fn classic_catalog() -> Vec<Product> {
    vec![
        product("iphone-14", "iPhone 14", "手机", "Apple", 8000.0),
        product("iphone-se", "iPhone SE", "手机", "Apple", 4500.0),
        product("xiaomi-12", "Xiaomi 12", "手机", "Xiaomi", 3500.0),
        product("macbook-pro", "Macbook Pro", "电脑", "Apple", 15000.0),
        product("ipad-mini", "iPad Mini", "平板", "Apple", 3000.0),
    ]
}

async fn start_node(dir: &std::path::Path, config: ActorConfig) -> Inkling {
    let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(&dir.join("sled")).unwrap());
    let taxonomy = Taxonomy {
        aliases: [("手机".to_string(), vec!["mobile phones".to_string()])].into(),
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
        user_id: user.into(),
        session_id: None,
        query: "phone".into(),
        k: 10,
        filters,
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
            .any(|reason| reason.contains("Xiaomi")),
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
    let request = SearchRequest {
        user_id: "u".into(),
        session_id: None,
        query: "xiaomi".into(),
        k: 5,
        filters: Filters::default(),
    };
    assert!(node.search(request).await.unwrap().items.is_empty());
}

fn session_event(user: &str, session: &str, item: &str, learn: bool) -> Event {
    Event {
        session_id: Some(session.into()),
        learn,
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
            .any(|reason| learned.contains(&reason.as_str())),
        "{reasons:?}"
    );

    node.record_events(vec![session_event("probe", "new", "macbook-pro", true)])
        .await
        .unwrap();
    let list = node.recommend(recommend("probe")).await.unwrap();
    let reasons: Vec<&String> = list.items.iter().flat_map(|item| &item.reasons).collect();
    // Anything learned from the held-out session would surface with one of these reasons.
    assert!(
        !reasons.iter().any(|reason| {
            reason.contains("viewed after Macbook Pro") || reason.contains("sessions like yours")
        }),
        "{reasons:?}"
    );
}
