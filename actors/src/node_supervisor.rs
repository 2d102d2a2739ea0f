//! The node supervisor: the root of every long-lived actor of a node (index shards, the
//! ranker, the online signals, the catalog writer, the model pool, the session supervisor).
//!
//! Each child is started from a [`ChildSpec`] that knows how to build its arguments afresh,
//! so a restart reopens state from disk (a shard's tantivy index), rebuilds it from the
//! source of truth (the catalog writer's vocabulary) or starts empty where the state is
//! relearned from traffic (the online signals). The new incarnation's reference goes into
//! the child's [`ActorSlot`], where every caller finds it.
//!
//! A child that fails more than [`RestartBudget::max_restarts`] times within
//! [`RestartBudget::window`] is left down (its slot answers "unavailable") rather than
//! restarted in a hot loop; a start that fails (a shard whose old writer still holds its
//! lock for a moment) is retried with backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use ractor_cluster::RactorMessage;

use crate::ActorError;
use crate::slot::ActorSlot;

/// How often a child may fail before it is left down.
#[derive(Debug, Clone, Copy)]
pub struct RestartBudget {
    pub max_restarts: usize,
    pub window: Duration,
}

impl Default for RestartBudget {
    fn default() -> Self {
        Self {
            max_restarts: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// First retry of a failed start; each further retry waits twice as long, up to the cap.
const FIRST_RETRY: Duration = Duration::from_millis(20);
const MAX_RETRY: Duration = Duration::from_secs(2);

type Arguments<A> =
    Arc<dyn Fn() -> BoxFuture<'static, Result<<A as Actor>::Arguments, ActorError>> + Send + Sync>;

/// How to start one supervised actor, as often as needed.
pub struct ChildSpec<A: Actor> {
    /// The kind, for metrics and logs (`index_shard`, `ranker`, ...).
    pub kind: &'static str,
    pub slot: ActorSlot<A::Msg>,
    pub handler: A,
    /// Builds the arguments of a new incarnation.
    pub arguments: Arguments<A>,
    /// Runs after each restart (not the first start): a shard's restart triggers its
    /// reconciliation with the catalog, for instance.
    pub after_restart: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// A [`ChildSpec`] with its actor type erased, so one supervisor holds children of any kind.
pub trait Supervised: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    fn name(&self) -> &str;
    /// Starts a new incarnation linked to `supervisor` and publishes it in the slot.
    fn start(&self, supervisor: ActorCell) -> BoxFuture<'static, Result<ActorCell, ActorError>>;
    /// The incarnation is gone: callers get "unavailable" until the next one is up.
    fn went_down(&self);
    fn restarted(&self);
}

impl<A: Actor + Clone> Supervised for ChildSpec<A> {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn name(&self) -> &str {
        self.slot.name()
    }

    fn start(&self, supervisor: ActorCell) -> BoxFuture<'static, Result<ActorCell, ActorError>> {
        let arguments = (self.arguments)();
        let handler = self.handler.clone();
        let slot = self.slot.clone();
        Box::pin(async move {
            let arguments = arguments.await?;
            let (actor, _) = Actor::spawn_linked(None, handler, arguments, supervisor)
                .await
                .map_err(|error| {
                    ActorError::Unavailable(format!("could not start {}: {error}", slot.name()))
                })?;
            let cell = actor.get_cell();
            slot.put(actor);
            Ok(cell)
        })
    }

    fn went_down(&self) {
        self.slot.clear();
    }

    fn restarted(&self) {
        if let Some(hook) = &self.after_restart {
            hook();
        }
    }
}

#[derive(RactorMessage)]
pub enum NodeSupervisorMsg {
    /// Starts a child and supervises it from then on; answers once it runs.
    Start(Box<dyn Supervised>, RpcReplyPort<Result<(), ActorError>>),
    /// Tries again to start a child that is down.
    Restart(usize),
    /// Stops every child, the last started first, and waits for each; nothing restarts
    /// after this.
    StopChildren(Duration, RpcReplyPort<()>),
}

pub struct NodeSupervisor;

struct Child {
    spec: Box<dyn Supervised>,
    running: Option<ActorCell>,
    /// When recent restarts happened, for the budget.
    restarts: VecDeque<Instant>,
    /// Failed start attempts in a row, for the backoff.
    failed_starts: u32,
}

pub struct NodeSupervisorState {
    budget: RestartBudget,
    children: Vec<Child>,
    by_actor: HashMap<ActorId, usize>,
    stopping: bool,
}

impl Actor for NodeSupervisor {
    type Msg = NodeSupervisorMsg;
    type State = NodeSupervisorState;
    type Arguments = RestartBudget;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        budget: RestartBudget,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(NodeSupervisorState {
            budget,
            children: Vec::new(),
            by_actor: HashMap::new(),
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NodeSupervisorMsg::Start(spec, reply) => {
                let started = spec.start(myself.get_cell()).await;
                let index = state.children.len();
                let running = started.as_ref().ok().cloned();
                if let Some(cell) = &running {
                    state.by_actor.insert(cell.get_id(), index);
                }
                state.children.push(Child {
                    spec,
                    running,
                    restarts: VecDeque::new(),
                    failed_starts: 0,
                });
                let _ = reply.send(started.map(|_| ()));
            }
            NodeSupervisorMsg::Restart(index) => state.restart(&myself, index).await,
            NodeSupervisorMsg::StopChildren(timeout, reply) => {
                state.stopping = true;
                for child in state.children.iter_mut().rev() {
                    if let Some(cell) = child.running.take() {
                        let _ = cell.stop_and_wait(None, Some(timeout)).await;
                    }
                    child.spec.went_down();
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((child, failure)) = ended_child(event) {
            state.child_ended(&myself, child, failure);
        }
        Ok(())
    }
}

/// The child a supervision event reports gone (failed or stopped), with the failure or
/// stop reason; `None` for events about children still running.
pub(crate) fn ended_child(event: SupervisionEvent) -> Option<(ActorId, Option<String>)> {
    match event {
        SupervisionEvent::ActorFailed(cell, error) => {
            Some((cell.get_id(), Some(error.to_string())))
        }
        SupervisionEvent::ActorTerminated(cell, _, reason) => Some((cell.get_id(), reason)),
        _ => None,
    }
}

impl NodeSupervisorState {
    fn child_ended(
        &mut self,
        myself: &ActorRef<NodeSupervisorMsg>,
        actor: ActorId,
        failure: Option<String>,
    ) {
        let Some(index) = self.by_actor.remove(&actor) else {
            return;
        };
        let child = &mut self.children[index];
        child.running = None;
        child.spec.went_down();
        if self.stopping {
            return;
        }
        let kind = child.spec.kind();
        let failure = failure.as_deref().unwrap_or("stopped");
        let now = Instant::now();
        while child
            .restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.budget.window)
        {
            child.restarts.pop_front();
        }
        if child.restarts.len() >= self.budget.max_restarts {
            tracing::error!(
                actor = child.spec.name(),
                failure,
                "restart budget exhausted: leaving the actor down"
            );
            inkling_ops::metrics::ACTOR_GIVE_UPS
                .with_label_values(&[kind])
                .inc();
            return;
        }
        child.restarts.push_back(now);
        tracing::warn!(actor = child.spec.name(), failure, "restarting actor");
        let _ = myself.send_message(NodeSupervisorMsg::Restart(index));
    }

    async fn restart(&mut self, myself: &ActorRef<NodeSupervisorMsg>, index: usize) {
        if self.stopping {
            return;
        }
        let child = &mut self.children[index];
        if child.running.is_some() {
            return;
        }
        match child.spec.start(myself.get_cell()).await {
            Ok(cell) => {
                child.failed_starts = 0;
                self.by_actor.insert(cell.get_id(), index);
                child.running = Some(cell);
                inkling_ops::metrics::ACTOR_RESTARTS
                    .with_label_values(&[child.spec.kind()])
                    .inc();
                child.spec.restarted();
            }
            Err(error) => {
                let delay = FIRST_RETRY
                    .saturating_mul(1 << child.failed_starts.min(10))
                    .min(MAX_RETRY);
                child.failed_starts += 1;
                tracing::warn!(actor = child.spec.name(), %error, ?delay, "restart failed; retrying");
                myself.send_after(delay, move || NodeSupervisorMsg::Restart(index));
            }
        }
    }
}

/// Starts `spec` under `supervisor` and waits until its first incarnation runs.
pub async fn supervise<A: Actor + Clone>(
    supervisor: &ActorRef<NodeSupervisorMsg>,
    spec: ChildSpec<A>,
    timeout: Duration,
) -> Result<ActorSlot<A::Msg>, ActorError> {
    let slot = spec.slot.clone();
    let name = slot.name().to_string();
    crate::ask(
        supervisor,
        |reply| NodeSupervisorMsg::Start(Box::new(spec), reply),
        timeout,
        &format!("node supervisor starting {name}"),
    )
    .await??;
    Ok(slot)
}
