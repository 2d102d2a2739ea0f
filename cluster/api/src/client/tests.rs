//! The client against a stand-in node (axum on loopback): each route's method and path,
//! typed answers, error statuses with the server's message, timeouts and refusals.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use axum::response::IntoResponse;

use super::*;
use crate::requests::{EventBody, RecommendBody};

/// Answers every request with what it received, as `METHOD PATH BODY`, except paths that
/// play a part: `/v1/events` commits, `/v1/search` is overloaded, `/healthz` is slow,
/// `/metrics` is text, `/v1/users/...` is not JSON, `/v1/admin/status` answers the
/// `Authorization` header it got.
async fn stand_in(
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    match uri.path() {
        "/v1/admin/status" => {
            let authorization = headers
                .get("authorization")
                .map(|value| value.to_str().unwrap().to_string());
            axum::Json(serde_json::json!({ "authorization": authorization })).into_response()
        }
        "/v1/events" => {
            axum::Json(serde_json::json!({ "accepted": 1, "durable": true })).into_response()
        }
        "/v1/search" => {
            let body = r#"{"error":{"code":"overloaded","message":"queue full"}}"#;
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", "1".parse().unwrap());
            (StatusCode::SERVICE_UNAVAILABLE, headers, body).into_response()
        }
        "/healthz" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            StatusCode::OK.into_response()
        }
        "/metrics" => "inkling_up 1\n".into_response(),
        "/v1/users/u/profile" => "not json".into_response(),
        _ => {
            let echo = format!("{method} {} {body}", uri);
            (StatusCode::IM_A_TEAPOT, echo).into_response()
        }
    }
}

/// Serves the stand-in on a free port from a runtime of its own; answers its base URL.
fn serve() -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(stand_in);
    runtime.spawn(async move { axum::serve(listener, app).await });
    (url, runtime)
}

fn config() -> ClientConfig {
    ClientConfig::timeout(Duration::from_millis(500))
}

/// The method and path `request` sends to a node at `http://node:7000/`.
fn sent<T>(request: Request<T>) -> String {
    let base = parse_base("http://node:7000/").unwrap();
    format!("{} {}", request.method, request.url(&base).unwrap().path())
}

/// Each case: a route, and the method and path it sends.
#[test]
fn each_route_has_its_method_and_an_encoded_path() {
    type Status = serde_json::Value;
    let batch = EventBatch::new(Vec::new());
    let products = ProductBatch {
        products: Vec::new(),
    };
    let cases = [
        (sent(route::upsert_products(&products)), "PUT /v1/products"),
        (sent(route::delete_product("p")), "DELETE /v1/products/p"),
        (sent(route::events(&batch)), "POST /v1/events"),
        (
            sent(route::search(&SearchBody::new("u", "q", 1))),
            "POST /v1/search",
        ),
        (
            sent(route::recommend(&RecommendBody::new("u", 1))),
            "POST /v1/recommend",
        ),
        (
            sent(route::profile("a b/手")),
            "GET /v1/users/a%20b%2F%E6%89%8B/profile",
        ),
        (sent(route::erase_user("u")), "DELETE /v1/users/u"),
        (sent(route::health()), "GET /healthz"),
        (sent(route::metrics()), "GET /metrics"),
        (
            sent(route::cluster_status::<Status>()),
            "GET /v1/admin/status",
        ),
        (sent(route::drain::<Status>()), "POST /v1/admin/drain"),
        (
            sent(route::replica_user::<Status>("u")),
            "GET /v1/admin/replicas/users/u",
        ),
    ];
    for (actual, expected) in cases {
        assert_eq!(actual, expected);
    }
}

/// Each case: the key configured, and the `Authorization` header the node receives.
#[test]
fn both_clients_present_the_key_as_a_bearer_token() {
    let (url, runtime) = serve();
    let keyed = config().with_api_key("ink_secret");
    let cases = [
        (None, None),
        (Some("ink_secret"), Some("Bearer ink_secret")),
    ];
    let blocking = Client::new(&url, config()).unwrap();
    for (key, expected) in cases {
        let received: serde_json::Value = blocking.with_api_key(key).cluster_status().unwrap();
        assert_eq!(received["authorization"].as_str(), expected, "{key:?}");
    }
    let nonblocking = AsyncClient::new(&url, keyed.clone()).unwrap();
    let received: serde_json::Value =
        runtime.block_on(async { nonblocking.cluster_status().await.unwrap() });
    assert_eq!(received["authorization"], "Bearer ink_secret");
    assert!(
        !format!("{keyed:?}").contains("ink_secret"),
        "Debug shows no key: {keyed:?}"
    );
    let unsendable = Client::new(&url, config().with_api_key("a\nb")).unwrap();
    let error = unsendable.health().unwrap_err();
    assert!(error.message.contains("API key"), "{error}");
}

/// What a failed call must say.
struct Expected {
    status: Option<u16>,
    code: Option<&'static str>,
    retry_after: Option<u64>,
    /// How its message starts.
    display: &'static str,
}

#[test]
fn the_blocking_client_answers_types_and_errors_with_the_servers_message() {
    let (url, _runtime) = serve();
    let client = Client::new(&url, config()).unwrap();
    let batch = EventBatch::new(vec![EventBody::on_item("u", crate::EventType::View, "i")]);
    let answer = client.events(&batch).unwrap();
    assert_eq!((answer.accepted, answer.durable), (1, true));
    assert_eq!(client.metrics().unwrap(), "inkling_up 1\n");

    let search = SearchBody::new("u", "q", 1);
    let no_answer = |display| Expected {
        status: None,
        code: None,
        retry_after: None,
        display,
    };
    let cases = [
        (
            client.search(&search).unwrap_err(),
            Expected {
                status: Some(503),
                code: Some("overloaded"),
                retry_after: Some(1),
                display: "HTTP 503 overloaded: queue full",
            },
        ),
        (
            client.delete_product("p").unwrap_err(),
            Expected {
                status: Some(418),
                code: None,
                retry_after: None,
                display: "HTTP 418: DELETE /v1/products/p ",
            },
        ),
        (
            client.profile("u").unwrap_err(),
            no_answer("no answer: unreadable answer: expected ident"),
        ),
        (
            client.health().unwrap_err(),
            no_answer("no answer: error sending request"),
        ),
        (
            client
                .at("http://127.0.0.1:1")
                .unwrap()
                .health()
                .unwrap_err(),
            no_answer("no answer: error sending request"),
        ),
    ];
    for (error, expected) in cases {
        assert_eq!(error.status, expected.status, "{error}");
        assert_eq!(error.code.as_deref(), expected.code, "{error}");
        let retry_after = expected.retry_after.map(Duration::from_secs);
        assert_eq!(error.retry_after, retry_after, "{error}");
        assert!(error.to_string().starts_with(expected.display), "{error}");
        assert_eq!(error.is_no_answer(), expected.status.is_none());
    }
    // With a longer timeout the slow answer arrives (empty, so unreadable as health).
    let slow = client
        .with_timeout(Duration::from_secs(5))
        .health()
        .unwrap_err();
    assert!(slow.message.starts_with("unreadable answer"), "{slow}");
}

#[test]
fn raw_requests_come_back_whatever_their_status() {
    let (url, _runtime) = serve();
    let client = Client::new(&url, config()).unwrap();
    let answer = client
        .send_raw("POST", "/v1/whatever?x=1", Some("{"))
        .unwrap();
    assert_eq!(answer.status, 418);
    assert_eq!(answer.body, "POST /v1/whatever?x=1 {");
    let answer = client.send_raw("POST", "/v1/search", None).unwrap();
    assert_eq!(
        (answer.status, answer.retry_after.as_deref()),
        (503, Some("1"))
    );
}

#[test]
fn the_async_client_calls_the_same_routes() {
    let (url, runtime) = serve();
    let client = AsyncClient::new(&url, config()).unwrap();
    runtime.block_on(async {
        let batch = EventBatch::new(Vec::new());
        assert_eq!(client.events(&batch).await.unwrap().accepted, 1);
        let error = client.at(&url).unwrap().profile("u").await.unwrap_err();
        assert!(error.is_no_answer(), "{error}");
        assert_eq!(client.metrics().await.unwrap(), "inkling_up 1\n");
    });
}

/// Each case: a status, and whether no retry mends it.
#[test]
fn only_4xx_other_than_429_are_the_clients_fault() {
    let cases = [
        (None, false),
        (Some(400), true),
        (Some(404), true),
        (Some(429), false),
        (Some(503), false),
    ];
    for (status, fault) in cases {
        let error = match status {
            Some(status) => Error::from_answer(status, None, b"x"),
            None => Error::client("x".into()),
        };
        assert_eq!(error.is_client_error(), fault, "{status:?}");
    }
}
