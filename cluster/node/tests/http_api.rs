//! The HTTP API of one in-process node on loopback, with real sled and tantivy underneath.

use inkling_actors::ActorConfig;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_models::encoder::ModelName;
use inkling_node::{CatalogSource, Node, NodeOptions};
use serde_json::{Value, json};

struct TestNode {
    base_url: String,
    _data: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
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

/// One HTTP answer.
struct Reply {
    status: u16,
    retry_after: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    body: Value,
}

impl TestNode {
    fn start() -> Self {
        Self::start_with(ActorConfig::default())
    }

    fn start_with(actors: ActorConfig) -> Self {
        let data = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let options = NodeOptions {
            actors,
            ..NodeOptions::new(
                data.path().to_path_buf(),
                "127.0.0.1:0".parse().unwrap(),
                CatalogSource::Demo,
            )
        };
        let base_url = runtime.block_on(async {
            let node = Node::start(&options).await.unwrap();
            let address = node.local_addr().unwrap();
            tokio::spawn(node.serve(std::future::pending()));
            format!("http://{address}")
        });
        Self {
            base_url,
            _data: data,
            _runtime: runtime,
        }
    }

    /// Sends a request and returns what a client sees of the answer.
    fn exchange(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let request = ureq::request(method, &format!("{}{path}", self.base_url));
        let outcome = match body {
            Some(body) => request
                .set("content-type", "application/json")
                .send_string(body),
            None => request.call(),
        };
        let response = match outcome {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status();
        let retry_after = response.header("retry-after").map(str::to_string);
        let text = response.into_string().unwrap();
        Reply {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// Sends a request and returns (status, body as JSON).
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let reply = self.exchange(method, path, body);
        (reply.status, reply.body)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.send("POST", path, Some(&body.to_string()));
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }
}

fn titles(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["product"]["title"].as_str().unwrap().to_string())
        .collect()
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
                  "timestamp": 1_700_000_000_000u64 },
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
        bad("GET", "/v2/anything", None, 404, "no such route"),
        bad("GET", "/v1/search", None, 405, "does not take that method"),
    ]
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
    let answer = node.post(
        "/v1/search",
        json!({ "user_id": "curl", "query": "phone", "k": 5 }),
    );
    let mut top3 = titles(&answer)[..3].to_vec();
    top3.sort();
    assert_eq!(top3, ["Xiaomi 12", "iPhone 14", "iPhone SE"]);
    for item in answer["items"].as_array().unwrap() {
        assert!(!item["reasons"].as_array().unwrap().is_empty(), "{item}");
    }
    assert_eq!(answer["complete"], json!(true), "{answer}");
    assert_eq!(answer["coverage"], json!(1.0), "{answer}");
    assert_eq!(answer["warnings"], json!([]), "{answer}");
    assert!(
        answer.get("missing_shards").is_none(),
        "shard numbers leaked: {answer}"
    );
}

#[test]
fn events_shape_profile_and_recommendations() {
    let node = TestNode::start();
    let events = json!({ "events": [
        { "user_id": "shopper", "type": "view", "item_id": "macbook-pro" },
        { "user_id": "shopper", "type": "add_to_cart", "item_id": "macbook-pro" },
        { "user_id": "shopper", "type": "search", "query": "laptop" },
        { "user_id": "shopper", "type": "purchase", "item_id": "ipad-mini", "timestamp": 1_700_000_000_000u64 },
    ]});
    let answer = node.post("/v1/events", events);
    assert_eq!(answer["accepted"], 4, "{answer}");
    assert_eq!(answer["durable"], true, "{answer}");
    // One user, so one partition: the term and leader that committed the batch.
    let commits = answer["commits"].as_array().expect("commit records");
    assert_eq!(commits.len(), 1, "{answer}");
    assert!(commits[0]["term"].as_u64() >= Some(1), "{answer}");

    let (status, profile) = node.send("GET", "/v1/users/shopper/profile", None);
    assert_eq!(status, 200);
    assert_eq!(profile["event_count"], 4);
    assert_eq!(profile["top_categories"][0]["name"], "电脑");
    assert_eq!(profile["recent_queries"][0]["query"], "laptop");
    assert_eq!(profile["purchased"], json!(["ipad-mini"]));

    let answer = node.post("/v1/recommend", json!({ "user_id": "shopper", "k": 10 }));
    let titles = titles(&answer);
    assert!(
        !titles.contains(&"iPad Mini".to_string()),
        "purchased item re-shown: {titles:?}"
    );
    assert!(
        !titles.contains(&"Macbook Pro".to_string()),
        "carted item re-shown: {titles:?}"
    );
    let reasons: Vec<&str> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|item| {
            item["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|reason| reason.as_str().unwrap())
        })
        .collect();
    // The profile explains the answer: the carted Macbook is the only 电脑, so what carries
    // over is the interest in its brand.
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("interest in Apple")),
        "{reasons:?}"
    );
    assert!(answer["items"][0].get("features").is_none());
    let explained = node.post(
        "/v1/recommend",
        json!({ "user_id": "shopper", "k": 10, "explain": true }),
    );
    let features = &explained["items"][0]["features"];
    assert!(features["category_affinity"].is_number(), "{explained}");
}

#[test]
fn recommendations_skip_the_cart_and_the_viewed_item_unless_buying_again() {
    let node = TestNode::start();
    let events = json!({ "events": [
        { "user_id": "carted", "session_id": "s", "type": "add_to_cart", "item_id": "xiaomi-12" },
        { "user_id": "carted", "session_id": "s", "type": "view", "item_id": "iphone-14" },
    ]});
    node.post("/v1/events", events);
    // (buy_again, the phones recommended, sorted)
    let cases: [(bool, &[&str]); 2] = [
        (false, &["iphone-se"]),
        (true, &["iphone-14", "iphone-se", "xiaomi-12"]),
    ];
    for (buy_again, expected) in cases {
        let body = json!({ "user_id": "carted", "session_id": "s", "k": 10,
            "filters": { "category": "手机" }, "buy_again": buy_again });
        let answer = node.post("/v1/recommend", body);
        let mut ids: Vec<&str> = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["product"]["id"].as_str().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, expected, "buy_again {buy_again}");
    }
}

#[test]
fn catalog_changes_are_searchable_when_acknowledged() {
    let node = TestNode::start();
    let upsert = json!({ "products": [{
        "id": "pixel-9", "title": "Google Pixel 9", "category_path": ["手机"], "brand": "Google",
        "price": 5999, "currency": "CNY"
    }]});
    let written = std::time::Instant::now();
    let (status, answer) = node.send("PUT", "/v1/products", Some(&upsert.to_string()));
    assert_eq!((status, answer), (200, json!({ "upserted": 1 })));
    let search = json!({ "user_id": "u", "query": "pixel", "k": 3 });
    assert_eq!(
        titles(&node.post("/v1/search", search.clone()))[0],
        "Google Pixel 9"
    );
    let visible_after = written.elapsed();

    let deleted = std::time::Instant::now();
    let (status, _) = node.send("DELETE", "/v1/products/pixel-9", None);
    assert_eq!(status, 200);
    assert!(!titles(&node.post("/v1/search", search)).contains(&"Google Pixel 9".to_string()));
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
        let body = json!({ "user_id": user, "session_id": format!("{user}-session"), "query": query, "k": 10 });
        let answer = node.post("/v1/search", body);
        let ids: Vec<&str> = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["product"]["id"].as_str().unwrap())
            .collect();
        let understanding = &answer["understanding"];
        assert_eq!(&ids, expected, "{query}: {understanding}");
        assert_eq!(
            understanding["follow_up"],
            json!(follow_up),
            "{query}: {understanding}"
        );
        assert_eq!(
            understanding["constraints"]["category"], "手机",
            "{query}: {understanding}"
        );
        assert_eq!(
            understanding["constraints"]["preference"], "best_value",
            "{query}: {understanding}"
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
    let answer = node.post("/v1/search", json!({ "user_id": "zh-shopper", "session_id": "zh-shopper-session", "query": "有便宜一点的吗", "k": 3 }));
    assert_eq!(
        answer["understanding"]["intent"], "refine",
        "{}",
        answer["understanding"]
    );
    let reasons = answer["items"][0]["reasons"].to_string();
    assert!(reasons.contains("within your ¥4,000 budget"), "{reasons}");
}

#[test]
fn an_overloaded_model_pool_answers_503_and_stays_bounded() {
    let mut actors = with_encoder(ModelName::AllMiniLmL6V2);
    let pool = actors.encoder.as_mut().unwrap();
    pool.queue_capacity = 4;
    pool.max_batch = 2;
    pool.max_wait = std::time::Duration::from_millis(20);
    let node = TestNode::start_with(actors);
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|index| {
                let node = &node;
                scope.spawn(move || {
                    let body = json!({ "user_id": format!("flood-{index}"), "query": format!("wireless headphones model {index}"), "k": 3 });
                    node.exchange("POST", "/v1/search", Some(&body.to_string()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let statuses: Vec<(u16, &Value)> = replies
        .iter()
        .map(|reply| (reply.status, &reply.body))
        .collect();
    let overloaded: Vec<&Reply> = replies.iter().filter(|reply| reply.status == 503).collect();
    assert!(
        statuses
            .iter()
            .all(|(status, _)| *status == 200 || *status == 503),
        "{statuses:?}"
    );
    assert!(
        !overloaded.is_empty(),
        "64 concurrent searches never overloaded a queue of 4"
    );
    for reply in &overloaded {
        assert_eq!(reply.body["error"]["code"], "overloaded", "{}", reply.body);
        assert_eq!(
            reply.retry_after.as_deref(),
            Some("1"),
            "every 503 says when to retry"
        );
    }
    let overloaded: Vec<&Value> = overloaded.iter().map(|reply| &reply.body).collect();
    assert_eq!(overloaded[0]["error"]["code"], "overloaded");
    let (_, health) = node.send("GET", "/healthz", None);
    assert!(
        health["model_pool"]["rejected"].as_u64().unwrap() >= overloaded.len() as u64,
        "{health}"
    );
    assert!(
        health["model_pool"]["queued_texts"].as_u64().unwrap() <= 4,
        "{health}"
    );
}

/// `event_id` is the idempotency key: a retried batch is acknowledged again but applied once.
#[test]
fn a_retried_event_id_is_acknowledged_but_applied_once() {
    let node = TestNode::start();
    let batch = json!({ "events": [
        { "user_id": "retrier", "type": "view", "item_id": "xiaomi-12", "event_id": "retrier-1" },
    ]});
    for attempt in 0..2 {
        let answer = node.post("/v1/events", batch.clone());
        assert_eq!(answer["accepted"], 1, "attempt {attempt}: {answer}");
        assert_eq!(answer["durable"], true, "attempt {attempt}: {answer}");
    }
    let (status, profile) = node.send("GET", "/v1/users/retrier/profile", None);
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["event_count"], 1, "{profile}");
    // The key is remembered once, as its xxh3 hash.
    let key = inkling_domain::event_key_hash("retrier-1");
    assert_eq!(profile["applied_event_keys"], json!([key]), "{profile}");
}

#[test]
fn metrics_expose_requests_storage_actors_and_the_cluster() {
    let node = TestNode::start();
    node.post(
        "/v1/events",
        json!({ "events": [{ "user_id": "metered", "type": "view", "item_id": "xiaomi-12" }] }),
    );
    node.post(
        "/v1/search",
        json!({ "user_id": "metered", "query": "phone", "k": 3 }),
    );
    let (status, body) = node.send("GET", "/metrics", None);
    assert_eq!(status, 200);
    let text = body.as_str().expect("the text exposition format");
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
