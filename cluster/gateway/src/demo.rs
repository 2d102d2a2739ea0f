//! The demo storefront at `/`: one page (HTML, CSS and JavaScript compiled in from
//! `assets/demo/`) that searches, shows facets and products, sends clicks and carts as
//! events and refreshes recommendations, all through the public API with the visitor's
//! storefront key when the node asks for one. It works on any catalog: it knows nothing
//! but the API.

use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::asset;

const PAGE: &str = include_str!("../assets/demo/index.html");
const SCRIPT: &str = include_str!("../assets/demo/app.js");
const STYLE: &str = include_str!("../assets/demo/app.css");

/// `GET /` and its two assets, documented like every other route.
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(script))
        .routes(routes!(style))
}

/// The demo storefront (gateway nodes only).
#[utoipa::path(
    get, path = "/", tag = "docs",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String))
)]
async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", REVALIDATED, PAGE)
}

/// The demo storefront's script.
#[utoipa::path(
    get, path = "/demo/app.js", tag = "docs",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", REVALIDATED, SCRIPT)
}

/// The demo storefront's style sheet.
#[utoipa::path(
    get, path = "/demo/app.css", tag = "docs",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String))
)]
async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", REVALIDATED, STYLE)
}

/// Revalidated on each load, so a new build's page is never mixed with an old script.
const REVALIDATED: &str = "no-cache";
