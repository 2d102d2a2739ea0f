//! The blocking client, for threads. Like every reqwest blocking client it runs its own
//! small runtime, so it must be neither built, used nor dropped inside an async task: from
//! async code, use [`crate::AsyncClient`] or `spawn_blocking`.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};

use super::{Answered, ClientConfig, Error, Head, RawAnswer, Request, parse_base};

/// A client of one node, whose connections [`Client::at`] shares with clients of others.
#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: Url,
    config: ClientConfig,
}

impl Client {
    /// A client of the node at `base_url` (`http://127.0.0.1:8080`) whose every call takes
    /// at most `config.timeout`.
    pub fn new(base_url: &str, config: ClientConfig) -> Result<Self, Error> {
        let mut builder = reqwest::blocking::Client::builder().timeout(config.timeout);
        if let Some(timeout) = config.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(idle) = config.max_idle_per_host {
            builder = builder.pool_max_idle_per_host(idle);
        }
        let http = builder.build().map_err(Error::no_answer)?;
        Ok(Self {
            http,
            base: parse_base(base_url)?,
            config,
        })
    }

    /// A client of the node at `base_url` sharing this one's connections and timeouts.
    pub fn at(&self, base_url: &str) -> Result<Self, Error> {
        Ok(Self {
            base: parse_base(base_url)?,
            ..self.clone()
        })
    }

    /// This client with another timeout per call (an administrative call that may be slow).
    pub fn with_timeout(&self, timeout: std::time::Duration) -> Self {
        let mut client = self.clone();
        client.config.timeout = timeout;
        client
    }

    /// This client presenting another API key (or none), sharing its connections.
    pub fn with_api_key(&self, key: Option<&str>) -> Self {
        let mut client = self.clone();
        client.config.api_key = key.map(str::to_string);
        client
    }

    /// This client asking for reason texts in `language` (an `Accept-Language` value), or
    /// sending no preference, sharing its connections.
    pub fn with_language(&self, language: Option<&str>) -> Self {
        let mut client = self.clone();
        client.config.language = language.map(str::to_string);
        client
    }

    /// The node's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Sends `request` and answers its typed answer.
    pub fn call<T>(&self, request: Request<T>) -> Result<T, Error> {
        self.call_traced(request).map(|answered| answered.answer)
    }

    /// Sends `request` and answers its typed answer with its trace id.
    pub fn call_traced<T>(&self, request: Request<T>) -> Result<Answered<T>, Error> {
        let mut builder = self
            .http
            .request(request.method.clone(), request.url(&self.base)?)
            .timeout(self.config.timeout);
        builder = builder.headers(self.config.headers()?);
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = builder.send().map_err(Error::no_answer)?;
        let head = Head::of(response.status(), response.headers());
        let body = response.bytes().map_err(Error::no_answer)?;
        head.answer(&body, &request)
    }

    /// Sends `body` as JSON, unchecked, to `path` (with any query string): for tests of
    /// what the API refuses. Answers whatever came back; fails only without an answer.
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<RawAnswer, Error> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|error| Error::client(format!("{method:?}: {error}")))?;
        let url = format!("{}{path}", self.base_url());
        let mut builder = self.http.request(method, url).timeout(self.config.timeout);
        builder = builder.headers(self.config.headers()?);
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = builder.send().map_err(Error::no_answer)?;
        let head = Head::of(response.status(), response.headers());
        let body = response.text().map_err(Error::no_answer)?;
        Ok(RawAnswer {
            status: head.status,
            retry_after: head.retry_after,
            www_authenticate: head.www_authenticate,
            body,
        })
    }
}
