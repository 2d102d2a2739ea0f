//! The HTTP API of one in-process node on loopback, with real sled and tantivy underneath.

use std::time::Duration;

use inkling_actors::ActorConfig;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_api::{
    AnyOf, Client, EventBatch, EventBody, EventType, FiltersBody, Intent, Preference, ProductBatch,
    ProductBody, RankedAnswer, RecommendBody, SearchBody, UpsertAnswer,
};
use inkling_auth::{ApiKey, KeyRing, Scope};
use inkling_gateway::RateLimit;
use inkling_models::encoder::ModelName;
use inkling_node::{CatalogSource, GatewayConfig};
use serde_json::{Value, json};

mod common;
use common::{Running, start_node};

struct TestNode {
    client: Client,
    _running: Running,
}

fn models_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.deps/models")
}

fn with_encoder(model: ModelName) -> ActorConfig {
    ActorConfig {
        encoder: Some(ModelPoolConfig::new(model, models_dir())),
        ..Default::default()
    }
}

impl TestNode {
    fn start() -> Self {
        Self::start_with(ActorConfig::default())
    }

    fn start_with(actors: ActorConfig) -> Self {
        Self::start_with_gateway(actors, GatewayConfig::default())
    }

    fn start_with_gateway(actors: ActorConfig, gateway: GatewayConfig) -> Self {
        let (client, running) = start_node(CatalogSource::Demo, actors, gateway);
        Self {
            client,
            _running: running,
        }
    }

    /// Sends a request as it is, unchecked, and returns (status, body as JSON, or as a JSON
    /// string when it is not JSON): for the requests the API must refuse.
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let answer = self
            .client
            .send_raw(method, path, body)
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        let body = serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body));
        (answer.status, body)
    }

    fn events(&self, events: Vec<EventBody>) -> inkling_api::EventsAnswer {
        self.client.events(&EventBatch::new(events)).unwrap()
    }

    fn search(&self, body: &SearchBody) -> RankedAnswer {
        self.client.search(body).unwrap()
    }

    fn recommend(&self, body: &RecommendBody) -> RankedAnswer {
        self.client.recommend(body).unwrap()
    }
}

fn titles(answer: &RankedAnswer) -> Vec<String> {
    answer
        .items
        .iter()
        .map(|item| item.product.title.clone())
        .collect()
}

fn ids(answer: &RankedAnswer) -> Vec<&str> {
    answer
        .items
        .iter()
        .map(|item| item.product.id.as_str())
        .collect()
}

/// An event of `kind` on `item` by `user`, in session `session` when given.
fn event(user: &str, session: Option<&str>, kind: EventType, item: &str) -> EventBody {
    EventBody {
        session_id: session.map(str::to_string),
        ..EventBody::on_item(user, kind, item)
    }
}

/// A request that must be refused: what is sent, and what must come back.
struct BadInput {
    method: &'static str,
    path: String,
    body: Option<String>,
    status: u16,
    /// A fragment the error message contains; it names the field at fault.
    fragment: String,
}

fn bad(
    method: &'static str,
    path: &str,
    body: Option<&str>,
    status: u16,
    fragment: &str,
) -> BadInput {
    BadInput {
        method,
        path: path.to_string(),
        body: body.map(str::to_string),
        status,
        fragment: fragment.to_string(),
    }
}

/// `base` with the value at JSON pointer `pointer` set to `value` (a new key when absent).
fn with(base: &Value, pointer: &str, value: Value) -> String {
    let mut body = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match body.pointer_mut(parent).unwrap() {
        Value::Object(object) => {
            object.insert(key.to_string(), value);
        }
        Value::Array(array) => array[key.parse::<usize>().unwrap()] = value,
        other => panic!("{pointer}: cannot set inside {other}"),
    }
    body.to_string()
}

/// Now, in milliseconds since the Unix epoch: event times are checked against the node's
/// clock, which is this machine's.
fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since_epoch.as_millis()).unwrap()
}

const HOUR_MS: u64 = 60 * 60 * 1000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// A route and a body for it: (method, path, JSON body).
type Route = (&'static str, &'static str, Value);

/// Valid requests for every route with a body, each string field filled in; the bad-input
/// table breaks one field at a time, so any refusal is that field's.
fn valid_bodies() -> [Route; 4] {
    [
        (
            "PUT",
            "/v1/products",
            json!({ "products": [{
                "id": "limits-probe", "title": "Limits probe", "category_path": ["Test", "Probe"],
                "brand": "Probe", "price": 1, "currency": "CNY", "rating": 4, "in_stock": true,
                "attributes": { "color": "red" }
            }]}),
        ),
        (
            "POST",
            "/v1/events",
            json!({ "events": [
                { "user_id": "limits-user", "session_id": "limits-session", "type": "view",
                  "item_id": "limits-probe", "event_id": "limits-event-1", "learn": true,
                  "timestamp": now_ms() - HOUR_MS },
                { "user_id": "limits-user", "type": "search", "query": "probe" },
            ]}),
        ),
        (
            "POST",
            "/v1/search",
            json!({ "user_id": "limits-user", "session_id": "limits-session", "query": "probe",
                    "k": 3, "mode": "lexical",
                    "filters": { "category": "Test", "brand": "Probe", "price_min": 0, "price_max": 10 } }),
        ),
        (
            "POST",
            "/v1/recommend",
            json!({ "user_id": "limits-user", "session_id": "limits-session", "k": 3,
                    "explain": false, "filters": { "category": "Test", "brand": "Probe" } }),
        ),
    ]
}

/// Unknown fields, top-level and nested, and unknown query parameters, on every route.
fn unknown_field_cases(bodies: &[Route]) -> Vec<BadInput> {
    let [products, events, search, recommend] = bodies else {
        unreachable!()
    };
    let unknown = |(method, path, base): &Route, pointer: &str, fragment: &str| {
        bad(
            method,
            path,
            Some(&with(base, pointer, json!(1))),
            422,
            fragment,
        )
    };
    vec![
        unknown(products, "/upsert", "upsert: unknown field `upsert`"),
        unknown(
            products,
            "/products/0/colour",
            "products[0].colour: unknown field `colour`",
        ),
        unknown(events, "/batch_id", "batch_id: unknown field `batch_id`"),
        unknown(
            events,
            "/events/0/sesion_id",
            "events[0].sesion_id: unknown field `sesion_id`",
        ),
        unknown(
            events,
            "/events/1/colour",
            "events[1].colour: unknown field `colour`",
        ),
        unknown(search, "/filter", "filter: unknown field `filter`"),
        unknown(
            search,
            "/filters/colour",
            "filters.colour: unknown field `colour`",
        ),
        unknown(recommend, "/explian", "explian: unknown field `explian`"),
        unknown(
            recommend,
            "/filters/colour",
            "filters.colour: unknown field `colour`",
        ),
        bad(
            "DELETE",
            "/v1/products/limits-probe?force=true",
            None,
            400,
            "unknown query parameter `force`",
        ),
        bad(
            "GET",
            "/v1/users/limits-user/profile?verbose",
            None,
            400,
            "unknown query parameter `verbose`",
        ),
        bad(
            "POST",
            "/v1/search?k=5",
            Some(&search.2.to_string()),
            400,
            "unknown query parameter `k`",
        ),
    ]
}

/// Every string field one byte past its limit, on every route.
fn over_long_cases(bodies: &[Route]) -> Vec<BadInput> {
    let [products, events, search, recommend] = bodies else {
        unreachable!()
    };
    // (request, JSON pointer, limit in bytes, the field's path in the message)
    let fields: &[(&Route, &str, usize, &str)] = &[
        (products, "/products/0/id", 128, "products[0].id"),
        (products, "/products/0/title", 1024, "products[0].title"),
        (
            products,
            "/products/0/category_path/1",
            128,
            "products[0].category_path[1]",
        ),
        (products, "/products/0/brand", 128, "products[0].brand"),
        (products, "/products/0/currency", 3, "products[0].currency"),
        (
            products,
            "/products/0/attributes/color",
            256,
            "products[0].attributes.color",
        ),
        (events, "/events/0/user_id", 128, "events[0].user_id"),
        (events, "/events/0/session_id", 128, "events[0].session_id"),
        (events, "/events/0/item_id", 128, "events[0].item_id"),
        (events, "/events/0/event_id", 128, "events[0].event_id"),
        (events, "/events/1/query", 1024, "events[1].query"),
        (search, "/user_id", 128, "user_id"),
        (search, "/session_id", 128, "session_id"),
        (search, "/query", 1024, "query"),
        (search, "/filters/category", 128, "filters.category"),
        (search, "/filters/brand", 128, "filters.brand"),
        (recommend, "/user_id", 128, "user_id"),
        (recommend, "/session_id", 128, "session_id"),
        (recommend, "/filters/category", 128, "filters.category"),
        (recommend, "/filters/brand", 128, "filters.brand"),
    ];
    let mut cases: Vec<BadInput> = fields
        .iter()
        .map(|((method, path, base), pointer, limit, name)| {
            let body = with(base, pointer, json!("x".repeat(limit + 1)));
            let fragment = format!("`{name}` is longer than {limit} bytes");
            bad(method, path, Some(&body), 400, &fragment)
        })
        .collect();
    let (method, path, base) = products;
    let many_levels = json!(vec!["level"; 9]);
    let many_attributes: serde_json::Map<String, Value> = (0..65)
        .map(|index| (format!("a{index}"), json!("v")))
        .collect();
    let long_key = json!({ "k".repeat(65): "v" });
    cases.extend([
        bad(
            method,
            path,
            Some(&with(base, "/products/0/category_path", many_levels)),
            400,
            "`products[0].category_path` holds 9 entries; at most 8",
        ),
        bad(
            method,
            path,
            Some(&with(
                base,
                "/products/0/attributes",
                many_attributes.into(),
            )),
            400,
            "`products[0].attributes` holds 65 entries; at most 64",
        ),
        bad(
            method,
            path,
            Some(&with(base, "/products/0/attributes", long_key)),
            400,
            "a key of `products[0].attributes` is longer than 64 bytes",
        ),
        // Limits count bytes: 342 × 3 bytes is past 1,024 though it is only 342 characters.
        bad(
            search.0,
            search.1,
            Some(&with(&search.2, "/query", json!("手".repeat(342)))),
            400,
            "`query` is longer than 1024 bytes",
        ),
        bad(
            "DELETE",
            &format!("/v1/products/{}", "x".repeat(129)),
            None,
            400,
            "`id` is longer than 128 bytes",
        ),
        bad(
            "GET",
            &format!("/v1/users/{}/profile", "x".repeat(129)),
            None,
            400,
            "`user_id` is longer than 128 bytes",
        ),
    ]);
    cases
}

/// Malformed input and broken rules other than unknown fields and lengths.
fn rule_cases() -> Vec<BadInput> {
    let too_many_events =
        json!({ "events": vec![json!({"user_id": "u", "type": "view", "item_id": "x"}); 10_001] })
            .to_string();
    vec![
        bad(
            "PUT",
            "/v1/products",
            Some(r#"{"products":[]}"#),
            400,
            "must not be empty",
        ),
        bad(
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":"t","price":-1}]}"#),
            400,
            "products[0]: product x: price",
        ),
        // Checked as sent: 5.000000000000001 would round to 5 as a stored rating.
        bad(
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":"t","price":1,"rating":5.000000000000001}]}"#),
            400,
            "`products[0].rating` must be between 0 and 5",
        ),
        bad(
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":"t","price":1,"currency":"yuan"}]}"#),
            400,
            "`products[0].currency` is longer than 3 bytes",
        ),
        bad(
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":"t","price":1,"currency":"cny"}]}"#),
            400,
            "`products[0].currency` must be a 3-letter ISO code",
        ),
        bad(
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":" ","price":1}]}"#),
            400,
            "`products[0].title` must not be empty",
        ),
        bad(
            "DELETE",
            "/v1/products/no-such-product",
            None,
            404,
            "no-such-product",
        ),
        bad("POST", "/v1/events", Some("{"), 400, "EOF while parsing"),
        bad(
            "POST",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"u","type":"view"}]}"#),
            400,
            "events[0]: a `view` event needs an `item_id`",
        ),
        bad(
            "POST",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"u","type":"buy","item_id":"x"}]}"#),
            422,
            "unknown variant `buy`",
        ),
        bad(
            "POST",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"u","type":"view","item_id":"x","event_id":""}]}"#),
            400,
            "events[0]: `event_id` must not be empty",
        ),
        bad(
            "POST",
            "/v1/events",
            Some(&too_many_events),
            400,
            "at most 10000",
        ),
        bad(
            "POST",
            "/v1/search",
            Some(r#"{"user_id":"u","query":" ","k":5}"#),
            400,
            "`query` must not be empty",
        ),
        bad(
            "POST",
            "/v1/search",
            Some(r#"{"user_id":"u","query":"phone","k":0}"#),
            400,
            "`k` must be between 1 and 200",
        ),
        bad(
            "POST",
            "/v1/search",
            Some(r#"{"user_id":"u","query":"phone","k":5,"mode":"fuzzy"}"#),
            422,
            "unknown variant `fuzzy`",
        ),
        bad(
            "POST",
            "/v1/search",
            Some(
                r#"{"user_id":"u","query":"phone","k":5,"filters":{"price_min":10,"price_max":1}}"#,
            ),
            400,
            "greater than",
        ),
        bad(
            "POST",
            "/v1/recommend",
            Some(r#"{"user_id":"","k":5}"#),
            400,
            "`user_id` must not be empty",
        ),
        bad(
            "POST",
            "/v1/recommend",
            Some(r#"{"user_id":"u"}"#),
            422,
            "missing field `k`",
        ),
        bad(
            "GET",
            "/v1/users/ghost/profile",
            None,
            404,
            "no profile for user \"ghost\"",
        ),
        bad(
            "POST",
            "/v1/events",
            Some(&timed_event(now_ms() + DAY_MS)),
            400,
            "`events[0].timestamp` is",
        ),
        bad(
            "POST",
            "/v1/events",
            Some(&timed_event(now_ms() - 8 * DAY_MS)),
            400,
            "outside the accepted range",
        ),
        bad(
            "POST",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"nul\u0000inside","type":"view","item_id":"x"}]}"#),
            400,
            "`events[0].user_id` contains the control character U+0000",
        ),
        bad(
            "POST",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"u","type":"view","item_id":"x\ny"}]}"#),
            400,
            "`events[0].item_id` contains the control character U+000A",
        ),
        bad(
            "POST",
            "/v1/search",
            Some(r#"{"user_id":"bell\u0007","query":"phone","k":5}"#),
            400,
            "`user_id` contains the control character U+0007",
        ),
        bad(
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"esc\u001b[1m","title":"t","price":1}]}"#),
            400,
            "`products[0].id` contains the control character U+001B",
        ),
        bad(
            "GET",
            "/v1/users/nul%00inside/profile",
            None,
            400,
            "`user_id` contains the control character U+0000",
        ),
        bad(
            "DELETE",
            "/v1/products/line%0Abreak",
            None,
            400,
            "`id` contains the control character U+000A",
        ),
        bad("GET", "/v2/anything", None, 404, "no such route"),
        bad("GET", "/v1/search", None, 405, "does not take that method"),
    ]
}

/// One view event at `timestamp`.
fn timed_event(timestamp: u64) -> String {
    json!({ "events": [{ "user_id": "u", "type": "view", "item_id": "x", "timestamp": timestamp }] })
        .to_string()
}

#[test]
fn bad_input_gets_a_clear_4xx_that_names_the_field() {
    let node = TestNode::start();
    let bodies = valid_bodies();
    // The unbroken requests pass, so each refusal below is the one broken field's.
    for (method, path, body) in &bodies {
        let (status, answer) = node.send(method, path, Some(&body.to_string()));
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }
    let (status, answer) = node.send("GET", "/v1/users/limits-user/profile", None);
    assert_eq!(status, 200, "{answer}");

    let cases: Vec<BadInput> = [
        unknown_field_cases(&bodies),
        over_long_cases(&bodies),
        rule_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for case in &cases {
        let BadInput {
            method,
            path,
            body,
            status,
            fragment,
        } = case;
        let shown_path: String = path.chars().take(60).collect();
        let (actual_status, answer) = node.send(method, path, body.as_deref());
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            (actual_status, answer["error"]["code"].is_string()),
            (*status, true),
            "{method} {shown_path}: {answer}"
        );
        assert!(
            message.contains(fragment.as_str()),
            "{method} {shown_path}: {message:?} lacks {fragment:?}"
        );
    }
    let (status, answer) = node.send("DELETE", "/v1/products/limits-probe", None);
    assert_eq!(
        status, 200,
        "the probe outlived every bad request: {answer}"
    );
    let (status, _) = node.send("GET", "/healthz", None);
    assert_eq!(status, 200, "the node still serves after bad input");
}

#[test]
fn search_for_phone_returns_phones_with_reasons() {
    let node = TestNode::start();
    let answer = node.search(&SearchBody::new("curl", "phone", 5));
    let mut top3 = titles(&answer)[..3].to_vec();
    top3.sort();
    assert_eq!(top3, ["Xiaomi 12", "iPhone 14", "iPhone SE"]);
    for item in &answer.items {
        assert!(!item.reasons.is_empty(), "{item:?}");
    }
    assert!(answer.complete, "{answer:?}");
    assert_eq!(answer.coverage, 1.0, "{answer:?}");
    assert!(answer.warnings.is_empty(), "{answer:?}");
    // What the typed answer would not show: no field names a shard.
    let body = json!({ "user_id": "curl", "query": "phone", "k": 5 }).to_string();
    let (status, raw) = node.send("POST", "/v1/search", Some(&body));
    assert_eq!(status, 200, "{raw}");
    assert!(
        raw.get("missing_shards").is_none(),
        "shard numbers leaked: {raw}"
    );
}

#[test]
fn events_shape_profile_and_recommendations() {
    let node = TestNode::start();
    let answer = node.events(vec![
        event("shopper", None, EventType::View, "macbook-pro"),
        event("shopper", None, EventType::AddToCart, "macbook-pro"),
        EventBody {
            query: Some("laptop".into()),
            ..EventBody::new("shopper", EventType::Search)
        },
        // Six days old (a day's half-life): it counts for little, but it is in the window.
        EventBody {
            timestamp: Some(now_ms() - 6 * DAY_MS),
            ..event("shopper", None, EventType::Purchase, "ipad-mini")
        },
    ]);
    assert_eq!((answer.accepted, answer.durable), (4, true), "{answer:?}");
    // Raft internals stay out of a storefront's answer unless the batch asks to debug;
    // then one user, so one partition: the term and leader that committed the batch.
    assert!(answer.commits.is_empty(), "{answer:?}");
    let debugged = EventBatch {
        debug: true,
        ..EventBatch::new(vec![event("debugger", None, EventType::View, "ipad-mini")])
    };
    let answer = node.client.events(&debugged).unwrap();
    assert_eq!(answer.commits.len(), 1, "{answer:?}");
    assert!(answer.commits[0].term >= 1, "{answer:?}");

    let profile = node.client.profile("shopper").unwrap();
    assert_eq!(profile.event_count, 4);
    assert_eq!(profile.top_categories[0].name, "电脑");
    assert_eq!(profile.recent_queries[0].query, "laptop");
    assert_eq!(profile.purchased, ["ipad-mini"]);

    let answer = node.recommend(&RecommendBody::new("shopper", 10));
    let titles = titles(&answer);
    assert!(
        !titles.contains(&"iPad Mini".to_string()),
        "purchased item re-shown: {titles:?}"
    );
    assert!(
        !titles.contains(&"Macbook Pro".to_string()),
        "carted item re-shown: {titles:?}"
    );
    let reasons: Vec<&str> = answer
        .items
        .iter()
        .flat_map(|item| item.reasons.iter().map(|reason| reason.text.as_str()))
        .collect();
    // The profile explains the answer: the carted Macbook is the only 电脑, so what carries
    // over is the interest in its brand.
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("interest in Apple")),
        "{reasons:?}"
    );
    assert!(answer.items[0].features.is_none());
    let explained = node.recommend(&RecommendBody {
        explain: true,
        ..RecommendBody::new("shopper", 10)
    });
    let features = explained.items[0].features.as_ref();
    assert!(
        features.is_some_and(|features| features.contains_key("category_affinity")),
        "{explained:?}"
    );
}

#[test]
fn recommendations_skip_the_cart_and_the_viewed_item_unless_buying_again() {
    let node = TestNode::start();
    node.events(vec![
        event("carted", Some("s"), EventType::AddToCart, "xiaomi-12"),
        event("carted", Some("s"), EventType::View, "iphone-14"),
    ]);
    // (buy_again, the phones recommended, sorted)
    let cases: [(bool, &[&str]); 2] = [
        (false, &["iphone-se"]),
        (true, &["iphone-14", "iphone-se", "xiaomi-12"]),
    ];
    for (buy_again, expected) in cases {
        let body = RecommendBody {
            session_id: Some("s".into()),
            filters: FiltersBody {
                category: AnyOf::one("手机"),
                ..FiltersBody::default()
            },
            buy_again,
            ..RecommendBody::new("carted", 10)
        };
        let answer = node.recommend(&body);
        let mut ids = ids(&answer);
        ids.sort();
        assert_eq!(ids, expected, "buy_again {buy_again}");
    }
}

#[test]
fn catalog_changes_are_searchable_when_acknowledged() {
    let node = TestNode::start();
    let pixel = ProductBody {
        category_path: vec!["手机".into()],
        brand: Some("Google".into()),
        currency: "CNY".into(),
        ..ProductBody::new("pixel-9", "Google Pixel 9", 5999.0)
    };
    let written = std::time::Instant::now();
    let upserted = node.client.upsert_products(&ProductBatch {
        products: vec![pixel],
    });
    assert_eq!(upserted, Ok(UpsertAnswer { upserted: 1 }));
    let search = SearchBody::new("u", "pixel", 3);
    assert_eq!(titles(&node.search(&search))[0], "Google Pixel 9");
    let visible_after = written.elapsed();

    let deleted = std::time::Instant::now();
    node.client.delete_product("pixel-9").unwrap();
    assert!(!titles(&node.search(&search)).contains(&"Google Pixel 9".to_string()));
    let gone_after = deleted.elapsed();
    // The first search after the acknowledgement already agrees; the bound is the product's
    // promise of visibility within a second.
    let second = std::time::Duration::from_secs(1);
    assert!(
        visible_after < second && gone_after < second,
        "{visible_after:?} {gone_after:?}"
    );
}

/// Plays a conversation in one session; each turn is (query, expected ids in order,
/// expected follow-up flag), and the understood constraints must keep the category.
fn check_conversation(node: &TestNode, user: &str, turns: &[(&str, &[&str], bool)]) {
    for (query, expected, follow_up) in turns {
        let body = SearchBody {
            session_id: Some(format!("{user}-session")),
            ..SearchBody::new(user, *query, 10)
        };
        let answer = node.search(&body);
        let understanding = answer
            .understanding
            .as_ref()
            .expect("a search is understood");
        assert_eq!(&ids(&answer), expected, "{query}: {understanding:?}");
        assert_eq!(
            understanding.follow_up, *follow_up,
            "{query}: {understanding:?}"
        );
        let constraints = &understanding.constraints;
        assert_eq!(
            constraints.category.as_deref(),
            Some("手机"),
            "{query}: {understanding:?}"
        );
        assert_eq!(
            constraints.preference,
            Some(Preference::BestValue),
            "{query}: {understanding:?}"
        );
    }
}

#[test]
fn the_classic_example_in_chinese_and_english() {
    let node = TestNode::start_with(with_encoder(ModelName::MultilingualE5Small));
    let all_phones: &[&str] = &["xiaomi-12", "iphone-se", "iphone-14"];
    check_conversation(
        &node,
        "zh-shopper",
        &[
            ("我想找一款性价比高的手机", all_phones, false),
            ("有没有8000元以内的？", all_phones, true),
            ("4000元以内的呢？", &["xiaomi-12"], true),
        ],
    );
    check_conversation(
        &node,
        "en-shopper",
        &[
            (
                "I'm looking for a phone with good value for money",
                all_phones,
                false,
            ),
            ("any under 8000?", all_phones, true),
            ("what about under 4000?", &["xiaomi-12"], true),
        ],
    );
    // A Chinese storefront asks for Chinese reason texts; the codes and parameters are the
    // same in every language.
    let answer = node
        .client
        .with_language(Some("zh-CN,zh;q=0.9,en;q=0.8"))
        .search(&SearchBody {
            session_id: Some("zh-shopper-session".into()),
            ..SearchBody::new("zh-shopper", "有便宜一点的吗", 3)
        })
        .unwrap();
    let understanding = answer.understanding.as_ref().expect("understood");
    assert_eq!(understanding.intent, Intent::Refine, "{understanding:?}");
    let budget = answer.items[0]
        .reasons
        .iter()
        .find(|reason| reason.code == "within_budget")
        .unwrap_or_else(|| panic!("{:?}", answer.items[0].reasons));
    assert_eq!(budget.params["amount"], 4000.0);
    assert_eq!(budget.params["currency"], "CNY");
    assert_eq!(budget.text, "在您 ¥4,000 的预算内");
}

#[test]
fn an_overloaded_model_pool_answers_503_and_stays_bounded() {
    let mut actors = with_encoder(ModelName::AllMiniLmL6V2);
    let pool = actors.encoder.as_mut().unwrap();
    pool.queue_capacity = 4;
    pool.max_batch = 2;
    pool.max_wait = std::time::Duration::from_millis(20);
    let node = TestNode::start_with(actors);
    let outcomes: Vec<Result<RankedAnswer, inkling_api::Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|index| {
                let node = &node;
                scope.spawn(move || {
                    let query = format!("wireless headphones model {index}");
                    node.client
                        .search(&SearchBody::new(format!("flood-{index}"), query, 3))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let refused: Vec<&inkling_api::Error> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .collect();
    assert!(
        refused.iter().all(|error| error.status == Some(503)),
        "only 503s: {refused:?}"
    );
    assert!(
        !refused.is_empty(),
        "64 concurrent searches never overloaded a queue of 4"
    );
    for error in &refused {
        assert_eq!(error.code.as_deref(), Some("overloaded"), "{error}");
        assert_eq!(
            error.retry_after,
            Some(Duration::from_secs(1)),
            "every 503 says when to retry"
        );
    }
    let health = node.client.health().unwrap();
    let pool = health.model_pool.expect("the node has a model pool");
    assert!(pool.rejected >= refused.len() as u64, "{pool:?}");
    assert!(pool.queued_texts <= 4, "{pool:?}");
}

/// `event_id` is the idempotency key: a retried batch is acknowledged again but applied once.
#[test]
fn a_retried_event_id_is_acknowledged_but_applied_once() {
    let node = TestNode::start();
    let retried = EventBody {
        event_id: Some("retrier-1".into()),
        ..event("retrier", None, EventType::View, "xiaomi-12")
    };
    for attempt in 0..2 {
        let answer = node.events(vec![retried.clone()]);
        assert_eq!(
            (answer.accepted, answer.durable),
            (1, true),
            "attempt {attempt}: {answer:?}"
        );
    }
    let profile = node.client.profile("retrier").unwrap();
    assert_eq!(profile.event_count, 1, "{profile:?}");
    // The key is remembered once, as its xxh3 hash, which the (admin) export shows.
    let key = inkling_domain::event_key_hash("retrier-1");
    let export = node.client.export_user("retrier").unwrap();
    assert_eq!(export.applied_event_keys, [key], "{export:?}");
}

#[test]
fn metrics_expose_requests_storage_actors_and_the_cluster() {
    let node = TestNode::start();
    node.events(vec![event("metered", None, EventType::View, "xiaomi-12")]);
    node.search(&SearchBody::new("metered", "phone", 3));
    let text = node.client.metrics().expect("the text exposition format");
    // Each: what the exposition must hold once the node has served the requests above.
    // Values are left out: tests run several nodes in this process, and metrics are
    // process-wide.
    let expected = [
        "inkling_http_requests_total{route=\"/v1/search\",status=\"200\"}",
        "inkling_http_request_seconds_bucket{route=\"/v1/events\"",
        "inkling_events_ingested_total",
        "inkling_storage_sync_seconds_bucket",
        "inkling_active_sessions",
        "inkling_raft_commit_seconds_bucket",
        "inkling_raft_groups_led ",
        "inkling_raft_leader_changes_total ",
        "inkling_raft_replication_lag_entries ",
        "inkling_cluster_live_members ",
        "inkling_cluster_mesh_sessions ",
        "inkling_actor_mailbox_depth{kind=",
        "inkling_embedding_cache_lookups_total",
        "inkling_cluster_shard_replicas{location=\"local\"",
    ];
    for line in expected {
        assert!(text.contains(line), "/metrics lacks {line}:\n{text}");
    }
}

/// The keys a guarded node accepts, one per scope.
struct Keys {
    admin: ApiKey,
    storefront: ApiKey,
    metrics: ApiKey,
}

impl Keys {
    fn generate() -> Self {
        Self {
            admin: ApiKey::generate(),
            storefront: ApiKey::generate(),
            metrics: ApiKey::generate(),
        }
    }

    fn ring(&self) -> KeyRing {
        KeyRing::new([
            (Scope::Admin, self.admin.hash()),
            (Scope::Storefront, self.storefront.hash()),
            (Scope::Metrics, self.metrics.hash()),
        ])
    }
}

/// A node that asks for keys, with `gateway`'s other settings.
fn guarded_node(keys: &Keys, gateway: GatewayConfig) -> TestNode {
    let gateway = GatewayConfig {
        keys: keys.ring(),
        ..gateway
    };
    TestNode::start_with_gateway(ActorConfig::default(), gateway)
}

impl TestNode {
    /// Sends a request as it is with `key` (none: no `Authorization` header): (status,
    /// body as JSON, the whole raw answer).
    fn send_as(
        &self,
        key: Option<&ApiKey>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value, inkling_api::client::RawAnswer) {
        let answer = self
            .client
            .with_api_key(key.map(ApiKey::expose))
            .send_raw(method, path, body)
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        let body = serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body.clone()));
        (answer.status, body, answer)
    }

    /// Polls `/readyz` (which needs no key) until it answers 200, or fails at the deadline.
    fn wait_until_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body, _) = self.send_as(None, "GET", "/readyz", None);
            if status == 200 {
                assert_eq!(body["status"], "ready", "{body}");
                return;
            }
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["error"]["code"], "not_ready", "{body}");
            assert!(
                std::time::Instant::now() < deadline,
                "not ready within a minute: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A call and what it must answer: 401s and 403s carry their JSON code.
struct Call<'a> {
    name: &'a str,
    key: Option<&'a ApiKey>,
    method: &'static str,
    path: &'a str,
    body: Option<String>,
    status: u16,
}

fn check_call(node: &TestNode, call: &Call) {
    let (status, body, raw) = node.send_as(call.key, call.method, call.path, call.body.as_deref());
    assert_eq!(status, call.status, "{}: {body}", call.name);
    let expected_code = match status {
        401 => Some("unauthenticated"),
        403 => Some("forbidden"),
        _ => None,
    };
    if let Some(code) = expected_code {
        assert_eq!(body["error"]["code"], code, "{}: {body}", call.name);
        assert!(
            body["error"]["message"].is_string(),
            "{}: {body}",
            call.name
        );
    }
    if status == 401 {
        assert_eq!(
            raw.www_authenticate.as_deref(),
            Some("Bearer"),
            "{}",
            call.name
        );
    }
}

#[test]
fn keys_and_their_scopes_decide_who_may_call_each_route() {
    let keys = Keys::generate();
    let node = guarded_node(&keys, GatewayConfig::default());
    node.wait_until_ready();
    let stranger = ApiKey::generate();
    let (admin, storefront, metrics) = (
        Some(&keys.admin),
        Some(&keys.storefront),
        Some(&keys.metrics),
    );
    let product =
        json!({ "products": [{ "id": "keyed-probe", "title": "Keyed probe", "price": 1 }] })
            .to_string();
    let search =
        json!({ "user_id": "keyed-user", "query": "phone", "k": 3, "mode": "lexical" }).to_string();
    let events = json!({ "events": [{ "user_id": "keyed-user", "type": "view", "item_id": "keyed-probe" }] })
        .to_string();
    let call = |name, key, method, path, body: Option<&str>, status| Call {
        name,
        key,
        method,
        path,
        body: body.map(str::to_string),
        status,
    };
    let calls = [
        call(
            "no key searches",
            None,
            "POST",
            "/v1/search",
            Some(&search),
            401,
        ),
        call(
            "an unknown key searches",
            Some(&stranger),
            "POST",
            "/v1/search",
            Some(&search),
            401,
        ),
        // Refused before the body is read: a malformed body still gets the 401.
        call(
            "no key with a broken body",
            None,
            "PUT",
            "/v1/products",
            Some("{"),
            401,
        ),
        call(
            "storefront writes products",
            storefront,
            "PUT",
            "/v1/products",
            Some(&product),
            403,
        ),
        call(
            "storefront deletes a product",
            storefront,
            "DELETE",
            "/v1/products/keyed-probe",
            None,
            403,
        ),
        call(
            "storefront erases a user",
            storefront,
            "DELETE",
            "/v1/users/keyed-user",
            None,
            403,
        ),
        call(
            "storefront reads the status",
            storefront,
            "GET",
            "/v1/admin/status",
            None,
            403,
        ),
        call(
            "storefront drains the node",
            storefront,
            "POST",
            "/v1/admin/drain",
            None,
            403,
        ),
        call(
            "storefront scrapes metrics",
            storefront,
            "GET",
            "/metrics",
            None,
            403,
        ),
        call(
            "metrics searches",
            metrics,
            "POST",
            "/v1/search",
            Some(&search),
            403,
        ),
        call("metrics scrapes", metrics, "GET", "/metrics", None, 200),
        call(
            "admin writes products",
            admin,
            "PUT",
            "/v1/products",
            Some(&product),
            200,
        ),
        call(
            "storefront searches",
            storefront,
            "POST",
            "/v1/search",
            Some(&search),
            200,
        ),
        call(
            "storefront sends events",
            storefront,
            "POST",
            "/v1/events",
            Some(&events),
            200,
        ),
        call(
            "storefront reads a profile",
            storefront,
            "GET",
            "/v1/users/keyed-user/profile",
            None,
            200,
        ),
        call(
            "no key reads a product",
            None,
            "GET",
            "/v1/products/keyed-probe",
            None,
            401,
        ),
        call(
            "metrics reads a product",
            metrics,
            "GET",
            "/v1/products/keyed-probe",
            None,
            403,
        ),
        call(
            "storefront reads a product",
            storefront,
            "GET",
            "/v1/products/keyed-probe",
            None,
            200,
        ),
        call(
            "admin searches",
            admin,
            "POST",
            "/v1/search",
            Some(&search),
            200,
        ),
        call(
            "admin reads the status",
            admin,
            "GET",
            "/v1/admin/status",
            None,
            200,
        ),
        call(
            "admin reads a replica",
            admin,
            "GET",
            "/v1/admin/replicas/users/keyed-user",
            None,
            200,
        ),
        call(
            "admin erases a user",
            admin,
            "DELETE",
            "/v1/users/keyed-user",
            None,
            200,
        ),
        call(
            "admin deletes a product",
            admin,
            "DELETE",
            "/v1/products/keyed-probe",
            None,
            200,
        ),
        call("no key checks health", None, "GET", "/healthz", None, 200),
        call("no key checks readiness", None, "GET", "/readyz", None, 200),
        call(
            "no key reads the API contract",
            None,
            "GET",
            "/v1/openapi.json",
            None,
            200,
        ),
        call("no key reads the API docs", None, "GET", "/docs", None, 200),
        call("no key opens the demo page", None, "GET", "/", None, 200),
        call(
            "the old internal route is gone",
            admin,
            "GET",
            "/internal/status",
            None,
            404,
        ),
    ];
    for call in &calls {
        check_call(&node, call);
    }
    // The replica read answers the node's own `Result` of an optional profile: erased.
    let (_, replica, _) = node.send_as(admin, "GET", "/v1/admin/replicas/users/keyed-user", None);
    assert_eq!(replica, json!({ "Ok": null }), "{replica}");
}

#[test]
fn a_key_past_its_rate_gets_429_and_probes_are_exempt() {
    let keys = Keys::generate();
    let gateway = GatewayConfig {
        rate_limit: RateLimit {
            per_second: 1,
            burst: 3,
        },
        expose_metrics: false,
        ..GatewayConfig::default()
    };
    let node = guarded_node(&keys, gateway);
    node.wait_until_ready();
    let storefront = Some(&keys.storefront);
    let search =
        json!({ "user_id": "rate-user", "query": "phone", "k": 3, "mode": "lexical" }).to_string();
    // A burst of three, then one a second. The body is broken on purpose: the key and its
    // rate are checked before the body is read, and a quick 400 spends a token as a search
    // would, without the node's speed deciding whether the bucket refills in between.
    let refused = (0..20)
        .map(|_| node.send_as(storefront, "POST", "/v1/search", Some("{")))
        .find(|(status, _, _)| *status == 429);
    let (_, body, raw) = refused.expect("twenty calls at once were all let through");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let retry_after: u64 = raw.retry_after.as_deref().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    for _ in 0..10 {
        let (status, body, _) = node.send_as(None, "GET", "/healthz", None);
        assert_eq!(status, 200, "health is never rate limited: {body}");
    }
    let (status, body, _) = node.send_as(Some(&keys.admin), "POST", "/v1/search", Some(&search));
    assert_eq!(status, 200, "another key has a bucket of its own: {body}");
    let (status, body, _) = node.send_as(Some(&keys.metrics), "GET", "/metrics", None);
    assert_eq!(status, 404, "metrics are not exposed: {body}");
}
