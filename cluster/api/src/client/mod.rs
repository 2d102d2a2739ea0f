//! One typed client for a node's HTTP API, blocking ([`Client`], for threads) or async
//! ([`AsyncClient`], for a tokio runtime), over one list of routes ([`route`]): each takes
//! and answers the types of this crate, every call has a timeout, and a failure says the
//! HTTP status and the server's own message.
//!
//! Both are built on reqwest, the only HTTP client crate of the workspace. Every call
//! presents the configured API key ([`ClientConfig::api_key`]). The routes of
//! `/v1/admin/...` answer types the cluster owns (its status, say); their methods are
//! generic over the answer, so this crate need not know them. Tests that send malformed
//! requests on purpose use [`Client::send_raw`], which checks nothing.

mod blocking;
mod error;
mod nonblocking;

use std::marker::PhantomData;
use std::time::Duration;

use reqwest::header::{ACCEPT_LANGUAGE, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use blocking::Client;
pub use error::Error;
pub use nonblocking::AsyncClient;

use crate::answers::{
    AdmittedAnswer, DeleteAnswer, ErasedAnswer, EventsAnswer, HealthView, ProductView, ProfileView,
    RankedAnswer, UpsertAnswer, UserExport,
};
use crate::requests::{EventBatch, ProductBatch, RecommendBody, SearchBody};

/// How a client calls: the same for every route.
#[derive(Clone)]
pub struct ClientConfig {
    /// How long one call may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// How long connecting may take, when shorter than `timeout`.
    pub connect_timeout: Option<Duration>,
    /// Idle connections kept per node, when not reqwest's default.
    pub max_idle_per_host: Option<usize>,
    /// The API key every call presents as `Authorization: Bearer …`; none for a node that
    /// asks for none (on loopback). `Debug` never shows it.
    pub api_key: Option<String>,
    /// The `Accept-Language` every call sends (the language of reason texts); none sends
    /// no header, and the node answers in English.
    pub language: Option<String>,
}

impl ClientConfig {
    /// Calls of at most `timeout` each, without a key.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            connect_timeout: None,
            max_idle_per_host: None,
            api_key: None,
            language: None,
        }
    }

    /// This configuration presenting `key` with every call.
    pub fn with_api_key(self, key: impl Into<String>) -> Self {
        Self {
            api_key: Some(key.into()),
            ..self
        }
    }

    /// The headers every call sends: `Authorization` when there is a key (marked
    /// sensitive, so HTTP logging leaves it out) and `Accept-Language` when there is a
    /// language.
    fn headers(&self) -> Result<HeaderMap, Error> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                Error::client("the API key holds characters a header cannot carry".to_string())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if let Some(language) = &self.language {
            let value = HeaderValue::from_str(language).map_err(|_| {
                Error::client(format!("{language:?} cannot be sent as Accept-Language"))
            })?;
            headers.insert(ACCEPT_LANGUAGE, value);
        }
        Ok(headers)
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("language", &self.language)
            .finish()
    }
}

/// One call of the API: the method, the path (as segments, each percent-encoded when the
/// URL is built), the JSON body, and how to read the answer.
pub struct Request<T> {
    method: Method,
    segments: Vec<String>,
    body: Option<Vec<u8>>,
    decode: fn(&[u8]) -> Result<T, String>,
    answer: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Request<T> {
    fn json(method: Method, segments: &[&str], body: Option<Vec<u8>>) -> Self {
        Self {
            method,
            segments: segments.iter().map(|segment| segment.to_string()).collect(),
            body,
            decode: |bytes| serde_json::from_slice(bytes).map_err(|error| error.to_string()),
            answer: PhantomData,
        }
    }

    fn get(segments: &[&str]) -> Self {
        Self::json(Method::GET, segments, None)
    }

    fn delete(segments: &[&str]) -> Self {
        Self::json(Method::DELETE, segments, None)
    }

    fn post(segments: &[&str], body: &impl Serialize) -> Self {
        Self::json(Method::POST, segments, Some(to_json(body)))
    }

    fn put(segments: &[&str], body: &impl Serialize) -> Self {
        Self::json(Method::PUT, segments, Some(to_json(body)))
    }
}

impl Request<String> {
    /// A GET whose answer is plain text.
    fn text(segments: &[&str]) -> Self {
        Self {
            method: Method::GET,
            segments: segments.iter().map(|segment| segment.to_string()).collect(),
            body: None,
            decode: |bytes| String::from_utf8(bytes.to_vec()).map_err(|error| error.to_string()),
            answer: PhantomData,
        }
    }
}

impl<T> Request<T> {
    /// `base` with this request's path segments appended.
    fn url(&self, base: &Url) -> Result<Url, Error> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::client(format!("{base} cannot take a path")))?
            .pop_if_empty()
            .extend(&self.segments);
        Ok(url)
    }
}

/// The API's request types always serialise: no map has non-string keys.
fn to_json(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).expect("an API request serialises to JSON")
}

/// An answer with the trace id the node gave it (`x-trace-id`), to find its spans.
#[derive(Debug, Clone)]
pub struct Answered<T> {
    pub answer: T,
    pub trace_id: Option<String>,
}

/// Whatever came back to [`Client::send_raw`], error statuses included.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The challenge of a 401 (`Bearer`).
    pub www_authenticate: Option<String>,
    pub body: String,
}

/// The parts of an answer's head a client reads.
struct Head {
    status: u16,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    trace_id: Option<String>,
}

impl Head {
    fn of(status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        Self {
            status: status.as_u16(),
            retry_after: text("retry-after"),
            www_authenticate: text("www-authenticate"),
            trace_id: text("x-trace-id"),
        }
    }

    /// The typed answer of a 2xx, or the error an error status carries.
    fn answer<T>(self, body: &[u8], request: &Request<T>) -> Result<Answered<T>, Error> {
        if !(200..300).contains(&self.status) {
            return Err(Error::from_answer(
                self.status,
                self.retry_after.as_deref(),
                body,
            ));
        }
        let answer = (request.decode)(body).map_err(Error::unreadable)?;
        Ok(Answered {
            answer,
            trace_id: self.trace_id,
        })
    }
}

/// A base URL without its trailing slash, parsed.
fn parse_base(base_url: &str) -> Result<Url, Error> {
    Url::parse(base_url.trim_end_matches('/'))
        .map_err(|error| Error::client(format!("{base_url:?} is not a URL: {error}")))
}

/// The routes, once: each becomes a function of [`route`] answering its [`Request`], and a
/// method of both clients.
macro_rules! routes {
    ($(
        $(#[$doc:meta])*
        $name:ident $(<$generic:ident>)? ($($arg:ident: $type:ty),*) -> $answer:ty = $build:expr;
    )*) => {
        /// Every route as a [`Request`], for [`Client::call`] and [`AsyncClient::call`].
        pub mod route {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$doc])*
                pub fn $name $(<$generic: DeserializeOwned>)? ($($arg: $type),*) -> Request<$answer> {
                    $build
                }
            )*
        }

        impl Client {
            $(
                $(#[$doc])*
                pub fn $name $(<$generic: DeserializeOwned>)? (&self, $($arg: $type),*) -> Result<$answer, Error> {
                    self.call(route::$name $(::<$generic>)? ($($arg),*))
                }
            )*
        }

        impl AsyncClient {
            $(
                $(#[$doc])*
                pub async fn $name $(<$generic: DeserializeOwned>)? (&self, $($arg: $type),*) -> Result<$answer, Error> {
                    self.call(route::$name $(::<$generic>)? ($($arg),*)).await
                }
            )*
        }
    };
}

routes! {
    /// `PUT /v1/products`: creates or replaces products; answered once they are searchable.
    upsert_products(batch: &ProductBatch) -> UpsertAnswer =
        Request::put(&["v1", "products"], batch);
    /// `GET /v1/products/{id}`: 404 for a product the catalog lacks.
    product(id: &str) -> ProductView = Request::get(&["v1", "products", id]);
    /// `DELETE /v1/products/{id}`.
    delete_product(id: &str) -> DeleteAnswer = Request::delete(&["v1", "products", id]);
    /// `POST /v1/events`: answered once every event is durable.
    events(batch: &EventBatch) -> EventsAnswer = Request::post(&["v1", "events"], batch);
    /// `POST /v1/search`.
    search(body: &SearchBody) -> RankedAnswer = Request::post(&["v1", "search"], body);
    /// `POST /v1/recommend`.
    recommend(body: &RecommendBody) -> RankedAnswer =
        Request::post(&["v1", "recommend"], body);
    /// `GET /v1/users/{id}/profile`: 404 for a user nobody wrote for.
    profile(user_id: &str) -> ProfileView =
        Request::get(&["v1", "users", user_id, "profile"]);
    /// `GET /v1/users/{id}/export`: everything stored about the user. Needs an admin key.
    export_user(user_id: &str) -> UserExport = Request::get(&["v1", "users", user_id, "export"]);
    /// `DELETE /v1/users/{id}`: erases the user on every replica.
    erase_user(user_id: &str) -> ErasedAnswer = Request::delete(&["v1", "users", user_id]);
    /// `GET /healthz`.
    health() -> HealthView = Request::get(&["healthz"]);
    /// `GET /metrics`: the Prometheus text exposition.
    metrics() -> String = Request::text(&["metrics"]);
    /// `GET /v1/admin/status`: the cluster as the node sees it (`ClusterStatus`); needs an
    /// admin key.
    cluster_status<S>() -> S = Request::get(&["v1", "admin", "status"]);
    /// `POST /v1/admin/drain`: the node hands its replicas over and exits; answers its
    /// status. Needs an admin key.
    drain<S>() -> S = Request::json(Method::POST, &["v1", "admin", "drain"], None);
    /// `POST /v1/admin/members/{name}/admit`: lets the leaders place replicas on the node
    /// named. Needs an admin key.
    admit(name: &str) -> AdmittedAnswer =
        Request::json(Method::POST, &["v1", "admin", "members", name, "admit"], None);
    /// `GET /v1/admin/replicas/users/{id}`: the profile this replica stores, as the node's
    /// own `Result` of an optional profile. Needs an admin key.
    replica_user<S>(user_id: &str) -> S =
        Request::get(&["v1", "admin", "replicas", "users", user_id]);
}

#[cfg(test)]
mod tests;
