//! What a storefront calls for its shoppers: record events, search, recommend, read a
//! product and a shopper's profile. Every route needs a `storefront` key.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use inkling_api::{
    EventBatch, EventsAnswer, ProductView, ProfileView, RankedAnswer, RecommendBody, SearchBody,
};
use inkling_domain::{Language, now_ms};
use inkling_replication::Cluster;

use crate::config::EventWindow;
use crate::convert::{self, FromProfile, FromRankedList, IntoEvents, IntoRequest, Served};
use crate::error::ApiError;
use crate::experiments::{self, Experiments, Variant};
use crate::language::ShopperLanguage;
use crate::openapi::{BadId, KeyRefusals, RequestErrors, ServingErrors};
use crate::{ApiJson, ApiPath, ApiResult, checked_id};

/// Records shopper events; answered once every event is durable on a quorum of its
/// shopper's partition. A retried `event_id` is acknowledged again but applied once.
#[utoipa::path(
    post, path = "/v1/events", tag = "storefront", request_body = EventBatch,
    responses((status = 200, body = EventsAnswer), RequestErrors, KeyRefusals, ServingErrors),
    security(("api_key" = []))
)]
pub(crate) async fn record_events(
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

/// Searches the catalog for the shopper: the query is understood in the session's
/// conversation, retrieved by words and meaning, ranked for the shopper, and paged.
#[utoipa::path(
    post, path = "/v1/search", tag = "storefront", request_body = SearchBody,
    params(("Accept-Language" = Option<String>, Header,
        description = "The language of reason texts: `en` (the default) or `zh`")),
    responses((status = 200, body = RankedAnswer), RequestErrors, KeyRefusals, ServingErrors),
    security(("api_key" = []))
)]
pub(crate) async fn search(
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

/// Recommends products for the shopper, or for the product page `item_id` shows.
#[utoipa::path(
    post, path = "/v1/recommend", tag = "storefront", request_body = RecommendBody,
    params(("Accept-Language" = Option<String>, Header,
        description = "The language of reason texts: `en` (the default) or `zh`")),
    responses(
        (status = 200, body = RankedAnswer),
        (status = 404, description = "`not_found`: no product with the `item_id`", body = inkling_api::ErrorAnswer),
        RequestErrors, KeyRefusals, ServingErrors
    ),
    security(("api_key" = []))
)]
pub(crate) async fn recommend(
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

/// A product as the local catalog replica holds it.
#[utoipa::path(
    get, path = "/v1/products/{id}", tag = "storefront",
    params(("id" = String, Path, description = "The product's id")),
    responses(
        (status = 200, body = ProductView),
        (status = 404, description = "`not_found`: no product with the id", body = inkling_api::ErrorAnswer),
        BadId, KeyRefusals, ServingErrors
    ),
    security(("api_key" = []))
)]
pub(crate) async fn product(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ProductView> {
    checked_id("id", &id)?;
    match cluster.product(id.clone()).await? {
        Some(product) => Ok(Json(convert::product_view(&product))),
        None => Err(ApiError::not_found(format!("no product with id {id:?}"))),
    }
}

/// The shopper's current affinities, recent items and queries.
#[utoipa::path(
    get, path = "/v1/users/{id}/profile", tag = "storefront",
    params(("id" = String, Path, description = "The shopper's user id")),
    responses(
        (status = 200, body = ProfileView),
        (status = 404, description = "`not_found`: nothing recorded for the user yet", body = inkling_api::ErrorAnswer),
        BadId, KeyRefusals, ServingErrors
    ),
    security(("api_key" = []))
)]
pub(crate) async fn profile(
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
