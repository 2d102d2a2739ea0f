//! The demo storefront at `/`: one page (HTML, CSS and JavaScript compiled in from
//! `assets/demo/`) that searches, shows facets and products, sends clicks and carts as
//! events and refreshes recommendations, all through the public API with the visitor's
//! storefront key when the node asks for one. It works on any catalog: it knows nothing
//! but the API.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

const PAGE: &str = include_str!("../assets/demo/index.html");
const SCRIPT: &str = include_str!("../assets/demo/app.js");
const STYLE: &str = include_str!("../assets/demo/app.css");

/// `GET /` and its two assets, for a router of any state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/demo/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/demo/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// A compiled-in file: revalidated on each load, so a new build's page is never mixed
/// with an old script.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
}
