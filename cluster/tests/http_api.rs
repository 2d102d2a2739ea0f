//! The HTTP API of one in-process node on loopback, with real sled and tantivy underneath.

use inkling_actors::ActorConfig;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_cluster::node::{CatalogSource, Node, NodeOptions};
use inkling_models::encoder::ModelName;
use serde_json::{Value, json};

struct TestNode {
    base_url: String,
    _data: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

fn models_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.deps/models")
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
        let data = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let options = NodeOptions {
            data_dir: data.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            catalog: CatalogSource::Demo,
            actors,
        };
        let base_url = runtime.block_on(async {
            let node = Node::start(&options).await.unwrap();
            let listener = tokio::net::TcpListener::bind(options.listen).await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(node.serve(listener, std::future::pending()));
            format!("http://{address}")
        });
        Self {
            base_url,
            _data: data,
            _runtime: runtime,
        }
    }

    /// Sends a request and returns (status, body as JSON).
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
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
        let text = response.into_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
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

/// Each case: method, path, body, expected status, a fragment the error message contains.
#[test]
fn bad_input_gets_a_clear_4xx() {
    let node = TestNode::start();
    let too_many_events =
        json!({ "events": vec![json!({"user_id": "u", "type": "view", "item_id": "x"}); 10_001] })
            .to_string();
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        (
            "PUT",
            "/v1/products",
            Some(r#"{"products":[]}"#),
            400,
            "must not be empty",
        ),
        (
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":"t","price":-1}]}"#),
            400,
            "products[0]: product x: price",
        ),
        (
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":"t","price":1,"currency":"yuan"}]}"#),
            400,
            "currency",
        ),
        (
            "PUT",
            "/v1/products",
            Some(r#"{"products":[{"id":"x","title":"t","price":1,"colour":"red"}]}"#),
            422,
            "unknown field `colour`",
        ),
        (
            "DELETE",
            "/v1/products/no-such-product",
            None,
            404,
            "no-such-product",
        ),
        ("POST", "/v1/events", Some("{"), 400, "EOF while parsing"),
        (
            "POST",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"u","type":"view"}]}"#),
            400,
            "events[0]: a `view` event needs an `item_id`",
        ),
        (
            "POST",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"u","type":"buy","item_id":"x"}]}"#),
            422,
            "unknown variant `buy`",
        ),
        (
            "POST",
            "/v1/events",
            Some(too_many_events.as_str()),
            400,
            "at most 10000",
        ),
        (
            "POST",
            "/v1/search",
            Some(r#"{"user_id":"u","query":" ","k":5}"#),
            400,
            "`query` must not be empty",
        ),
        (
            "POST",
            "/v1/search",
            Some(r#"{"user_id":"u","query":"phone","k":0}"#),
            400,
            "`k` must be between 1 and 200",
        ),
        (
            "POST",
            "/v1/search",
            Some(r#"{"user_id":"u","query":"phone","k":5,"mode":"fuzzy"}"#),
            422,
            "unknown variant `fuzzy`",
        ),
        (
            "POST",
            "/v1/search",
            Some(
                r#"{"user_id":"u","query":"phone","k":5,"filters":{"price_min":10,"price_max":1}}"#,
            ),
            400,
            "greater than",
        ),
        (
            "POST",
            "/v1/recommend",
            Some(r#"{"user_id":"","k":5}"#),
            400,
            "`user_id` must not be empty",
        ),
        (
            "POST",
            "/v1/recommend",
            Some(r#"{"user_id":"u"}"#),
            422,
            "missing field `k`",
        ),
        (
            "GET",
            "/v1/users/ghost/profile",
            None,
            404,
            "no profile for user \"ghost\"",
        ),
        ("GET", "/v2/anything", None, 404, "no such route"),
    ];
    for (method, path, body, status, fragment) in cases {
        let (actual_status, answer) = node.send(method, path, body);
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(actual_status, status, "{method} {path}: {answer}");
        assert!(
            message.contains(fragment),
            "{method} {path}: {message:?} lacks {fragment:?}"
        );
    }
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
    assert_eq!(answer["missing_shards"], json!([]));
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
    assert_eq!(
        node.post("/v1/events", events),
        json!({ "accepted": 4, "durable": true })
    );

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
    assert!(
        reasons.iter().any(|reason| reason.contains("browsing")),
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
    let statuses: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|index| {
                let node = &node;
                scope.spawn(move || {
                    let body = json!({ "user_id": format!("flood-{index}"), "query": format!("wireless headphones model {index}"), "k": 3 });
                    node.send("POST", "/v1/search", Some(&body.to_string()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let overloaded: Vec<&Value> = statuses
        .iter()
        .filter(|(status, _)| *status == 503)
        .map(|(_, body)| body)
        .collect();
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
