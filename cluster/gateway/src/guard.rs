//! Who may call a route, and how often: each group of routes needs a [`Scope`], checked
//! against the request's `Authorization: Bearer` key before its body is read, and then
//! charged to the caller's token bucket.
//!
//! The bucket is the key's id (a short hash, never the key); without keys, the client's
//! address when the server records it (`ConnectInfo`), otherwise one shared `anonymous`
//! bucket.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use inkling_auth::{Caller, KeyRing, Scope};

use crate::config::RateLimit;
use crate::error::ApiError;

/// How many checks pass between two sweeps of buckets that are full again, so clients that
/// came once (addresses, without keys) do not pile up in memory.
const SWEEP_EVERY: u64 = 4_096;

/// The bucket of requests that carry no key on a node that asks for none, when the server
/// does not tell the client's address.
const ANONYMOUS: &str = "anonymous";

/// The keys a node accepts and the buckets their requests are charged to.
pub struct Guard {
    keys: KeyRing,
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl Guard {
    pub fn new(keys: KeyRing, rate: RateLimit) -> Self {
        Self {
            keys,
            limiter: DefaultKeyedRateLimiter::keyed(quota(rate)),
            checks: AtomicU64::new(0),
        }
    }

    /// Lets the request through if its key allows `needed` and its bucket has room.
    fn admit(
        &self,
        authorization: Option<&str>,
        peer: Option<SocketAddr>,
        needed: Scope,
    ) -> Result<(), ApiError> {
        let caller = self.keys.authorize(authorization, needed)?;
        self.charge(bucket(caller, peer))
    }

    /// Takes one request from `bucket`, or answers when it may call again.
    fn charge(&self, bucket: String) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&bucket).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs_f64().ceil() as u64)
        })
    }
}

/// `rate` as a governor quota; a zero rate or burst counts as one, so a typo in a flag
/// slows a node to a crawl rather than taking the limit away.
fn quota(rate: RateLimit) -> Quota {
    let at_least_one = |value: u32| NonZeroU32::new(value.max(1)).expect("at least one");
    Quota::per_second(at_least_one(rate.per_second)).allow_burst(at_least_one(rate.burst))
}

/// Whose budget a request spends: its key's, or without keys its address's.
fn bucket(caller: Option<Caller>, peer: Option<SocketAddr>) -> String {
    match (caller, peer) {
        (Some(caller), _) => caller.key_id,
        (None, Some(peer)) => peer.ip().to_string(),
        (None, None) => ANONYMOUS.to_string(),
    }
}

/// What a group of routes needs: the state of [`require_scope`].
#[derive(Clone)]
pub struct Needs {
    pub guard: Arc<Guard>,
    pub scope: Scope,
}

/// Middleware for a group of routes (a route layer, so it runs before any extractor reads
/// the body): 401 or 403 for a key that may not call it, 429 past the caller's rate.
pub async fn require_scope(State(needs): State<Needs>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    if let Err(error) = needs.guard.admit(authorization, peer, needs.scope) {
        return error.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use inkling_auth::ApiKey;

    use super::*;

    /// Each case: the key sent, the scope needed, and the status (200 when let through).
    #[test]
    fn keys_scopes_and_rates_decide_the_answer() {
        let admin = ApiKey::generate();
        let storefront = ApiKey::generate();
        let keys = KeyRing::new([
            (Scope::Admin, admin.hash()),
            (Scope::Storefront, storefront.hash()),
        ]);
        let guard = Guard::new(
            keys,
            RateLimit {
                per_second: 1,
                burst: 2,
            },
        );
        let bearer = |key: &ApiKey| Some(format!("Bearer {}", key.expose()));
        let cases = [
            ("admin writes", bearer(&admin), Scope::Admin, 200),
            ("storefront writes", bearer(&storefront), Scope::Admin, 403),
            (
                "storefront searches",
                bearer(&storefront),
                Scope::Storefront,
                200,
            ),
            ("no key", None, Scope::Storefront, 401),
            (
                "unknown key",
                bearer(&ApiKey::generate()),
                Scope::Storefront,
                401,
            ),
            ("admin again", bearer(&admin), Scope::Storefront, 200),
            (
                "admin past its burst",
                bearer(&admin),
                Scope::Storefront,
                429,
            ),
            (
                "storefront has its own bucket",
                bearer(&storefront),
                Scope::Storefront,
                200,
            ),
        ];
        for (name, header, needed, status) in cases {
            let answer = guard
                .admit(header.as_deref(), None, needed)
                .map_or_else(|error| error.status().as_u16(), |()| 200);
            assert_eq!(answer, status, "{name}");
        }
    }

    #[test]
    fn a_refusal_says_when_to_retry_and_how_to_authenticate() {
        let guard = Guard::new(
            KeyRing::default(),
            RateLimit {
                per_second: 1,
                burst: 1,
            },
        );
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert!(guard.admit(None, Some(peer), Scope::Admin).is_ok());
        let refused = guard
            .admit(None, Some(peer), Scope::Admin)
            .unwrap_err()
            .into_response();
        assert_eq!(refused.status().as_u16(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        let other: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        assert!(
            guard.admit(None, Some(other), Scope::Admin).is_ok(),
            "without keys each address has its own bucket"
        );

        let keyed = Guard::new(
            KeyRing::new([(Scope::Admin, ApiKey::generate().hash())]),
            RateLimit::default(),
        );
        let unauthenticated = keyed
            .admit(None, None, Scope::Admin)
            .unwrap_err()
            .into_response();
        assert_eq!(unauthenticated.status().as_u16(), 401);
        assert_eq!(unauthenticated.headers()["www-authenticate"], "Bearer");
    }
}
