//! Errors as clients see them: a status, a stable code and a message, sent as
//! `{"error": {"code", "message"}}`; every 503 also carries `Retry-After`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use inkling_actors::ActorError;
use inkling_api::limits::{RETRY_AFTER_OVERLOADED_SECS, RETRY_AFTER_UNAVAILABLE_SECS};
use inkling_api::{ErrorAnswer, ErrorDetail};

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds to wait before retrying; sent as `Retry-After` with every 503.
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
        let retry_after = (self.status == StatusCode::SERVICE_UNAVAILABLE).then(|| {
            self.retry_after_secs
                .unwrap_or(RETRY_AFTER_UNAVAILABLE_SECS)
        });
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
        response
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
