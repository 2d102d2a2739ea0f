//! The HTTP gateway: API v1 on axum. Handlers validate, hand the request to the actors, and
//! map the answer; every error leaves as a JSON body `{"error": {"code", "message"}}`.
//!
//! `inkling-gateway` serves the public API whose request and answer types and limits live
//! in `inkling-api` (which clients share); it owns the conversions between those types and
//! the actor protocol ([`convert`]) and the error codes ([`error`]). It must never hold business logic, open storage, or know
//! where an actor runs: it talks to the `Cluster` façade, which routes each shopper's
//! requests to the node that leads the shopper's partition.

pub mod convert;
pub mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use axum::{Json, Router};
pub use inkling_api::limits::{MAX_BATCH, MAX_K};
use inkling_api::limits::{MAX_BODY_BYTES, MAX_ID_BYTES};
use inkling_api::{
    DeleteAnswer, ErasedAnswer, EventBatch, EventsAnswer, HealthView, ProductBatch, ProfileView,
    RankedAnswer, RecommendBody, SearchBody, UpsertAnswer,
};
use inkling_domain::now_ms;
use inkling_ops::trace::{TRACEPARENT, TraceContext};
use inkling_replication::Cluster;
use tracing::Instrument;

use crate::convert::{FromProfile, FromRankedList, IntoEvents, IntoProducts, IntoRequest};
pub use crate::error::ApiError;

/// The public API; on a node without the `gateway` role (`serves_api` false) only
/// `/healthz` and `/metrics`, and every `/v1` route answers that this is not a gateway.
pub fn router(cluster: Arc<Cluster>, serves_api: bool) -> Router {
    let v1 = if serves_api {
        api_routes()
    } else {
        not_a_gateway()
    };
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(trace_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(cluster)
}

fn not_a_gateway() -> Router<Arc<Cluster>> {
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

fn api_routes() -> Router<Arc<Cluster>> {
    Router::new()
        .route("/v1/products", put(upsert_products))
        .route("/v1/products/{id}", delete(delete_product))
        .route("/v1/events", post(record_events))
        .route("/v1/search", post(search))
        .route("/v1/recommend", post(recommend))
        .route("/v1/users/{id}/profile", get(profile))
        .route("/v1/users/{id}", delete(erase_user))
        .route_layer(middleware::from_fn(reject_query_parameters))
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
async fn trace_request(request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok());
    let span = TraceContext::from_header(header).span(format_args!(
        "{} {}",
        request.method(),
        request.uri().path()
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

async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
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

async fn health(State(cluster): State<Arc<Cluster>>) -> ApiResult<HealthView> {
    let model_pool = match cluster.local_model_pool_stats().await {
        Some(stats) => Some(convert::model_pool_view(stats?)),
        None => None,
    };
    Ok(Json(HealthView {
        status: "ok".to_string(),
        products: cluster.local_catalog_size().await?,
        active_sessions: cluster.local_active_sessions().await?,
        model_pool,
    }))
}

async fn metrics() -> String {
    inkling_replication::publish_replica_gauges();
    inkling_ops::metrics::render()
}

async fn upsert_products(
    State(cluster): State<Arc<Cluster>>,
    ApiJson(batch): ApiJson<ProductBatch>,
) -> ApiResult<UpsertAnswer> {
    let products = batch.into_products().map_err(ApiError::invalid)?;
    let upserted = cluster.upsert_products(products).await?;
    Ok(Json(UpsertAnswer { upserted }))
}

async fn delete_product(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<DeleteAnswer> {
    inkling_api::limits::required("id", &id, MAX_ID_BYTES).map_err(ApiError::invalid)?;
    if !cluster.delete_product(id.clone()).await? {
        return Err(ApiError::not_found(format!("no product with id {id:?}")));
    }
    Ok(Json(DeleteAnswer { deleted: id }))
}

async fn record_events(
    State(cluster): State<Arc<Cluster>>,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<EventsAnswer> {
    let events = batch.into_events().map_err(ApiError::invalid)?;
    // Answered only after a quorum of each partition's voters has synced the events.
    let (accepted, commits) = cluster.record_events_committed(events).await?;
    let commits = commits
        .into_iter()
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

async fn search(
    State(cluster): State<Arc<Cluster>>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<RankedAnswer> {
    let started = Instant::now();
    let request = body.into_request().map_err(ApiError::invalid)?;
    let list = cluster.search(request).await?;
    Ok(Json(RankedAnswer::new(list, elapsed_ms(started))))
}

async fn recommend(
    State(cluster): State<Arc<Cluster>>,
    ApiJson(body): ApiJson<RecommendBody>,
) -> ApiResult<RankedAnswer> {
    let started = Instant::now();
    let request = body.into_request().map_err(ApiError::invalid)?;
    let list = cluster.recommend(request).await?;
    Ok(Json(RankedAnswer::new(list, elapsed_ms(started))))
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

async fn profile(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<ProfileView> {
    inkling_api::limits::required("user_id", &user_id, MAX_ID_BYTES).map_err(ApiError::invalid)?;
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

/// Erases everything stored about the user on every replica: the profile and the session.
async fn erase_user(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<ErasedAnswer> {
    inkling_api::limits::required("user_id", &user_id, MAX_ID_BYTES).map_err(ApiError::invalid)?;
    cluster.erase_user(user_id.clone()).await?;
    Ok(Json(ErasedAnswer { erased: user_id }))
}
