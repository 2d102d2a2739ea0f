//! [`ActorSlot`]: where callers find a supervised actor, whichever incarnation is running.
//!
//! A restarted actor is a new actor with a new reference. Everyone who talks to a supervised
//! actor holds its slot rather than a reference, and the supervisor swaps the reference in
//! the slot on every restart, so callers reach the new incarnation without being told.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use ractor::{ActorRef, Message, RpcReplyPort};

use crate::ActorError;

pub struct ActorSlot<M: Message> {
    /// What the actor is called in errors ("ranker", "index shard 2").
    name: Arc<str>,
    current: Arc<ArcSwapOption<ActorRef<M>>>,
}

impl<M: Message> Clone for ActorSlot<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            current: self.current.clone(),
        }
    }
}

impl<M: Message> ActorSlot<M> {
    /// An empty slot; requests fail as unavailable until an actor is placed in it.
    pub fn empty(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            current: Arc::new(ArcSwapOption::empty()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The running incarnation, or `Unavailable` while the actor is down or restarting.
    pub fn get(&self) -> Result<ActorRef<M>, ActorError> {
        self.current
            .load_full()
            .map(|actor| (*actor).clone())
            .ok_or_else(|| ActorError::Unavailable(format!("{} is restarting", self.name)))
    }

    pub fn put(&self, actor: ActorRef<M>) {
        self.current.store(Some(Arc::new(actor)));
    }

    pub fn clear(&self) {
        self.current.store(None);
    }

    /// [`crate::ask`] of the running incarnation.
    pub async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> M,
        timeout: Duration,
    ) -> Result<T, ActorError> {
        crate::ask(&self.get()?, build, timeout, &self.name).await
    }

    /// Sends without waiting for an answer; lost while the actor restarts.
    pub fn cast(&self, message: M) -> Result<(), ActorError> {
        self.get()?
            .cast(message)
            .map_err(|error| ActorError::Unavailable(format!("{}: {error}", self.name)))
    }
}
