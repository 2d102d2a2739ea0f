//! The HTTP gateway: API v1 on axum. Handlers validate, hand the request to the actors, and
//! map the answer; every error leaves as a JSON body `{"error": {"code", "message"}}`.
//!
//! `inkling-gateway` serves the public API whose request and answer types and limits live
//! in `inkling-api` (which clients share); it owns the conversions between those types and
//! the actor protocol ([`convert`]), the error codes ([`error`]), who may call each route
//! and how often ([`guard`], over `inkling-auth`'s keys and scopes), how much one node takes
//! on at once ([`load`]), the handlers (`storefront`, `catalog`, [`operations`]), the
//! OpenAPI document generated from them with its docs page ([`openapi`]), and the demo
//! storefront page at `/` (`demo`).
//! [`GatewayConfig`] says how a node's API is guarded; where its keys come from is the
//! node's business.
//!
//! It must never hold business logic, open storage, or know where an actor runs: it talks
//! to the `Cluster` façade, which routes each shopper's requests to the node that leads the
//! shopper's partition.

mod catalog;
pub mod config;
pub mod convert;
mod demo;
pub mod error;
pub mod experiments;
pub mod guard;
mod language;
pub mod load;
pub mod openapi;
pub mod operations;
mod storefront;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{
    DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, MatchedPath, Request,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
pub use inkling_api::limits::{MAX_BATCH, MAX_K};
use inkling_api::limits::{MAX_BODY_BYTES, MAX_ID_BYTES};
use inkling_auth::Scope;
use inkling_ops::trace::{TRACEPARENT, TraceContext};
use inkling_replication::Cluster;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes as documented;

pub use crate::config::{EventWindow, GatewayConfig, RateLimit};
pub use crate::error::ApiError;
use crate::experiments::Experiments;
use crate::guard::{Guard, Needs, require_scope};
use crate::load::{InFlight, limit_in_flight, time_limit};

/// What the handlers share: the cluster and what they check requests against.
#[derive(Clone, FromRef)]
struct Gateway {
    cluster: Arc<Cluster>,
    event_window: EventWindow,
    experiments: Arc<Experiments>,
    document: openapi::ApiDocument,
}

/// The public API. Each group of routes needs a scope (see [`Scope`]): `admin` for catalog
/// writes, erasure and operations, `storefront` for what shoppers do, `metrics` for the
/// scrape (served only with `expose_metrics`); `/healthz`, `/readyz`, the OpenAPI document,
/// the docs page and the demo page need none. On a node without the `gateway` role
/// (`serves_api` false) every `/v1` route but `/v1/admin/*` and the document answers that
/// this is not a gateway, and there is no demo page.
pub fn router(cluster: Arc<Cluster>, config: GatewayConfig) -> Router {
    let (routes, document) = routes(&config);
    let state = Gateway {
        cluster,
        event_window: config.event_window,
        experiments: Arc::new(config.experiments.clone()),
        document,
    };
    routes.with_state(state)
}

/// Every route of [`router`] with its guards and limits, before the state is attached,
/// and the document of exactly these routes that `GET /v1/openapi.json` serves.
fn routes(config: &GatewayConfig) -> (Router<Gateway>, openapi::ApiDocument) {
    let (mut routes, api) = documented_routes(config).split_for_parts();
    if !config.serves_api {
        routes = routes.merge(not_a_gateway());
    }
    let routes = routes
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(
            InFlight::new(config.max_concurrent_requests),
            limit_in_flight,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(trace_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    (routes, openapi::ApiDocument::new(&openapi::document(api)))
}

/// The routes the node's roles and options mount, each group behind its scope.
fn documented_routes(config: &GatewayConfig) -> OpenApiRouter<Gateway> {
    let guard = Arc::new(Guard::new(config.keys.clone(), config.rate_limit));
    let needs = |scope| Needs {
        guard: guard.clone(),
        scope,
    };
    let timeout = config.request_timeout;
    let mut routes = probe_routes(timeout);
    if config.expose_metrics {
        routes = routes.merge(metrics_routes(needs(Scope::Metrics), timeout));
    }
    routes = routes
        .merge(operations_routes(needs(Scope::Admin)))
        .merge(openapi::routes());
    if config.serves_api {
        routes = routes
            .merge(catalog_routes(needs(Scope::Admin)))
            .merge(storefront_routes(needs(Scope::Storefront), timeout))
            .merge(demo::routes());
    }
    routes
}

/// Liveness and readiness, for load balancers and orchestrators: no key, no rate limit.
fn probe_routes(timeout: std::time::Duration) -> OpenApiRouter<Gateway> {
    OpenApiRouter::new()
        .routes(documented!(operations::health))
        .routes(documented!(operations::ready))
        .route_layer(middleware::from_fn_with_state(timeout, time_limit))
}

fn metrics_routes(needs: Needs, timeout: std::time::Duration) -> OpenApiRouter<Gateway> {
    OpenApiRouter::new()
        .routes(documented!(operations::metrics))
        .route_layer(middleware::from_fn_with_state(timeout, time_limit))
        .route_layer(middleware::from_fn_with_state(needs, require_scope))
}

/// Operations, on every node (gateway or not): its view of the cluster, drain, and what its
/// own replica stores for a user.
fn operations_routes(needs: Needs) -> OpenApiRouter<Gateway> {
    OpenApiRouter::new()
        .routes(documented!(operations::status))
        .routes(documented!(operations::drain))
        .routes(documented!(operations::stored_profile))
        .routes(documented!(operations::admit))
        .route_layer(middleware::from_fn(reject_query_parameters))
        .route_layer(middleware::from_fn_with_state(needs, require_scope))
}

/// Catalog writes and erasure. They carry no gateway time limit: a catalog write's
/// deadline grows with its size (embedding and indexing), and the cluster bounds each of
/// these calls itself.
fn catalog_routes(needs: Needs) -> OpenApiRouter<Gateway> {
    OpenApiRouter::new()
        .routes(documented!(catalog::upsert_products))
        .routes(documented!(catalog::delete_product))
        .routes(documented!(catalog::erase_user))
        .routes(documented!(catalog::export_user))
        .route_layer(middleware::from_fn(reject_query_parameters))
        .route_layer(middleware::from_fn_with_state(needs, require_scope))
}

/// What a storefront does for its shoppers.
fn storefront_routes(needs: Needs, timeout: std::time::Duration) -> OpenApiRouter<Gateway> {
    OpenApiRouter::new()
        .routes(documented!(storefront::record_events))
        .routes(documented!(storefront::search))
        .routes(documented!(storefront::recommend))
        .routes(documented!(storefront::product))
        .routes(documented!(storefront::profile))
        .route_layer(middleware::from_fn(reject_query_parameters))
        .route_layer(middleware::from_fn_with_state(timeout, time_limit))
        .route_layer(middleware::from_fn_with_state(needs, require_scope))
}

fn not_a_gateway() -> Router<Gateway> {
    Router::new().route(
        "/v1/{*route}",
        any(|| async {
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "not_a_gateway",
                "this node does not serve the public API (it lacks the gateway role); send requests to a gateway node",
            )
        }),
    )
}

/// `Json` whose rejections are [`ApiError`]s, so malformed bodies get the same JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
struct ApiJson<T>(T);

/// `Path` whose rejections are [`ApiError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
struct ApiPath<T>(T);

type ApiResult<T> = Result<Json<T>, ApiError>;

/// No v1 route takes query parameters: one is a client mistake, not something to ignore.
async fn reject_query_parameters(request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query().filter(|query| !query.is_empty()) {
        let name: String = query
            .split(['&', '='])
            .next()
            .unwrap_or_default()
            .chars()
            .take(MAX_ID_BYTES)
            .collect();
        return ApiError::invalid(format!(
            "unknown query parameter `{name}`: this route takes none"
        ))
        .into_response();
    }
    next.run(request).await
}

/// Runs the request inside the span that starts (or, with a `traceparent` header, continues)
/// its trace, and tells the client the trace id in `x-trace-id`, so a slow answer can be
/// found in the logs and the tracing backend.
/// The span is named by the route's template (`GET /v1/users/{id}/profile`), never the
/// path itself, which carries user ids into every trace backend.
async fn trace_request(request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok());
    let span = TraceContext::from_header(header).span(format_args!(
        "{} {}",
        request.method(),
        route_of(&request)
    ));
    let trace = TraceContext::of(&span);
    let mut response = next.run(request).instrument(span).await;
    if let Some(value) = trace
        .trace_id()
        .and_then(|trace_id| HeaderValue::from_str(trace_id).ok())
    {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
}

/// The template of the route a request matched, or `unmatched`: what spans and metrics are
/// labelled with, so neither carries ids nor grows without bound.
fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string()
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &inkling_ops::metrics::HTTP_REQUESTS;
    metrics
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    inkling_ops::metrics::HTTP_LATENCY
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// An id from the path: the same rules as in a body.
fn checked_id(path: &str, id: &str) -> Result<(), ApiError> {
    inkling_api::limits::id(path, id).map_err(ApiError::invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of roles and options builds a router: no two routes conflict
    /// (the catch-all of a node without the gateway role leaves `/v1/admin/*` alone).
    #[test]
    fn every_configuration_builds_its_routes() {
        for serves_api in [true, false] {
            for expose_metrics in [true, false] {
                let config = GatewayConfig {
                    serves_api,
                    expose_metrics,
                    ..GatewayConfig::default()
                };
                let _ = routes(&config);
            }
        }
    }

    /// The document lists exactly the routes a node mounts, with the scope's security
    /// and the API's limits.
    #[test]
    fn the_openapi_document_lists_every_route_a_node_serves() {
        let operations = |config: &GatewayConfig| -> Vec<String> {
            let (_, api) = documented_routes(config).split_for_parts();
            let json = serde_json::to_value(openapi::document(api)).unwrap();
            let mut listed = Vec::new();
            for (path, item) in json["paths"].as_object().unwrap() {
                for method in item.as_object().unwrap().keys() {
                    listed.push(format!("{} {path}", method.to_uppercase()));
                }
            }
            listed.sort();
            listed
        };
        let gateway = GatewayConfig::default();
        let expected = [
            "DELETE /v1/products/{id}",
            "DELETE /v1/users/{id}",
            "GET /",
            "GET /demo/app.css",
            "GET /demo/app.js",
            "GET /docs",
            "GET /docs/swagger-ui-bundle.js",
            "GET /docs/swagger-ui.css",
            "GET /healthz",
            "GET /metrics",
            "GET /readyz",
            "GET /v1/admin/replicas/users/{id}",
            "GET /v1/admin/status",
            "GET /v1/openapi.json",
            "GET /v1/products/{id}",
            "GET /v1/users/{id}/export",
            "GET /v1/users/{id}/profile",
            "POST /v1/admin/drain",
            "POST /v1/admin/members/{name}/admit",
            "POST /v1/events",
            "POST /v1/recommend",
            "POST /v1/search",
            "PUT /v1/products",
        ];
        assert_eq!(operations(&gateway), expected);
        let member = GatewayConfig {
            serves_api: false,
            ..GatewayConfig::default()
        };
        let served: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|route| {
                let api = route.contains("/v1/") && !route.contains("/admin/");
                let demo = route.ends_with(" /") || route.contains("/demo/");
                !(api || demo) || route.ends_with("/openapi.json")
            })
            .collect();
        assert_eq!(operations(&member), served);
    }
}
