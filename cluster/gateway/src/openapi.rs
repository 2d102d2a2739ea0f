//! The API contract and its docs page: `GET /v1/openapi.json` serves the OpenAPI 3.1
//! document that utoipa generates from the routes this node actually mounts (these
//! included) and the `inkling-api` types they take and answer, so it cannot drift from what
//! is served; `GET /docs` renders it with Swagger UI, whose files are compiled in (no CDN).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use inkling_api::{ErrorAnswer, schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, Required};
use utoipa::{IntoResponses, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The security scheme every keyed route names (`security(("api_key" = []))`: the macro
/// takes a literal): `Authorization: Bearer <key>`.
pub const API_KEY: &str = "api_key";

/// The route groups, in the order the docs page shows them, with what each is for.
const TAGS: [(&str, &str); 6] = [
    (
        "storefront",
        "What a shop does for its shoppers: search, recommend, record events. Needs a `storefront` key.",
    ),
    (
        "catalog",
        "Catalog writes and user erasure or export. Needs an `admin` key.",
    ),
    (
        "operations",
        "The cluster's status, drain and admission. Needs an `admin` key.",
    ),
    (
        "probes",
        "Liveness and readiness for load balancers; no key.",
    ),
    ("metrics", "The Prometheus scrape. Needs a `metrics` key."),
    (
        "docs",
        "This document, its docs page and the demo storefront page; no key.",
    ),
];

/// Errors every route guarded by a key may answer (with no keys configured, on loopback,
/// none of these is sent).
#[derive(IntoResponses)]
#[allow(dead_code)] // Only the derive reads it.
pub enum KeyRefusals {
    /// `unauthenticated`: no key, or one the node does not know. Sent with
    /// `WWW-Authenticate: Bearer`.
    #[response(status = 401)]
    Unauthorized(ErrorAnswer),
    /// `forbidden`: the key lacks the route's scope.
    #[response(status = 403)]
    Forbidden(ErrorAnswer),
    /// `rate_limited`: the key has spent its budget; retry after `Retry-After` seconds.
    #[response(status = 429)]
    RateLimited(ErrorAnswer),
}

/// Errors of a request the node could not take: a malformed or over-limit request.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum RequestErrors {
    /// `invalid_request` (the message names the field and the rule) or `invalid_json`
    /// (the body is not JSON).
    #[response(status = 400)]
    Invalid(ErrorAnswer),
    /// `invalid_json`: the JSON does not have the request's shape (a missing or unknown
    /// field, a wrong type); the message names the field.
    #[response(status = 422)]
    Unprocessable(ErrorAnswer),
    /// `payload_too_large`: the body is over the limit.
    #[response(status = 413)]
    TooLarge(ErrorAnswer),
    /// `unsupported_media_type`: the body is not `application/json`.
    #[response(status = 415)]
    NotJson(ErrorAnswer),
}

/// The error of a route whose path names an id that breaks the id rules.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BadId {
    /// `invalid_request`: the id breaks the id rules.
    #[response(status = 400)]
    Invalid(ErrorAnswer),
}

/// Errors of a node that cannot serve the request now; each says when to retry.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ServingErrors {
    /// `overloaded`, `not_ready` or `unavailable`; retry after `Retry-After` seconds.
    #[response(status = 503)]
    Unavailable(ErrorAnswer),
    /// `timeout`: the request did not finish in time. A write's outcome is unknown: retry
    /// it with the same idempotency keys.
    #[response(status = 504)]
    Timeout(ErrorAnswer),
    /// `storage`: the node's storage failed the request.
    #[response(status = 500)]
    Storage(ErrorAnswer),
    /// `insufficient_storage`: the node's disk is too full to take a write.
    #[response(status = 507)]
    InsufficientStorage(ErrorAnswer),
}

/// The document as served: the generated paths and schemas with the API's description,
/// its security scheme, its tags, and every path parameter (all ids) limited like an id.
pub fn document(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("Inkling HTTP API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Real-time e-commerce search and recommendation. Every error answers \
             `{\"error\": {\"code\", \"message\"}}` with a stable `code`. Keys are sent as \
             `Authorization: Bearer <key>`; a node on loopback without keys takes every call.",
        ))
        .build();
    let components = api.components.take().unwrap_or_default();
    let mut components = ComponentsBuilder::from(components)
        .schema(ErrorAnswer::name(), ErrorAnswer::schema())
        .security_scheme(
            API_KEY,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    let mut schemas = Vec::new();
    ErrorAnswer::schemas(&mut schemas);
    components.schemas.extend(schemas);
    api.components = Some(components);
    api.tags = Some(
        TAGS.iter()
            .map(|(name, description)| {
                TagBuilder::new()
                    .name(*name)
                    .description(Some(*description))
                    .build()
            })
            .collect(),
    );
    limit_path_ids(&mut api);
    api
}

/// Every path parameter is an id: a required string limited as [`schema::id`] says.
fn limit_path_ids(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.parameter_in == utoipa::openapi::path::ParameterIn::Path {
                    parameter.schema = Some(schema::id().into());
                    parameter.required = Required::True;
                }
            }
        }
    }
}

/// The document as served, rendered once when the router is built.
#[derive(Clone)]
pub struct ApiDocument(pub Arc<str>);

impl ApiDocument {
    pub fn new(api: &OpenApi) -> Self {
        Self(
            api.to_pretty_json()
                .expect("an OpenAPI document serialises")
                .into(),
        )
    }
}

/// `GET /v1/openapi.json` and the docs page, documented like every other route.
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    ApiDocument: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(contract))
        .routes(routes!(docs_page))
        .routes(routes!(swagger_ui_css))
        .routes(routes!(swagger_ui_bundle))
}

/// This document: OpenAPI 3.1, generated from the routes this node mounts.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "docs",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
async fn contract(State(document): State<ApiDocument>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document.0.to_string())
}

/// The docs page: Swagger UI on this document.
#[utoipa::path(
    get, path = "/docs", tag = "docs",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String))
)]
async fn docs_page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", CACHED, DOCS_PAGE)
}

/// The docs page's style sheet (Swagger UI's).
#[utoipa::path(
    get, path = "/docs/swagger-ui.css", tag = "docs",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String))
)]
async fn swagger_ui_css() -> impl IntoResponse {
    asset("text/css", CACHED, SWAGGER_UI_CSS)
}

/// The docs page's script (Swagger UI's).
#[utoipa::path(
    get, path = "/docs/swagger-ui-bundle.js", tag = "docs",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
async fn swagger_ui_bundle() -> impl IntoResponse {
    asset("text/javascript", CACHED, SWAGGER_UI_BUNDLE)
}

/// Swagger UI's files change only with a new build: a browser may keep them an hour.
const CACHED: &str = "public, max-age=3600";

/// A compiled-in file with its type and how long a browser may keep it.
pub(crate) fn asset(
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static str,
) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, cache_control)],
        body,
    )
}

/// The docs page: Swagger UI on this node's own document.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Inkling HTTP API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="api"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "/v1/openapi.json", dom_id: "#api", deepLinking: true });
  </script>
</body>
</html>
"##;

/// Swagger UI, from the npm package `swagger-ui-dist` that `scripts/setup.sh` unpacks.
const SWAGGER_UI_BUNDLE: &str = include_str!("../../../.deps/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &str = include_str!("../../../.deps/swagger-ui/swagger-ui.css");
