//! Catalog writes and what a shop may do with a shopper's data: create, replace and delete
//! products, export and erase a user. Every route needs an `admin` key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use inkling_api::{
    DeleteAnswer, ErasedAnswer, ProductBatch, ProfileView, UpsertAnswer, UserExport,
};
use inkling_domain::now_ms;
use inkling_replication::Cluster;

use crate::convert::{self, FromProfile, IntoProducts};
use crate::error::ApiError;
use crate::openapi::{BadId, KeyRefusals, RequestErrors, ServingErrors};
use crate::{ApiJson, ApiPath, ApiResult, checked_id};

/// Creates or replaces products; answered once they are searchable.
#[utoipa::path(
    put, path = "/v1/products", tag = "catalog", request_body = ProductBatch,
    responses((status = 200, body = UpsertAnswer), RequestErrors, KeyRefusals, ServingErrors),
    security(("api_key" = []))
)]
pub(crate) async fn upsert_products(
    State(cluster): State<Arc<Cluster>>,
    ApiJson(batch): ApiJson<ProductBatch>,
) -> ApiResult<UpsertAnswer> {
    let products = batch.into_products().map_err(ApiError::invalid)?;
    let upserted = cluster.upsert_products(products).await?;
    Ok(Json(UpsertAnswer { upserted }))
}

/// Deletes a product from the catalog and its index.
#[utoipa::path(
    delete, path = "/v1/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "The product's id")),
    responses(
        (status = 200, body = DeleteAnswer),
        (status = 404, description = "`not_found`: no product with the id", body = inkling_api::ErrorAnswer),
        BadId, KeyRefusals, ServingErrors
    ),
    security(("api_key" = []))
)]
pub(crate) async fn delete_product(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<DeleteAnswer> {
    checked_id("id", &id)?;
    if !cluster.delete_product(id.clone()).await? {
        return Err(ApiError::not_found(format!("no product with id {id:?}")));
    }
    Ok(Json(DeleteAnswer { deleted: id }))
}

/// Everything stored about the user, read on their partition's leader: the profile (as
/// shown and as stored), the events the replicated log still holds, and whether a session
/// is live.
#[utoipa::path(
    get, path = "/v1/users/{id}/export", tag = "catalog",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, body = UserExport),
        BadId, KeyRefusals, ServingErrors
    ),
    security(("api_key" = []))
)]
pub(crate) async fn export_user(
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
#[utoipa::path(
    delete, path = "/v1/users/{id}", tag = "catalog",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, body = ErasedAnswer),
        BadId, KeyRefusals, ServingErrors
    ),
    security(("api_key" = []))
)]
pub(crate) async fn erase_user(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<ErasedAnswer> {
    checked_id("user_id", &user_id)?;
    cluster.erase_user(user_id.clone()).await?;
    Ok(Json(ErasedAnswer { erased: user_id }))
}
