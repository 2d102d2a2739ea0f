//! What operators and load balancers call: liveness (`/healthz`), readiness (`/readyz`),
//! the Prometheus scrape, and the admin routes that replace the old `/internal` ones on the
//! public port (the cluster's status, drain, and one replica's stored profile).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use inkling_actors::ActorError;
use inkling_api::HealthView;
use inkling_domain::Profile;
use inkling_replication::{CATALOG_GROUP, Cluster, ClusterStatus, PARTITIONS};

use crate::convert;
use crate::error::ApiError;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// How long readiness waits for each group's leader: a leader this node knows of is found
/// at once, so this only bounds the answer when one is missing.
const LEADER_PROBE: Duration = Duration::from_millis(1);

/// Liveness: the node's actors answer.
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
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    pub status: &'static str,
}

/// Readiness: every raft group (each user partition and the catalog) has a leader this
/// node knows of, so any request it takes can be routed, and every index shard has a copy
/// serving reads, so no search answers without part of the catalog. 503 `not_ready` names
/// the first group or shard missing.
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
pub async fn metrics(State(cluster): State<Arc<Cluster>>) -> String {
    cluster.publish_scrape_gauges();
    inkling_ops::metrics::render()
}

/// The cluster as this node sees it: members, partitions and their leaders.
pub async fn status(State(cluster): State<Arc<Cluster>>) -> Json<ClusterStatus> {
    Json(cluster.status().await)
}

/// Starts draining this node: leaders move its replicas away, and it exits once it holds
/// none. Answers the status as it is when the drain starts.
pub async fn drain(State(cluster): State<Arc<Cluster>>) -> Json<ClusterStatus> {
    cluster.drain().await;
    Json(cluster.status().await)
}

/// What this node's own replica stores for the user, without routing: for operators and
/// tests checking that every replica agrees (an erased user is gone from each).
pub async fn stored_profile(
    cluster: &Cluster,
    user_id: &str,
) -> Json<Result<Option<Profile>, ActorError>> {
    Json(cluster.stored_profile(user_id))
}
