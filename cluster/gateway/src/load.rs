//! How much one node takes on: a bound on the requests it works on at once (beyond it, an
//! immediate 503 `overloaded` rather than a queue every request waits in) and a time limit
//! on each interactive request (504 `timeout`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The requests a node may work on at once.
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl InFlight {
    /// At most `limit` requests at once (at least one).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

/// Middleware: holds one permit while the request is worked on; none left is a 503.
pub async fn limit_in_flight(
    State(in_flight): State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = in_flight.permits.clone().try_acquire_owned() else {
        return ApiError::overloaded(format!(
            "this node is working on {} requests, as many as it takes at once",
            in_flight.limit
        ))
        .into_response();
    };
    next.run(request).await
}

/// Middleware: answers 504 when the request takes longer than the limit. Dropping the
/// handler stops waiting, not a write already proposed: the client retries with its
/// idempotency keys.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout(limit).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::middleware;
    use axum::routing::get;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    use super::*;

    fn get_request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_request_past_the_bound_is_refused_at_once() {
        let release = Arc::new(Notify::new());
        let held = release.clone();
        let app = Router::new()
            .route(
                "/slow",
                get(move || async move {
                    held.notified().await;
                    "done"
                }),
            )
            .route("/fast", get(|| async { "done" }))
            .layer(middleware::from_fn_with_state(
                InFlight::new(1),
                limit_in_flight,
            ));
        let slow = tokio::spawn(app.clone().oneshot(get_request("/slow")));
        // Polls until the slow request holds the only permit.
        let refused = loop {
            let answer = app.clone().oneshot(get_request("/fast")).await.unwrap();
            if answer.status() != StatusCode::OK {
                break answer;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()["retry-after"], "1");
        release.notify_one();
        assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_past_its_time_gets_504() {
        let app = Router::new()
            .route("/never", get(std::future::pending::<&str>))
            .layer(middleware::from_fn_with_state(
                Duration::from_millis(10),
                time_limit,
            ));
        let answer = app.oneshot(get_request("/never")).await.unwrap();
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
