//! The one place events change a shopper's profile: committed events are folded in, stored,
//! shown to the online signals, and handed to the shopper's live session, if any.
//!
//! The cluster layer calls [`ProfileWriter::apply`] from its replicated state machine on
//! every replica, in log order, so every replica's profile store folds the same events with
//! the same clock (`at_ms`, fixed when the batch was proposed).

use std::collections::BTreeMap;
use std::sync::Arc;

use inkling_domain::{Event, EventKind, Product, Profile};
use inkling_models::segments::profile_vector;

use crate::ActorError;
use crate::session::SessionContext;
use crate::session_supervisor::SupervisorMsg;
use crate::signals::{Observation, SignalsMsg, session_key};
use crate::slot::ActorSlot;

pub struct ProfileWriter {
    context: Arc<SessionContext>,
    sessions: ActorSlot<SupervisorMsg>,
}

impl ProfileWriter {
    pub(crate) fn new(context: Arc<SessionContext>, sessions: ActorSlot<SupervisorMsg>) -> Self {
        Self { context, sessions }
    }

    /// Folds a batch of events, of any users, into their stored profiles, user by user.
    pub fn apply_batch(&self, events: Vec<Event>, at_ms: u64) -> Result<(), ActorError> {
        let mut by_user: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for event in events {
            by_user
                .entry(event.user_id.clone())
                .or_default()
                .push(event);
        }
        for (user, events) in by_user {
            self.apply(&user, &events, at_ms)?;
        }
        Ok(())
    }

    /// Folds the user's events into the stored profile and answers the new profile. The
    /// write is durable after the next group commit; events whose idempotency key the
    /// profile has seen are skipped.
    pub fn apply(
        &self,
        user_id: &str,
        events: &[Event],
        at_ms: u64,
    ) -> Result<Profile, ActorError> {
        let mut profile = self
            .context
            .profiles
            .load(user_id)?
            .unwrap_or_else(|| Profile::new(user_id));
        let config = self.context.profile_config;
        let mut observations = Vec::new();
        for event in events {
            if profile.has_applied(event) {
                continue;
            }
            let product = match &event.item_id {
                Some(item_id) => self.context.catalog.get(item_id)?,
                None => None,
            };
            if event.learn
                && let Some(item_id) = &event.item_id
            {
                observations.push(observation(
                    &profile,
                    event,
                    item_id,
                    product.as_ref(),
                    at_ms,
                ));
            }
            profile.apply(event, product.as_ref(), at_ms, &config);
        }
        self.assign_segment(&mut profile, at_ms);
        self.context.profiles.save(&profile)?;
        inkling_ops::metrics::EVENTS_INGESTED.inc_by(events.len() as u64);
        if !observations.is_empty() {
            // Shared signals learn in the background; the shopper does not wait for them.
            let _ = self.context.signals.cast(SignalsMsg::Observe(observations));
        }
        let _ = self
            .sessions
            .cast(SupervisorMsg::ProfileChanged(Box::new(profile.clone())));
        Ok(profile)
    }

    /// The profile as this node's store holds it, whether or not a session is active here.
    pub fn stored(&self, user_id: &str) -> Result<Option<Profile>, ActorError> {
        Ok(self.context.profiles.load(user_id)?)
    }

    /// Erases the user's stored profile and stops their session, which holds a copy.
    pub fn erase(&self, user_id: &str) -> Result<(), ActorError> {
        // The shopper's sessions in the shared signals go too, named as they were learnt.
        if let Some(profile) = self.stored(user_id)? {
            let mut sessions: Vec<Option<&str>> = profile
                .recent_items
                .iter()
                .map(|item| item.session_id.as_deref())
                .collect();
            sessions.push(None);
            sessions.sort_unstable();
            sessions.dedup();
            let keys = sessions
                .into_iter()
                .map(|session| session_key(user_id, session))
                .collect();
            let _ = self.context.signals.cast(SignalsMsg::Forget(keys));
        }
        self.context.profiles.delete(user_id)?;
        let _ = self
            .sessions
            .cast(SupervisorMsg::StopSession(user_id.to_string()));
        Ok(())
    }

    /// Places the shopper in the nearest segment of the last `inkling profile build`.
    fn assign_segment(&self, profile: &mut Profile, now: u64) {
        let Some(segments) = &self.context.segments else {
            return;
        };
        let half_life = self.context.profile_config.half_life_ms;
        if let Some(vector) = profile_vector(profile, now, half_life) {
            profile.segment = segments.assign(&vector);
        }
    }
}

/// The event as shared signals see it, with the item it followed in its session.
fn observation(
    profile: &Profile,
    event: &Event,
    item_id: &str,
    product: Option<&Product>,
    now: u64,
) -> Observation {
    Observation {
        session_key: session_key(&profile.user_id, event.session_id.as_deref()),
        item_id: item_id.to_string(),
        previous_item: profile
            .last_item_in(event.session_id.as_deref())
            .map(str::to_string),
        categories: product.map(|p| p.category_path.clone()).unwrap_or_default(),
        segment: profile.segment,
        basket: matches!(event.kind, EventKind::AddToCart | EventKind::Purchase)
            .then(|| profile.basket_in(event.session_id.as_deref())),
        weight: event.kind.interest_weight(),
        at_ms: event.timestamp.unwrap_or(now),
    }
}
