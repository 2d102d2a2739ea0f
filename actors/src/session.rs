//! The session actor: one per active shopper. It owns the shopper's profile while active,
//! loading it from storage when it starts and writing it back on every event.

use std::sync::Arc;

use inkling_domain::{Event, EventKind, Product, Profile, ProfileConfig, now_ms};
use inkling_models::intent::DialogueState;
use inkling_models::segments::{Segments, profile_vector};
use inkling_storage::{CatalogStore, ProfileStore};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::protocol::{RankedList, RecommendRequest, SearchRequest};
use crate::ranker::RankerMsg;
use crate::signals::{Observation, SignalsMsg, session_key};
use crate::slot::ActorSlot;
use crate::understanding::{IntentService, ReadQuery};
use crate::{ActorError, fail_point};

#[derive(RactorClusterMessage)]
pub enum SessionMsg {
    /// Applies events to the profile and stores it; answers with the profile's event count.
    /// The write is durable only after the caller's group commit.
    #[rpc]
    RecordEvents(Vec<Event>, RpcReplyPort<Result<u64, ActorError>>),
    /// Understands the query in the context of the dialogue so far, then searches; the
    /// ranker answers the caller directly.
    #[rpc]
    Search(SearchRequest, RpcReplyPort<Result<RankedList, ActorError>>),
    /// Recommends for this shopper; the ranker answers the caller directly.
    #[rpc]
    Recommend(
        RecommendRequest,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
    #[rpc]
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
    /// Moved into a blocking task while events are applied and stored, and back after.
    profile: Profile,
    context: Arc<SessionContext>,
    /// The conversation in progress, and the client session it belongs to: a new
    /// `session_id` starts a new conversation.
    dialogue: DialogueState,
    dialogue_session: Option<String>,
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
            SessionMsg::RecordEvents(events, reply) => {
                let _ = reply.send(state.record(&events));
            }
            SessionMsg::Search(request, reply) => {
                state.remember_query(&request.query);
                match state.understand(&request).await {
                    Ok(read) => {
                        let profile = Box::new(state.profile.clone());
                        let understanding = Some(Box::new(read.understanding));
                        let search =
                            RankerMsg::Search(request, profile, understanding, read.vector, reply);
                        forward(&state.context.ranker, search);
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
                forward(
                    &state.context.ranker,
                    RankerMsg::Recommend(request, profile, stated, reply),
                );
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

    fn remember_query(&mut self, query: &str) {
        let config = self.context.profile_config;
        self.profile.remember_query(query, now_ms(), &config);
        // Queries are context, not acknowledged writes: a later sync makes them durable.
        if let Err(error) = self.context.profiles.save(&self.profile) {
            tracing::warn!(%error, user = %self.profile.user_id, "could not store query");
        }
    }
}

impl SessionState {
    /// Applies and stores the events in the actor's own task, unlike the other storage work
    /// of a node: a profile write is an in-memory sled insert (its disk write happens in the
    /// group-commit thread), and a hop to a blocking thread per write cost two thirds of the
    /// event rate (docs/benchmarks.md).
    fn record(&mut self, events: &[Event]) -> Result<u64, ActorError> {
        let now = now_ms();
        let config = self.context.profile_config;
        let mut observations = Vec::new();
        for event in events {
            // A client retry of a batch whose answer was lost: acknowledged, not re-applied.
            if self.profile.has_applied(event) {
                continue;
            }
            let product = match &event.item_id {
                Some(item_id) => self.context.catalog.get(item_id)?,
                None => None,
            };
            if event.learn
                && let Some(item_id) = &event.item_id
            {
                observations.push(self.observation(event, item_id, product.as_ref(), now));
            }
            self.profile.apply(event, product.as_ref(), now, &config);
        }
        self.assign_segment(now);
        self.context.profiles.save(&self.profile)?;
        inkling_ops::metrics::EVENTS_INGESTED.inc_by(events.len() as u64);
        if !observations.is_empty() {
            // Shared signals learn in the background; the shopper does not wait for them.
            let _ = self.context.signals.cast(SignalsMsg::Observe(observations));
        }
        Ok(self.profile.event_count)
    }

    /// Places the shopper in the nearest segment of the last `inkling profile build`.
    fn assign_segment(&mut self, now: u64) {
        let Some(segments) = &self.context.segments else {
            return;
        };
        let half_life = self.context.profile_config.half_life_ms;
        if let Some(vector) = profile_vector(&self.profile, now, half_life) {
            self.profile.segment = segments.assign(&vector);
        }
    }

    /// The event as shared signals see it, with the item it followed in its session.
    fn observation(
        &self,
        event: &Event,
        item_id: &str,
        product: Option<&Product>,
        now: u64,
    ) -> Observation {
        Observation {
            session_key: session_key(&self.profile.user_id, event.session_id.as_deref()),
            item_id: item_id.to_string(),
            previous_item: self
                .profile
                .last_item_in(event.session_id.as_deref())
                .map(str::to_string),
            categories: product.map(|p| p.category_path.clone()).unwrap_or_default(),
            segment: self.profile.segment,
            basket: matches!(event.kind, EventKind::AddToCart | EventKind::Purchase)
                .then(|| self.profile.basket_in(event.session_id.as_deref())),
            weight: event.kind.interest_weight(),
            at_ms: event.timestamp.unwrap_or(now),
        }
    }
}
