//! The session actor: one per active shopper. It holds the shopper's profile while active,
//! loading it from storage when it starts; committed events reach it from the
//! [`crate::profile_writer::ProfileWriter`], and it keeps the conversation.

use std::sync::Arc;

use inkling_domain::{Profile, ProfileConfig, now_ms};
use inkling_models::intent::DialogueState;
use inkling_models::segments::Segments;
use inkling_storage::{CatalogStore, ProfileStore};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tracing::Instrument;

use crate::protocol::{RankedList, RecommendRequest, SearchMode, SearchRequest};
use crate::ranker::RankerMsg;
use crate::signals::SignalsMsg;
use crate::slot::ActorSlot;
use crate::understanding::{IntentService, ReadQuery};
use crate::{ActorError, fail_point};

#[derive(RactorMessage)]
pub enum SessionMsg {
    /// The profile after committed events were folded in by the [`ProfileWriter`]; the
    /// session keeps its own recent queries, which are context, not replicated writes.
    ///
    /// [`ProfileWriter`]: crate::profile_writer::ProfileWriter
    ProfileChanged(Box<Profile>),
    /// Understands the query in the context of the dialogue so far, then searches; the
    /// ranker answers the caller directly.
    Search(SearchRequest, RpcReplyPort<Result<RankedList, ActorError>>),
    /// Recommends for this shopper; the ranker answers the caller directly.
    Recommend(
        RecommendRequest,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
    GetProfile(RpcReplyPort<Profile>),
}

/// What every session on a node shares.
pub struct SessionContext {
    pub profiles: ProfileStore,
    pub catalog: CatalogStore,
    pub ranker: ActorSlot<RankerMsg>,
    pub intent: Arc<IntentService>,
    pub signals: ActorSlot<SignalsMsg>,
    pub profile_config: ProfileConfig,
    /// Segment centroids from the last `inkling profile build`, if any.
    pub segments: Option<Arc<Segments>>,
}

pub struct SessionActor;

pub struct SessionState {
    profile: Profile,
    context: Arc<SessionContext>,
    /// The conversation in progress, and the client session it belongs to: a new
    /// `session_id` starts a new conversation.
    dialogue: DialogueState,
    dialogue_session: Option<String>,
    /// The last search as read, so that its next page reuses the reading instead of
    /// taking the same words as a new turn of the conversation.
    last_search: Option<LastSearch>,
}

struct LastSearch {
    session_id: Option<String>,
    query: String,
    mode: SearchMode,
    read: ReadQuery,
}

impl LastSearch {
    /// Whether `request` asks for another page of this search.
    fn pages(&self, request: &SearchRequest) -> bool {
        request.offset > 0
            && self.session_id == request.session_id
            && self.query == request.query
            && self.mode == request.mode
    }
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = (String, Arc<SessionContext>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (user_id, context): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let profiles = context.profiles.clone();
        let profile = crate::storage_task(move || {
            profiles
                .load(&user_id)
                .map(|loaded| loaded.unwrap_or_else(|| Profile::new(user_id)))
        })
        .await??;
        Ok(SessionState {
            profile,
            context,
            dialogue: DialogueState::default(),
            dialogue_session: None,
            last_search: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        fail_point!("session-handle");
        match message {
            SessionMsg::ProfileChanged(profile) => state.replace_profile(*profile),
            SessionMsg::Search(mut request, reply) => {
                let span = inkling_ops::trace::stage("session.search");
                match state.read(&request).instrument(span.clone()).await {
                    Ok(read) => {
                        // A follow-up searches for its topic; its own words are constraints.
                        request.query.clone_from(&read.understanding.topic);
                        let profile = Box::new(state.profile.clone());
                        let understanding = Some(Box::new(read.understanding));
                        let search =
                            RankerMsg::Search(request, profile, understanding, read.vector, reply);
                        span.in_scope(|| forward(&state.context.ranker, search));
                    }
                    // Overload or a dead pool: say so rather than search half-blind.
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
            SessionMsg::Recommend(request, reply) => {
                // What the shopper said in this session's conversation still holds.
                let stated = (state.dialogue_session == request.session_id
                    && !state.dialogue.constraints.is_empty())
                .then(|| Box::new(state.dialogue.constraints.clone()));
                let profile = Box::new(state.profile.clone());
                let recommend = RankerMsg::Recommend(request, profile, stated, reply);
                inkling_ops::trace::stage("session.recommend")
                    .in_scope(|| forward(&state.context.ranker, recommend));
            }
            SessionMsg::GetProfile(reply) => {
                let _ = reply.send(state.profile.clone());
            }
        }
        Ok(())
    }
}

/// Hands a request on; the reply port travels with it, so the session never waits.
fn forward(ranker: &ActorSlot<RankerMsg>, message: RankerMsg) {
    if let Err(error) = ranker.cast(message) {
        // The reply port is dropped with the message, so the caller sees "dropped the request".
        tracing::warn!(%error, "ranker is not running");
    }
}

impl SessionState {
    /// Reads the query, or reuses the reading of the search this request pages through.
    async fn read(&mut self, request: &SearchRequest) -> Result<ReadQuery, ActorError> {
        if let Some(last) = self.last_search.as_ref().filter(|last| last.pages(request)) {
            return Ok(last.read.clone());
        }
        self.remember_query(&request.query);
        let read = self.understand(request).await?;
        self.last_search = Some(LastSearch {
            session_id: request.session_id.clone(),
            query: request.query.clone(),
            mode: request.mode,
            read: read.clone(),
        });
        Ok(read)
    }

    /// Reads the query in the context of the conversation; a new `session_id` starts a new
    /// conversation.
    async fn understand(&mut self, request: &SearchRequest) -> Result<ReadQuery, ActorError> {
        if self.dialogue_session != request.session_id {
            self.dialogue = DialogueState::default();
            self.dialogue_session = request.session_id.clone();
        }
        let intent = self.context.intent.clone();
        let use_model = request.mode.uses_vectors();
        intent
            .understand(&request.query, &mut self.dialogue, use_model)
            .await
    }

    /// Queries live in the session only: the stored profile changes through committed
    /// events alone, so a session never overwrites what the replicated log wrote.
    fn remember_query(&mut self, query: &str) {
        let config = self.context.profile_config;
        self.profile.remember_query(query, now_ms(), &config);
    }

    /// Takes the profile committed events produced, keeping this session's queries. Events
    /// are applied in log order, so an older profile never arrives after a newer one.
    fn replace_profile(&mut self, mut profile: Profile) {
        profile.recent_queries = std::mem::take(&mut self.profile.recent_queries);
        self.profile = profile;
    }
}
