//! What travels to a partition's leader and back: a shopper's call, its answer, and why one
//! attempt to reach the leader failed. The mesh carries these; the local replicas answer
//! them; routing retries on them.

use inkling_actors::{ActorError, RankedList, RecommendRequest, SearchRequest};
use inkling_domain::{Event, Profile};
use serde::{Deserialize, Serialize};

use crate::partition::PartitionId;

/// Why one attempt to reach a partition's leader failed.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum RouteError {
    #[error("not the leader of partition {partition}")]
    NotLeader {
        partition: PartitionId,
        hint: Option<String>,
    },
    #[error("could not reach {0}")]
    Unreachable(String),
    #[error(transparent)]
    Failed(ActorError),
}

impl RouteError {
    /// Whether another attempt, perhaps on another node, may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            RouteError::NotLeader { .. } | RouteError::Unreachable(_) => true,
            RouteError::Failed(error) => matches!(error, ActorError::Unavailable(_)),
        }
    }

    pub(crate) fn into_actor_error(self) -> ActorError {
        match self {
            RouteError::Failed(error) => error,
            other => ActorError::Unavailable(format!("no reachable leader: {other}")),
        }
    }
}

/// A shopper request served by the session on the partition's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UserCall {
    /// Searches and recommendations are boxed: each is several times the size of the others.
    Search(Box<SearchRequest>),
    Recommend(Box<RecommendRequest>),
    Profile(String),
    /// Everything stored about the user, for an export.
    Export(String),
}

impl UserCall {
    pub(crate) fn user_id(&self) -> &str {
        match self {
            UserCall::Search(request) => &request.user_id,
            UserCall::Recommend(request) => &request.user_id,
            UserCall::Profile(user_id) | UserCall::Export(user_id) => user_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UserAnswer {
    Ranked(Box<RankedList>),
    Profile(Box<Profile>),
    Export(Box<UserRecords>),
}

/// Everything the cluster stores about one user, as their partition's leader holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecords {
    pub user_id: String,
    pub partition: PartitionId,
    /// The stored profile: recent items and queries, affinities, price band, purchases,
    /// segment and the newest idempotency keys, all derived from the events.
    pub profile: Option<Profile>,
    /// The user's events that the partition's raft log still holds, oldest first.
    pub events: Vec<Event>,
    /// Whether `events` is every event the log ever held: false once a snapshot compacted
    /// older entries, which then survive only in the profile.
    pub events_complete: bool,
    /// Whether a live session on the leader holds conversational context for the user.
    pub active_session: bool,
}
