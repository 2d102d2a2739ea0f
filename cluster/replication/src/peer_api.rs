//! The peer plane's HTTP routes, on a listener of their own that clients never reach:
//! raft messages (which get connections of their own rather than the actor mesh, see
//! `mesh`) and the status that rebalancing asks peers for.
//!
//! Every request must carry a proof of the cluster secret made by a current member (see
//! [`inkling_auth::peer`]); anything else is refused before it reaches raft, so it
//! changes nothing. Operators use the public API's admin routes instead.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use inkling_auth::PeerSigner;
use inkling_auth::peer::HEADERS;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::partition::PartitionId;
use crate::raft_types::{NodeId, PartitionRaft, Raft};
use crate::routing::Cluster;
use crate::status::{ClusterStatus, STATUS_PATH};
use crate::tls::certificate_names;

/// The largest peer request: a snapshot chunk or a page of log entries. Raft is set to
/// send at most [`crate::bootstrap::SNAPSHOT_CHUNK_BYTES`] of snapshot per request (a
/// JSON array of bytes takes up to four characters a byte: 32 MiB) and at most
/// [`crate::bootstrap::ENTRIES_PER_APPEND`] entries, each holding at most one API batch
/// (32 MiB of JSON, a little more once escaped again): 64 × 40 MiB. The bound is that
/// large because openraft pages by entries, not bytes; typical pages are kilobytes. Only
/// a request whose proof already checked out is read at all.
pub const PEER_MAX_BODY_BYTES: usize = 64 * (40 << 20);

type Shared = State<Arc<Cluster>>;

/// The client certificate of the TLS connection a request came over, which the server
/// puts in each request's extensions.
#[derive(Clone)]
pub struct PeerCertificate(pub CertificateDer<'static>);

/// The peer plane. `verifier` checks proofs; it holds the cluster secret. With
/// `require_certificate` (the plane under mutual TLS), a request signed as a node must also
/// come with a client certificate naming that node.
pub fn router(
    cluster: Arc<Cluster>,
    verifier: PeerSigner,
    require_certificate: bool,
) -> axum::Router {
    let guard = Arc::new(PeerGuard {
        cluster: cluster.clone(),
        verifier,
        require_certificate,
    });
    axum::Router::new()
        .route("/peer/raft/{partition}/append", post(append))
        .route("/peer/raft/{partition}/vote", post(vote))
        .route("/peer/raft/{partition}/snapshot", post(snapshot))
        .route(STATUS_PATH, get(status))
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, "not_found", "no such peer route") })
        .layer(middleware::from_fn_with_state(guard, check_proof))
        .layer(DefaultBodyLimit::max(PEER_MAX_BODY_BYTES))
        .with_state(cluster)
}

struct PeerGuard {
    cluster: Arc<Cluster>,
    verifier: PeerSigner,
    require_certificate: bool,
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, Json(body)).into_response()
}

/// Lets a request through only with a valid proof from a current member: 401 without a
/// valid proof, 403 from a name the cluster does not count as a member. The proof is
/// checked before the body is read, so a stranger cannot make the node buffer a byte.
async fn check_proof(
    State(guard): State<Arc<PeerGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = HEADERS.map(|name| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    });
    let verified = guard.verifier.verify(
        parts.method.as_str(),
        parts.uri.path(),
        headers,
        inkling_domain::now_ms(),
    );
    let proof = match verified {
        Ok(proof) => proof,
        Err(error) => return refuse_proof(parts.uri.path(), &error.to_string()),
    };
    if guard.require_certificate && !certified(&parts.extensions, &proof.node) {
        inkling_ops::metrics::PEER_REFUSALS
            .with_label_values(&["member"])
            .inc();
        tracing::warn!(node = %proof.node, "peer request whose certificate names another node refused");
        let message = format!("the client certificate does not name {}", proof.node);
        return refusal(StatusCode::FORBIDDEN, "not_a_member", &message);
    }
    if !guard.cluster.counts_as_member(&proof.node).await {
        inkling_ops::metrics::PEER_REFUSALS
            .with_label_values(&["member"])
            .inc();
        tracing::warn!(node = %proof.node, path = parts.uri.path(), "peer request from a non-member refused");
        let message = format!("{} is not a member of this cluster", proof.node);
        return refusal(StatusCode::FORBIDDEN, "not_a_member", &message);
    }
    let Ok(body) = to_bytes(body, PEER_MAX_BODY_BYTES).await else {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "a peer request may not exceed the peer plane's body limit",
        );
    };
    if !proof.matches_body(&body) {
        return refuse_proof(
            parts.uri.path(),
            "the body is not the one the proof was made for",
        );
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Whether the request came with a client certificate naming `node`.
fn certified(extensions: &axum::http::Extensions, node: &str) -> bool {
    extensions
        .get::<PeerCertificate>()
        .is_some_and(|certificate| certificate_names(&certificate.0, node))
}

fn refuse_proof(path: &str, reason: &str) -> Response {
    inkling_ops::metrics::PEER_REFUSALS
        .with_label_values(&["proof"])
        .inc();
    tracing::warn!(path, reason, "peer request refused");
    refusal(StatusCode::UNAUTHORIZED, "unauthenticated", reason)
}

/// A raft message for a group number that does not exist: a 404, so the sender's network
/// layer reports it as a failed call rather than as an answer from raft.
struct NoSuchGroup(PartitionId);

impl IntoResponse for NoSuchGroup {
    fn into_response(self) -> Response {
        let message = format!("no raft group {}", self.0);
        refusal(StatusCode::NOT_FOUND, "no_such_group", &message)
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
