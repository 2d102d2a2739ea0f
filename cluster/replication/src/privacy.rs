//! What the cluster stores about one user, gathered for an export.
//!
//! A user's durable data lives on the voters of their partition, and the leader's copy is
//! the reference: the stored profile (what every event was folded into) and the events the
//! partition's raft log still holds. The log is compacted into a snapshot every 10,000
//! entries of the partition; events before that survive only as what the profile made of
//! them, and the export says so (`events_complete`). Conversational context (the dialogue
//! state of a live session) is never stored; the export says whether a session is live.
//! The shared online signals hold nothing that names the user (see
//! `inkling_actors::signals::session_key`), so they are not part of it.

use inkling_actors::ActorError;

use crate::log_store::logged_events;
use crate::partition::partition_of;
use crate::replicas::LocalReplicas;
use crate::request::UserRecords;

impl LocalReplicas {
    /// What this node's replica stores about the user: the part of an export the leader of
    /// the user's partition answers (`Cluster::export_user` routes it there).
    pub(crate) async fn user_records(&self, user_id: &str) -> Result<UserRecords, ActorError> {
        let partition = partition_of(user_id);
        let profile = self.stored_profile(user_id)?;
        let engine = self.actors().engine();
        let (events, events_complete) = logged_events(&engine, partition, user_id)
            .map_err(|error| ActorError::Storage(error.to_string()))?;
        let active_session = self
            .active_users()
            .await?
            .iter()
            .any(|user| user == user_id);
        Ok(UserRecords {
            user_id: user_id.to_string(),
            partition,
            profile,
            events,
            events_complete,
            active_session,
        })
    }
}
