//! Why a call failed, as a caller needs it: the HTTP status (none when no usable answer
//! came), the server's code and message, and when to retry.

use std::time::Duration;

use crate::answers::ErrorAnswer;

/// A failed call.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The status of an error answer; none when no usable answer came: refused, timed out,
    /// cut off, or not the answer the route promises.
    pub status: Option<u16>,
    /// The server's error code (`invalid_request`, `not_found`, `overloaded`, ...).
    pub code: Option<String>,
    /// The server's message, or what went wrong on the way.
    pub message: String,
    /// `Retry-After` of an answer that has it (every 503).
    pub retry_after: Option<Duration>,
    /// Whether a 2xx came whose body is not the route's answer.
    unreadable: bool,
}

impl Error {
    /// No answer at all: the node refused, did not answer in time, or cut the answer off.
    pub(crate) fn no_answer(error: reqwest::Error) -> Self {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        Self::without_status(message)
    }

    /// A 2xx whose body is not what the route answers.
    pub(crate) fn unreadable(why: String) -> Self {
        Self {
            unreadable: true,
            ..Self::without_status(format!("unreadable answer: {why}"))
        }
    }

    /// A mistake before anything was sent (a bad base URL, a method that is no method).
    pub(crate) fn client(message: String) -> Self {
        Self::without_status(message)
    }

    fn without_status(message: String) -> Self {
        Self {
            status: None,
            code: None,
            message,
            retry_after: None,
            unreadable: false,
        }
    }

    /// An error status: the code and message of the API's error body, or the body as it
    /// came when it is not one (a proxy's page, say).
    pub(crate) fn from_answer(status: u16, retry_after: Option<&str>, body: &[u8]) -> Self {
        let (code, message) = match serde_json::from_slice::<ErrorAnswer>(body) {
            Ok(answer) => (Some(answer.error.code), answer.error.message),
            Err(_) => (None, String::from_utf8_lossy(body).into_owned()),
        };
        Self {
            status: Some(status),
            code,
            message,
            retry_after: retry_after
                .and_then(|seconds| seconds.trim().parse().ok())
                .map(Duration::from_secs),
            unreadable: false,
        }
    }

    /// Whether the node gave no usable answer (worth another node, as a balancer would).
    pub fn is_no_answer(&self) -> bool {
        self.status.is_none()
    }

    /// Whether a 2xx came whose body is not what the route answers (a node of another
    /// version, say): no status, yet the node did answer.
    pub fn is_unreadable(&self) -> bool {
        self.unreadable
    }

    /// Whether the request itself is at fault: a 4xx other than 429, which no retry mends.
    pub fn is_client_error(&self) -> bool {
        self.status
            .is_some_and(|status| (400..500).contains(&status) && status != 429)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.status, &self.code) {
            (None, _) => write!(f, "no answer: {}", self.message),
            (Some(status), None) => write!(f, "HTTP {status}: {}", self.message),
            (Some(status), Some(code)) => write!(f, "HTTP {status} {code}: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}
