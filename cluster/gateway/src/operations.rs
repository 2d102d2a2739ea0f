//! What operators and load balancers call: liveness (`/healthz`), readiness (`/readyz`),
//! the Prometheus scrape, and the admin routes that replace the old `/internal` ones on the
//! public port (the cluster's status, drain, and one replica's stored profile).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use inkling_actors::ActorError;
use inkling_api::{AdmittedAnswer, ErrorAnswer, HealthView};
use inkling_domain::Profile;
use inkling_replication::{CATALOG_GROUP, Cluster, ClusterStatus, PARTITIONS};

use crate::convert;
use crate::error::ApiError;
use crate::openapi::{BadId, KeyRefusals, ServingErrors};
use crate::{ApiPath, ApiResult, checked_id};

/// How long readiness waits for each group's leader: a leader this node knows of is found
/// at once, so this only bounds the answer when one is missing.
const LEADER_PROBE: Duration = Duration::from_millis(1);

/// Liveness: the node's actors answer.
#[utoipa::path(
    get, path = "/healthz", tag = "probes",
    responses((status = 200, body = HealthView), ServingErrors)
)]
pub async fn health(State(cluster): State<Arc<Cluster>>) -> ApiResult<HealthView> {
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

/// What `/readyz` answers when the node can serve.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
}

/// Readiness: every raft group (each user partition and the catalog) has a leader this
/// node knows of, so any request it takes can be routed, and every index shard has a copy
/// serving reads, so no search answers without part of the catalog. 503 `not_ready` names
/// the first group or shard missing.
#[utoipa::path(
    get, path = "/readyz", tag = "probes",
    responses((status = 200, body = Readiness), ServingErrors)
)]
pub async fn ready(State(cluster): State<Arc<Cluster>>) -> ApiResult<Readiness> {
    if let Some(shard) = cluster.unserved_index_shards().first() {
        return Err(ApiError::not_ready(format!(
            "index shard {shard} has no copy serving reads that this node knows of yet"
        )));
    }
    for group in (0..PARTITIONS).chain([CATALOG_GROUP]) {
        if cluster.wait_for_leader(group, LEADER_PROBE).await.is_err() {
            let name = if group == CATALOG_GROUP {
                "the catalog group".to_string()
            } else {
                format!("user partition {group}")
            };
            return Err(ApiError::not_ready(format!(
                "{name} has no leader this node knows of yet"
            )));
        }
    }
    Ok(Json(Readiness { status: "ready" }))
}

/// The Prometheus text exposition.
#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses((status = 200, body = String, content_type = "text/plain"), KeyRefusals, ServingErrors),
    security(("api_key" = []))
)]
pub async fn metrics(State(cluster): State<Arc<Cluster>>) -> String {
    cluster.publish_scrape_gauges();
    inkling_ops::metrics::render()
}

/// The cluster as this node sees it: members, partitions and their leaders.
#[utoipa::path(
    get, path = "/v1/admin/status", tag = "operations",
    responses((status = 200, body = Object, description = "The cluster status"), KeyRefusals),
    security(("api_key" = []))
)]
pub async fn status(State(cluster): State<Arc<Cluster>>) -> Json<ClusterStatus> {
    Json(cluster.status().await)
}

/// Starts draining this node: leaders move its replicas away, and it exits once it holds
/// none. Answers the status as it is when the drain starts.
#[utoipa::path(
    post, path = "/v1/admin/drain", tag = "operations",
    responses((status = 200, body = Object, description = "The cluster status as the drain starts"), KeyRefusals),
    security(("api_key" = []))
)]
pub async fn drain(State(cluster): State<Arc<Cluster>>) -> Json<ClusterStatus> {
    cluster.drain().await;
    Json(cluster.status().await)
}

/// What this node's own replica stores for the user, without routing: for operators and
/// tests checking that every replica agrees (an erased user is gone from each).
#[utoipa::path(
    get, path = "/v1/admin/replicas/users/{id}", tag = "operations",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, body = Object, description = "`{\"Ok\": profile or null}` or `{\"Err\": error}`"),
        BadId, KeyRefusals
    ),
    security(("api_key" = []))
)]
pub(crate) async fn stored_profile(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(user_id): ApiPath<String>,
) -> ApiResult<Result<Option<Profile>, ActorError>> {
    checked_id("user_id", &user_id)?;
    Ok(Json(cluster.stored_profile(&user_id)))
}

/// Admits a node by name: from now on the leaders may place replicas on it.
#[utoipa::path(
    post, path = "/v1/admin/members/{name}/admit", tag = "operations",
    params(("name" = String, Path, description = "The node's name")),
    responses(
        (status = 200, body = AdmittedAnswer),
        (status = 400, description = "`invalid_request`: not a node name", body = ErrorAnswer),
        (status = 503, description = "`unavailable`: the admission was not recorded", body = ErrorAnswer),
        KeyRefusals
    ),
    security(("api_key" = []))
)]
pub(crate) async fn admit(
    State(cluster): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<AdmittedAnswer> {
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
