//! The HTTP routes nodes call on each other: raft messages, which get connections of their
//! own rather than the actor mesh (see `mesh`), and what `inkling status` and
//! `inkling drain` call. Shopper requests and proposals travel over the mesh instead.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use inkling_actors::ActorError;
use inkling_domain::Profile;

use crate::partition::PartitionId;
use crate::raft_types::{NodeId, PartitionRaft, Raft};
use crate::routing::Cluster;
use crate::status::ClusterStatus;

type Shared = State<Arc<Cluster>>;

pub fn router(cluster: Arc<Cluster>) -> axum::Router {
    axum::Router::new()
        .route("/internal/raft/{partition}/append", post(append))
        .route("/internal/raft/{partition}/vote", post(vote))
        .route("/internal/raft/{partition}/snapshot", post(snapshot))
        .route("/internal/status", get(status))
        .route("/internal/drain", post(drain))
        .route("/internal/replica/users/{id}", get(stored_profile))
        .with_state(cluster)
}

/// A raft message for a group number that does not exist: a 404, so the sender's network
/// layer reports it as a failed call rather than as an answer from raft.
struct NoSuchGroup(PartitionId);

impl IntoResponse for NoSuchGroup {
    fn into_response(self) -> Response {
        let message = format!("no raft group {}", self.0);
        (StatusCode::NOT_FOUND, message).into_response()
    }
}

fn raft_of(cluster: &Cluster, group: PartitionId) -> Result<&Raft, NoSuchGroup> {
    cluster.raft(group).ok_or(NoSuchGroup(group))
}

type RaftAnswer<T, E = openraft::error::Infallible> =
    Result<Json<Result<T, RaftError<NodeId, E>>>, NoSuchGroup>;

async fn append(
    State(cluster): Shared,
    Path(group): Path<PartitionId>,
    Json(request): Json<AppendEntriesRequest<PartitionRaft>>,
) -> RaftAnswer<AppendEntriesResponse<NodeId>> {
    Ok(Json(
        raft_of(&cluster, group)?.append_entries(request).await,
    ))
}

async fn vote(
    State(cluster): Shared,
    Path(group): Path<PartitionId>,
    Json(request): Json<VoteRequest<NodeId>>,
) -> RaftAnswer<VoteResponse<NodeId>> {
    Ok(Json(raft_of(&cluster, group)?.vote(request).await))
}

async fn snapshot(
    State(cluster): Shared,
    Path(group): Path<PartitionId>,
    Json(request): Json<InstallSnapshotRequest<PartitionRaft>>,
) -> RaftAnswer<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
    Ok(Json(
        raft_of(&cluster, group)?.install_snapshot(request).await,
    ))
}

async fn status(State(cluster): Shared) -> Json<ClusterStatus> {
    Json(cluster.status().await)
}

/// What this node's own replica stores for the user, without routing: for operators and
/// tests checking that every replica agrees (an erased user is gone from each).
async fn stored_profile(
    State(cluster): Shared,
    Path(user_id): Path<String>,
) -> Json<Result<Option<Profile>, ActorError>> {
    Json(cluster.replicas.stored_profile(&user_id))
}

/// Starts draining this node: leaders move its replicas away, and it exits once it holds
/// none.
async fn drain(State(cluster): Shared) -> Json<ClusterStatus> {
    cluster.drain().await;
    Json(cluster.status().await)
}
