//! The session supervisor: routes each shopper's requests to their session actor, starting
//! it on first use, restarting it when it fails, and passivating it when idle or when the
//! node holds as many live sessions as it may.
//!
//! Passivation drains the old actor before a new one may load the profile, so two actors
//! never hold the same shopper's profile at once: requests that arrive meanwhile wait here.
//! A session's profile is the stored one (committed events are written before a session
//! hears of them), so passivating it loses nothing but the conversation in progress.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inkling_domain::Profile;
use lru::LruCache;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::RactorMessage;

use crate::node_supervisor::ended_child;
use crate::protocol::{RankedList, RecommendRequest, SearchRequest};
use crate::session::{SessionActor, SessionContext, SessionMsg};
use crate::{ActorError, fail_point};

/// Local to its node: the cluster layer reaches sessions through the gateway of the node
/// that leads the user's partition.
#[derive(RactorMessage)]
pub enum SupervisorMsg {
    Search(SearchRequest, RpcReplyPort<Result<RankedList, ActorError>>),
    Recommend(
        RecommendRequest,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
    GetProfile(String, RpcReplyPort<Profile>),
    ActiveSessions(RpcReplyPort<u64>),
    /// The users with a live session on this node.
    ActiveUsers(RpcReplyPort<Vec<String>>),
    /// Committed events changed this profile: the user's live session, if any, takes it.
    /// A user without a session gets none started.
    ProfileChanged(Box<Profile>),
    /// Stops the user's session (the user was erased).
    StopSession(String),
    /// Stops the sessions of users `owned_here` no longer accepts (this node stopped
    /// leading their partition), so no two nodes hold an active session for one user.
    StopSessionsWhere(SessionFilter),
    /// Timer tick: passivate sessions idle for longer than the idle timeout.
    PassivateIdle,
}

/// Which users' sessions to stop.
#[derive(Clone)]
pub struct SessionFilter(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

#[derive(Clone)]
pub struct SessionSupervisor;

#[derive(Clone)]
pub struct SupervisorArgs {
    pub context: Arc<SessionContext>,
    pub idle_timeout: Duration,
    /// The most live sessions; starting one more passivates the least recently active.
    pub max_live_sessions: usize,
}

struct LiveSession {
    actor: ActorRef<SessionMsg>,
    last_active: Instant,
}

/// Why a session was passivated, as logs (and metrics) name it.
#[derive(Clone, Copy, Debug)]
enum Passivation {
    Idle,
    OverCap,
}

impl Passivation {
    fn as_str(self) -> &'static str {
        match self {
            Passivation::Idle => "idle",
            Passivation::OverCap => "over_cap",
        }
    }
}

pub struct SupervisorState {
    context: Arc<SessionContext>,
    idle_timeout: Duration,
    max_live: usize,
    /// Least recently active first: a request moves its user to the back, so both kinds of
    /// passivation take from the front and never scan the rest.
    live: LruCache<String, LiveSession>,
    user_of: HashMap<ActorId, String>,
    /// Users whose old actor is draining, with the requests that arrived meanwhile.
    draining: HashMap<String, Vec<SessionMsg>>,
}

impl Actor for SessionSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let tick = (args.idle_timeout / 2).max(Duration::from_millis(50));
        myself.send_interval(tick, || SupervisorMsg::PassivateIdle);
        Ok(SupervisorState {
            context: args.context,
            idle_timeout: args.idle_timeout,
            // `ActorConfig::check` refuses zero; a cap of one still serves every request.
            max_live: args.max_live_sessions.max(1),
            live: LruCache::unbounded(),
            user_of: HashMap::new(),
            draining: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        fail_point!("session-supervisor-handle");
        match message {
            SupervisorMsg::Search(request, reply) => {
                let user = request.user_id.clone();
                state
                    .route(&myself, user, SessionMsg::Search(request, reply))
                    .await
            }
            SupervisorMsg::Recommend(request, reply) => {
                let user = request.user_id.clone();
                state
                    .route(&myself, user, SessionMsg::Recommend(request, reply))
                    .await
            }
            SupervisorMsg::GetProfile(user, reply) => {
                state
                    .route(&myself, user, SessionMsg::GetProfile(reply))
                    .await
            }
            SupervisorMsg::ActiveUsers(reply) => {
                let users = state.live.iter().map(|(user, _)| user.clone()).collect();
                let _ = reply.send(users);
            }
            SupervisorMsg::ActiveSessions(reply) => {
                let _ = reply.send(state.live.len() as u64);
            }
            SupervisorMsg::ProfileChanged(profile) => state.deliver(profile),
            SupervisorMsg::StopSession(user) => state.stop_where(|candidate| candidate == user),
            SupervisorMsg::StopSessionsWhere(filter) => state.stop_where(|user| filter.0(user)),
            SupervisorMsg::PassivateIdle => state.passivate_idle(),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((session, failure)) = ended_child(event) {
            state.on_session_ended(&myself, session, failure).await;
        }
        Ok(())
    }
}

impl SupervisorState {
    async fn route(&mut self, myself: &ActorRef<SupervisorMsg>, user: String, message: SessionMsg) {
        if let Some(waiting) = self.draining.get_mut(&user) {
            waiting.push(message);
            return;
        }
        let mut message = message;
        // Two tries: the live actor may have died a moment ago, before we heard of it.
        for _ in 0..2 {
            let actor = match self.live.get_mut(&user) {
                Some(session) => {
                    session.last_active = Instant::now();
                    session.actor.clone()
                }
                None => match self.spawn(myself, &user).await {
                    Some(actor) => actor,
                    None => return,
                },
            };
            match actor.send_message(message) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(returned)) => {
                    self.forget(&actor.get_id());
                    message = returned;
                }
                Err(_) => return,
            }
        }
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        user: &str,
    ) -> Option<ActorRef<SessionMsg>> {
        self.make_room();
        let args = (user.to_string(), self.context.clone());
        let name = format!("session/{user}");
        match Actor::spawn_linked(Some(name), SessionActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.user_of.insert(actor.get_id(), user.to_string());
                self.live.put(
                    user.to_string(),
                    LiveSession {
                        actor: actor.clone(),
                        last_active: Instant::now(),
                    },
                );
                inkling_ops::metrics::ACTIVE_SESSIONS.set(self.live.len() as i64);
                Some(actor)
            }
            Err(error) => {
                // The request's reply port is dropped, so its caller gets a clear error.
                tracing::error!(%error, user, "could not start session");
                None
            }
        }
    }

    /// Hands a committed profile to the user's live session; the next session to start
    /// loads it from storage anyway.
    fn deliver(&mut self, profile: Box<Profile>) {
        // A peek: committed events are not a request, so they leave the recency alone.
        if let Some(session) = self.live.peek(&profile.user_id) {
            let _ = session.actor.cast(SessionMsg::ProfileChanged(profile));
        }
    }

    /// Stops matching sessions at once; their queued requests are dropped, so callers get an
    /// error and retry where the user now lives.
    fn stop_where(&mut self, matches: impl Fn(&str) -> bool) {
        let stopping: Vec<String> = self
            .live
            .iter()
            .map(|(user, _)| user)
            .filter(|user| matches(user))
            .cloned()
            .collect();
        for user in stopping {
            if let Some(session) = self.live.pop(&user) {
                session.actor.stop(Some("no longer owned here".to_string()));
            }
        }
        inkling_ops::metrics::ACTIVE_SESSIONS.set(self.live.len() as i64);
    }

    /// Passivates from the least recently active end while sessions there are idle: the
    /// first one that is not ends the sweep, since everyone behind it was active later.
    fn passivate_idle(&mut self) {
        while self
            .live
            .peek_lru()
            .is_some_and(|(_, session)| session.last_active.elapsed() >= self.idle_timeout)
        {
            let Some((user, session)) = self.live.pop_lru() else {
                break;
            };
            self.passivate(user, session, Passivation::Idle);
        }
        inkling_ops::metrics::ACTIVE_SESSIONS.set(self.live.len() as i64);
    }

    /// Before a session starts: passivates the least recently active sessions until one
    /// more fits under the cap. One at a time, in constant time each, so a flood of new
    /// users costs each of them one passivation and nothing else.
    fn make_room(&mut self) {
        while self.live.len() >= self.max_live {
            let Some((user, session)) = self.live.pop_lru() else {
                break;
            };
            self.passivate(user, session, Passivation::OverCap);
        }
        inkling_ops::metrics::ACTIVE_SESSIONS.set(self.live.len() as i64);
    }

    /// Drain, not stop: requests already in the mailbox are still answered, and requests
    /// that arrive before the actor is gone wait for a fresh one.
    fn passivate(&mut self, user: String, session: LiveSession, reason: Passivation) {
        // No user id: logs outlive an erasure.
        tracing::debug!(reason = reason.as_str(), "passivating session");
        if session.actor.drain().is_ok() {
            self.draining.insert(user, Vec::new());
        }
    }

    /// Forgets a session actor that ended; returns its user if we still tracked it.
    fn forget(&mut self, actor: &ActorId) -> Option<String> {
        let user = self.user_of.remove(actor)?;
        if self
            .live
            .peek(&user)
            .is_some_and(|session| session.actor.get_id() == *actor)
        {
            self.live.pop(&user);
        }
        inkling_ops::metrics::ACTIVE_SESSIONS.set(self.live.len() as i64);
        Some(user)
    }

    async fn on_session_ended(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        actor: ActorId,
        failure: Option<String>,
    ) {
        let was_live = self.user_of.get(&actor).is_some_and(|user| {
            self.live
                .peek(user)
                .is_some_and(|session| session.actor.get_id() == actor)
        });
        let Some(user) = self.forget(&actor) else {
            return;
        };
        if let Some(waiting) = self.draining.remove(&user) {
            for message in waiting {
                self.route(myself, user.clone(), message).await;
            }
            return;
        }
        if !was_live {
            return;
        }
        // A live session ended without being asked to: restart it so the shopper's next
        // request finds a warm actor with the last durable profile.
        tracing::warn!(
            user,
            failure = failure.as_deref().unwrap_or("stopped"),
            "restarting session"
        );
        inkling_ops::metrics::ACTOR_RESTARTS
            .with_label_values(&["session"])
            .inc();
        self.spawn(myself, &user).await;
    }
}
