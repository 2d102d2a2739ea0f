//! The HTTP gateway: API v1 on axum. Handlers validate, hand the request to the actors, and
//! map the answer; every error leaves as a JSON body `{"error": {"code", "message"}}`.
//!
//! `inkling-gateway` serves the public API whose request and answer types and limits live
//! in `inkling-api` (which clients share); it owns the conversions between those types and
//! the actor protocol ([`convert`]), the error codes ([`error`]), who may call each route
//! and how often ([`guard`], over `inkling-auth`'s keys and scopes), how much one node takes
//! on at once ([`load`]), and what operators and load balancers call ([`operations`]).
//! [`GatewayConfig`] says how a node's API is guarded; where its keys come from is the
//! node's business.
//!
//! It must never hold business logic, open storage, or know where an actor runs: it talks
//! to the `Cluster` façade, which routes each shopper's requests to the node that leads the
//! shopper's partition.

pub mod config;
pub mod convert;
pub mod error;
pub mod experiments;
pub mod guard;
mod language;
pub mod load;
pub mod operations;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{
    DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, MatchedPath, Request, State,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use axum::{Json, Router};
use inkling_actors::ActorError;
pub use inkling_api::limits::{MAX_BATCH, MAX_K};
use inkling_api::limits::{MAX_BODY_BYTES, MAX_ID_BYTES};
use inkling_api::{
    AdmittedAnswer, DeleteAnswer, ErasedAnswer, EventBatch, EventsAnswer, ProductBatch,
    ProductView, ProfileView, RankedAnswer, RecommendBody, SearchBody, UpsertAnswer, UserExport,
};
use inkling_auth::Scope;
use inkling_domain::{Profile, now_ms};
use inkling_ops::trace::{TRACEPARENT, TraceContext};
use inkling_replication::{Cluster, ClusterStatus};
use tracing::Instrument;

pub use crate::config::{EventWindow, GatewayConfig, RateLimit};
use crate::convert::{FromProfile, FromRankedList, IntoEvents, IntoProducts, IntoRequest, Served};
pub use crate::error::ApiError;
use crate::experiments::{Experiments, Variant};
use crate::guard::{Guard, Needs, require_scope};
use crate::language::ShopperLanguage;
use crate::load::{InFlight, limit_in_flight, time_limit};
use inkling_domain::Language;

/// What the handlers share: the cluster and what they check requests against.
#[derive(Clone, FromRef)]
struct Gateway {
    cluster: Arc<Cluster>,
    event_window: EventWindow,
    experiments: Arc<Experiments>,
}

/// The public API. Each group of routes needs a scope (see [`Scope`]): `admin` for catalog
/// writes, erasure and operations, `storefront` for what shoppers do, `metrics` for the
/// scrape (served only with `expose_metrics`); `/healthz` and `/readyz` need none. On a node
/// without the `gateway` role (`serves_api` false) every `/v1` route but `/v1/admin/*`
/// answers that this is not a gateway.
pub fn router(cluster: Arc<Cluster>, config: GatewayConfig) -> Router {
    let state = Gateway {
        cluster,
        event_window: config.event_window,
        experiments: Arc::new(config.experiments.clone()),
    };
    routes(&config).with_state(state)
}

/// Every route of [`router`] with its guards and limits, before the state is attached.
fn routes(config: &GatewayConfig) -> Router<Gateway> {
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
    routes = routes.merge(operations_routes(needs(Scope::Admin)));
    routes = if config.serves_api {
        routes
            .merge(catalog_routes(needs(Scope::Admin)))
            .merge(storefront_routes(needs(Scope::Storefront), timeout))
    } else {
        routes.merge(not_a_gateway())
    };
    routes
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
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Liveness and readiness, for load balancers and orchestrators: no key, no rate limit.
fn probe_routes(timeout: std::time::Duration) -> Router<Gateway> {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route_layer(middleware::from_fn_with_state(timeout, time_limit))
}

fn metrics_routes(needs: Needs, timeout: std::time::Duration) -> Router<Gateway> {
    Router::new()
        .route("/metrics", get(operations::metrics))
        .route_layer(middleware::from_fn_with_state(timeout, time_limit))
        .route_layer(middleware::from_fn_with_state(needs, require_scope))
}

/// Operations, on every node (gateway or not): its view of the cluster, drain, and what its
/// own replica stores for a user.
fn operations_routes(needs: Needs) -> Router<Gateway> {
    Router::new()
        .route("/v1/admin/status", get(cluster_status))
        .route("/v1/admin/drain", post(drain))
        .route("/v1/admin/replicas/users/{id}", get(stored_profile))
        .route("/v1/admin/members/{name}/admit", post(admit))
        .route_layer(middleware::from_fn(reject_query_parameters))
        .route_layer(middleware::from_fn_with_state(needs, require_scope))
}

/// Catalog writes and erasure. They carry no gateway time limit: a catalog write's
/// deadline grows with its size (embedding and indexing), and the cluster bounds each of
/// these calls itself.
fn catalog_routes(needs: Needs) -> Router<Gateway> {
    Router::new()
        .route("/v1/products", put(upsert_products))
        .route("/v1/products/{id}", delete(delete_product))
        .route("/v1/users/{id}", delete(erase_user))
        .route("/v1/users/{id}/export", get(export_user))
        .route_layer(middleware::from_fn(reject_query_parameters))
        .route_layer(middleware::from_fn_with_state(needs, require_scope))
}

/// What a storefront does for its shoppers.
fn storefront_routes(needs: Needs, timeout: std::time::Duration) -> Router<Gateway> {
    Router::new()
        .route("/v1/events", post(record_events))
        .route("/v1/search", post(search))
        .route("/v1/recommend", post(recommend))
        .route("/v1/products/{id}", get(product))
        .route("/v1/users/{id}/profile", get(profile))
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

async fn health(state: State<Arc<Cluster>>) -> ApiResult<inkling_api::HealthView> {
    operations::health(state).await
}

async fn ready(state: State<Arc<Cluster>>) -> ApiResult<operations::Readiness> {
    operations::ready(state).await
}

async fn cluster_status(state: State<Arc<Cluster>>) -> Json<ClusterStatus> {
    operations::status(state).await
}

async fn drain(state: State<Arc<Cluster>>) -> Json<ClusterStatus> {
    operations::drain(state).await
}

async fn stored_profile(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<Result<Option<Profile>, ActorError>>, ApiError> {
    checked_id("user_id", &user_id)?;
    Ok(operations::stored_profile(&cluster, &user_id).await)
}

/// Admits a node by name: from now on the leaders may place replicas on it.
async fn admit(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<AdmittedAnswer>, ApiError> {
    use inkling_replication::admission::AdmitError;
    cluster.admit(&name).await.map_err(|error| match error {
        AdmitError::InvalidName { .. } => ApiError::invalid(error.to_string()),
        AdmitError::NotRecorded(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
    })?;
    Ok(Json(AdmittedAnswer { admitted: name }))
}

/// An id from the path: the same rules as in a body.
fn checked_id(path: &str, id: &str) -> Result<(), ApiError> {
    inkling_api::limits::id(path, id).map_err(ApiError::invalid)
}

async fn upsert_products(
    State(cluster): State<Arc<Cluster>>,
    ApiJson(batch): ApiJson<ProductBatch>,
) -> ApiResult<UpsertAnswer> {
    let products = batch.into_products().map_err(ApiError::invalid)?;
    let upserted = cluster.upsert_products(products).await?;
    Ok(Json(UpsertAnswer { upserted }))
}

async fn product(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ProductView> {
    checked_id("id", &id)?;
    match cluster.product(id.clone()).await? {
        Some(product) => Ok(Json(convert::product_view(&product))),
        None => Err(ApiError::not_found(format!("no product with id {id:?}"))),
    }
}

async fn delete_product(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<DeleteAnswer> {
    checked_id("id", &id)?;
    if !cluster.delete_product(id.clone()).await? {
        return Err(ApiError::not_found(format!("no product with id {id:?}")));
    }
    Ok(Json(DeleteAnswer { deleted: id }))
}

async fn record_events(
    State(cluster): State<Arc<Cluster>>,
    State(window): State<EventWindow>,
    State(experiments): State<Arc<Experiments>>,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<EventsAnswer> {
    let debug = batch.debug;
    let events = batch
        .into_events(&window.at(now_ms()))
        .map_err(ApiError::invalid)?;
    let attributed = attributed(&experiments, &events).map_err(ApiError::invalid)?;
    // Answered only after a quorum of each partition's voters has synced the events.
    let (accepted, commits) = cluster.record_events_committed(events).await?;
    for (kind, variant) in attributed {
        inkling_ops::metrics::ATTRIBUTED_EVENTS
            .with_label_values(&[kind, variant])
            .inc();
    }
    let commits = commits
        .into_iter()
        .filter(|_| debug)
        .map(|commit| inkling_api::CommitView {
            partition: commit.partition,
            term: commit.term,
            leader: commit.leader,
        })
        .collect();
    Ok(Json(EventsAnswer {
        accepted,
        durable: true,
        commits,
    }))
}

/// The type and variant of each event that quotes the answer it followed, checking each
/// request id's form.
fn attributed<'e>(
    experiments: &'e Experiments,
    events: &[inkling_domain::Event],
) -> Result<Vec<(&'static str, &'e str)>, inkling_api::limits::Invalid> {
    let mut attributed = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let Some(attribution) = &event.attribution else {
            continue;
        };
        let variant = experiments
            .label_of(&attribution.request_id)
            .map_err(|error| format!("`events[{index}].request_id`: {error}"))?;
        attributed.push((event.kind.as_str(), variant));
    }
    Ok(attributed)
}

async fn search(
    State(cluster): State<Arc<Cluster>>,
    State(experiments): State<Arc<Experiments>>,
    ShopperLanguage(language): ShopperLanguage,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<RankedAnswer> {
    let started = Instant::now();
    let named = body.variant.clone();
    let mut request = body.into_request().map_err(ApiError::invalid)?;
    let variant = experiments
        .assign(&request.user_id, named.as_deref())
        .map_err(ApiError::invalid)?;
    request.semantic_weight = variant.semantic_weight;
    let list = cluster.search(request).await?;
    let served = served("search", variant, language, list.items.is_empty());
    Ok(Json(RankedAnswer::new(list, served, elapsed_ms(started))))
}

async fn recommend(
    State(cluster): State<Arc<Cluster>>,
    State(experiments): State<Arc<Experiments>>,
    ShopperLanguage(language): ShopperLanguage,
    ApiJson(body): ApiJson<RecommendBody>,
) -> ApiResult<RankedAnswer> {
    let started = Instant::now();
    let named = body.variant.clone();
    let request = body.into_request().map_err(ApiError::invalid)?;
    let variant = experiments
        .assign(&request.user_id, named.as_deref())
        .map_err(ApiError::invalid)?;
    if let Some(item) = &request.item
        && cluster.product(item.item_id.clone()).await?.is_none()
    {
        let id = &item.item_id;
        return Err(ApiError::not_found(format!("no product with id {id:?}")));
    }
    let list = cluster.recommend(request).await?;
    let served = served("recommend", variant, language, list.items.is_empty());
    Ok(Json(RankedAnswer::new(list, served, elapsed_ms(started))))
}

/// Counts an answer of `route` for its variant, and gives it its request id.
fn served(route: &str, variant: &Variant, language: Language, empty: bool) -> Served {
    let labels = [route, variant.name.as_str()];
    inkling_ops::metrics::RANKED_ANSWERS
        .with_label_values(&labels)
        .inc();
    if empty {
        inkling_ops::metrics::EMPTY_ANSWERS
            .with_label_values(&labels)
            .inc();
    }
    Served {
        request_id: experiments::request_id(variant),
        variant: variant.name.clone(),
        language,
    }
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

async fn profile(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<ProfileView> {
    checked_id("user_id", &user_id)?;
    let profile = cluster.profile(user_id.clone()).await?;
    if profile.event_count == 0 && profile.recent_queries.is_empty() {
        return Err(ApiError::not_found(format!(
            "no profile for user {user_id:?} yet: send events first"
        )));
    }
    Ok(Json(ProfileView::new(
        profile,
        cluster.profile_half_life_ms(),
        now_ms(),
    )))
}

/// Everything stored about the user, read on their partition's leader: the profile (as
/// shown and as stored), the events the replicated log still holds, and whether a session
/// is live.
async fn export_user(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<UserExport> {
    checked_id("user_id", &user_id)?;
    let records = cluster.export_user(user_id).await?;
    let now = now_ms();
    // A profile is plain data: it always serialises.
    let stored_profile = records
        .profile
        .as_ref()
        .and_then(|profile| serde_json::to_value(profile).ok());
    let applied_event_keys = records
        .profile
        .as_ref()
        .map(|profile| profile.applied_event_keys.iter().copied().collect())
        .unwrap_or_default();
    Ok(Json(UserExport {
        user_id: records.user_id,
        applied_event_keys,
        exported_at_ms: now,
        profile: records
            .profile
            .map(|profile| ProfileView::new(profile, cluster.profile_half_life_ms(), now)),
        stored_profile,
        events: records
            .events
            .into_iter()
            .map(convert::event_body)
            .collect(),
        events_complete: records.events_complete,
        active_session: records.active_session,
    }))
}

/// Erases everything stored about the user on every replica: the profile and the session.
async fn erase_user(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<ErasedAnswer> {
    checked_id("user_id", &user_id)?;
    cluster.erase_user(user_id.clone()).await?;
    Ok(Json(ErasedAnswer { erased: user_id }))
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
}
