//! Errors as clients see them: a status, a stable code and a message, sent as
//! `{"error": {"code", "message"}}`; every 503 and 429 also carries `Retry-After`, and every
//! 401 `WWW-Authenticate: Bearer`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use inkling_actors::ActorError;
use inkling_api::limits::{RETRY_AFTER_OVERLOADED_SECS, RETRY_AFTER_UNAVAILABLE_SECS};
use inkling_api::{ErrorAnswer, ErrorDetail};
use inkling_auth::Refusal;

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds to wait before retrying; sent as `Retry-After` with every 503 and 429.
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn unavailable(code: &'static str, message: String, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 503 `overloaded`: this node works on as many requests as it may.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::unavailable("overloaded", message.into(), RETRY_AFTER_OVERLOADED_SECS)
    }

    /// 503 `not_ready`: this node cannot serve yet (or any more).
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::unavailable("not_ready", message.into(), RETRY_AFTER_UNAVAILABLE_SECS)
    }

    /// 429 `rate_limited`: the caller's key (or address) has spent its budget; it may call
    /// again in `retry_after_secs` (at least one).
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this API key: slow down and retry after `Retry-After` seconds",
            )
        }
    }

    /// 504 `timeout`: the request took longer than this node lets a request take. Whether
    /// a write took effect is unknown: retry it with the same idempotency keys.
    pub fn timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the request did not finish within {limit:?}"),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self
            .retry_after_secs
            .or((self.status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(RETRY_AFTER_UNAVAILABLE_SECS));
        let challenge = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorAnswer {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if challenge {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Refusal> for ApiError {
    /// 401 `unauthenticated` for a missing or unknown key, 403 `forbidden` for a key of
    /// the wrong scope, with the refusal's own message.
    fn from(refusal: Refusal) -> Self {
        let (status, code) = match refusal.status() {
            401 => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            _ => (StatusCode::FORBIDDEN, "forbidden"),
        };
        Self::new(status, code, refusal.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_json",
        };
        Self::new(rejection.status(), code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<ActorError> for ApiError {
    fn from(error: ActorError) -> Self {
        match error {
            ActorError::Overloaded(_) => {
                Self::unavailable("overloaded", error.to_string(), RETRY_AFTER_OVERLOADED_SECS)
            }
            ActorError::Timeout(_) | ActorError::Unavailable(_) => Self::unavailable(
                "unavailable",
                error.to_string(),
                RETRY_AFTER_UNAVAILABLE_SECS,
            ),
            ActorError::Storage(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                error.to_string(),
            ),
            ActorError::InsufficientStorage(_) => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                error.to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: the actor error, expected status, code and `Retry-After`.
    #[test]
    fn actor_errors_map_to_statuses_and_every_503_says_when_to_retry() {
        let cases = [
            (
                ActorError::Overloaded("queue full".into()),
                503,
                "overloaded",
                Some("1"),
            ),
            (
                ActorError::Timeout("session".into()),
                503,
                "unavailable",
                Some("1"),
            ),
            (
                ActorError::Unavailable("down".into()),
                503,
                "unavailable",
                Some("1"),
            ),
            (ActorError::Storage("disk".into()), 500, "storage", None),
            (
                ActorError::InsufficientStorage("1 MiB free".into()),
                507,
                "insufficient_storage",
                None,
            ),
        ];
        for (error, status, code, retry_after) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code()), (status, code));
            let response = api.into_response();
            let header = response
                .headers()
                .get(RETRY_AFTER)
                .map(|value| value.to_str().unwrap());
            assert_eq!(header, retry_after, "{code}");
        }
        let plain = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "x");
        assert!(
            plain.into_response().headers().contains_key(RETRY_AFTER),
            "a 503 built any other way also says when to retry"
        );
    }
}
