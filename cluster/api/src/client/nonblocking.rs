//! The async client, for code on a tokio runtime: the same routes and answers as the
//! blocking [`crate::Client`].

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;

use super::{Answered, ClientConfig, Error, Head, Request, parse_base};

/// A client of one node, whose connections [`AsyncClient::at`] shares with clients of
/// others.
#[derive(Clone)]
pub struct AsyncClient {
    http: reqwest::Client,
    base: Url,
    config: ClientConfig,
}

impl AsyncClient {
    /// A client of the node at `base_url` whose every call takes at most
    /// `config.timeout`.
    pub fn new(base_url: &str, config: ClientConfig) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder().timeout(config.timeout);
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

    /// The node's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Sends `request` and answers its typed answer.
    pub async fn call<T>(&self, request: Request<T>) -> Result<T, Error> {
        self.call_traced(request)
            .await
            .map(|answered| answered.answer)
    }

    /// Sends `request` and answers its typed answer with its trace id.
    pub async fn call_traced<T>(&self, request: Request<T>) -> Result<Answered<T>, Error> {
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
        let response = builder.send().await.map_err(Error::no_answer)?;
        let head = Head::of(response.status(), response.headers());
        let body = response.bytes().await.map_err(Error::no_answer)?;
        head.answer(&body, &request)
    }
}
