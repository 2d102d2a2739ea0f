//! HTTP API v1, on axum. Handlers validate, hand the request to the actors, and map the
//! answer; every error leaves as a JSON body `{"error": {"code", "message"}}`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use inkling_actors::{ActorError, Inkling, RankedList, RecommendRequest, SearchRequest};
use inkling_storage::profile::Profile;
use inkling_storage::{Event, Filters, Product, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Largest batch of products or events one request may carry.
pub const MAX_BATCH: usize = 10_000;
/// Largest `k` a search or recommendation may ask for.
pub const MAX_K: usize = 200;
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

pub fn router(inkling: Arc<Inkling>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/products", put(upsert_products))
        .route("/v1/products/{id}", delete(delete_product))
        .route("/v1/events", post(record_events))
        .route("/v1/search", post(search))
        .route("/v1/recommend", post(recommend))
        .route("/v1/users/{id}/profile", get(profile))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(inkling)
}

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_json",
        };
        Self::new(rejection.status(), code, rejection.body_text())
    }
}

impl From<ActorError> for ApiError {
    fn from(error: ActorError) -> Self {
        match error {
            ActorError::Overloaded(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                error.to_string(),
            ),
            ActorError::Timeout(_) | ActorError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            ),
            ActorError::Storage(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                error.to_string(),
            ),
        }
    }
}

/// `Json` whose rejections are [`ApiError`]s, so malformed bodies get the same JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
struct ApiJson<T>(T);

type ApiResult<T> = Result<Json<T>, ApiError>;

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

async fn health(State(inkling): State<Arc<Inkling>>) -> ApiResult<serde_json::Value> {
    let model_pool = match inkling.model_pool_stats().await {
        Some(stats) => serde_json::to_value(stats?).unwrap_or_default(),
        None => serde_json::Value::Null,
    };
    Ok(Json(json!({
        "status": "ok",
        "products": inkling.catalog_size()?,
        "active_sessions": inkling.active_sessions().await?,
        "model_pool": model_pool,
    })))
}

async fn metrics() -> String {
    inkling_ops::metrics::render()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBatch {
    products: Vec<Product>,
}

fn check_batch_size(name: &str, len: usize) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::invalid(format!("`{name}` must not be empty")));
    }
    if len > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "`{name}` holds {len} entries; at most {MAX_BATCH} are allowed per request"
        )));
    }
    Ok(())
}

async fn upsert_products(
    State(inkling): State<Arc<Inkling>>,
    ApiJson(batch): ApiJson<ProductBatch>,
) -> ApiResult<serde_json::Value> {
    check_batch_size("products", batch.products.len())?;
    for (index, product) in batch.products.iter().enumerate() {
        product
            .validate()
            .map_err(|error| ApiError::invalid(format!("products[{index}]: {error}")))?;
    }
    let upserted = inkling.upsert_products(batch.products).await?;
    Ok(Json(json!({ "upserted": upserted })))
}

async fn delete_product(
    State(inkling): State<Arc<Inkling>>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    if !inkling.delete_product(id.clone()).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no product with id {id:?}"),
        ));
    }
    Ok(Json(json!({ "deleted": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBatch {
    events: Vec<Event>,
}

async fn record_events(
    State(inkling): State<Arc<Inkling>>,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<serde_json::Value> {
    check_batch_size("events", batch.events.len())?;
    for (index, event) in batch.events.iter().enumerate() {
        event
            .validate()
            .map_err(|error| ApiError::invalid(format!("events[{index}]: {error}")))?;
    }
    // Answered only after the group commit has made every event of the batch durable.
    let accepted = inkling.record_events(batch.events).await?;
    Ok(Json(json!({ "accepted": accepted, "durable": true })))
}

fn check_query_shape(user_id: &str, k: usize, filters: &Filters) -> Result<(), ApiError> {
    if user_id.trim().is_empty() {
        return Err(ApiError::invalid("`user_id` must not be empty"));
    }
    if k == 0 || k > MAX_K {
        return Err(ApiError::invalid(format!(
            "`k` must be between 1 and {MAX_K}, got {k}"
        )));
    }
    filters.validate().map_err(ApiError::invalid)
}

/// The answer to a search or recommendation.
#[derive(Serialize)]
struct RankedResponse {
    #[serde(flatten)]
    list: RankedList,
    took_ms: f64,
}

impl RankedResponse {
    fn new(list: RankedList, started: Instant) -> Self {
        Self {
            list,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }
}

async fn search(
    State(inkling): State<Arc<Inkling>>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> ApiResult<RankedResponse> {
    let started = Instant::now();
    check_query_shape(&request.user_id, request.k, &request.filters)?;
    if request.query.trim().is_empty() {
        return Err(ApiError::invalid("`query` must not be empty"));
    }
    if request.query.len() > inkling_storage::types::MAX_TEXT_LEN {
        return Err(ApiError::invalid("`query` is too long"));
    }
    let list = inkling.search(request).await?;
    Ok(Json(RankedResponse::new(list, started)))
}

async fn recommend(
    State(inkling): State<Arc<Inkling>>,
    ApiJson(request): ApiJson<RecommendRequest>,
) -> ApiResult<RankedResponse> {
    let started = Instant::now();
    check_query_shape(&request.user_id, request.k, &request.filters)?;
    let list = inkling.recommend(request).await?;
    Ok(Json(RankedResponse::new(list, started)))
}

/// A profile as people read it: current affinities rather than raw decayed sums.
#[derive(Serialize)]
struct ProfileView {
    user_id: String,
    event_count: u64,
    updated_at_ms: u64,
    top_categories: Vec<Affinity>,
    top_brands: Vec<Affinity>,
    /// Typical price of items of interest, as a (low, high) band.
    price_band: Option<(f64, f64)>,
    recent_items: Vec<inkling_storage::profile::RecentItem>,
    recent_queries: Vec<inkling_storage::profile::RecentQuery>,
    purchased: Vec<String>,
    /// The shopper segment from the last `inkling profile build`.
    segment: Option<u32>,
}

#[derive(Serialize)]
struct Affinity {
    name: String,
    affinity: f64,
}

impl ProfileView {
    fn new(profile: Profile, half_life_ms: u64) -> Self {
        let now = now_ms();
        let top = |affinities| {
            Profile::normalised(affinities, now, half_life_ms)
                .into_iter()
                .take(10)
                .map(|(name, affinity)| Affinity { name, affinity })
                .collect()
        };
        let price_band = profile.price_affinity.band().map(|(mean, deviation)| {
            (
                cents((mean - deviation).exp()),
                cents((mean + deviation).exp()),
            )
        });
        Self {
            top_categories: top(&profile.category_affinity),
            top_brands: top(&profile.brand_affinity),
            price_band,
            user_id: profile.user_id,
            event_count: profile.event_count,
            updated_at_ms: profile.updated_at_ms,
            recent_items: profile.recent_items.into(),
            recent_queries: profile.recent_queries.into(),
            purchased: profile.purchased.into_iter().collect(),
            segment: profile.segment,
        }
    }
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

async fn profile(
    State(inkling): State<Arc<Inkling>>,
    Path(user_id): Path<String>,
) -> ApiResult<ProfileView> {
    let profile = inkling.profile(user_id.clone()).await?;
    if profile.event_count == 0 && profile.recent_queries.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no profile for user {user_id:?} yet: send events first"),
        ));
    }
    Ok(Json(ProfileView::new(
        profile,
        inkling.profile_half_life_ms(),
    )))
}
