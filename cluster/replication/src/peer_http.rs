//! The HTTP client for the peer plane: every request it sends carries a proof of the
//! cluster secret (see `inkling_auth::peer`), made over the exact bytes it sends.

use std::time::Duration;

use anyhow::Context;
use inkling_auth::peer::HEADERS;
use inkling_auth::{ClusterSecret, PeerSigner};
use reqwest::Method;
use serde::Serialize;

use crate::tls::{ClusterTls, MeshTls};

/// Raft's connection pool and the status probes share this type; each holds its own pool.
#[derive(Clone)]
pub struct PeerHttp {
    client: reqwest::Client,
    signer: PeerSigner,
    /// `https` under mutual TLS, `http` otherwise.
    scheme: &'static str,
}

impl PeerHttp {
    /// A client that signs as `node_name`; with `source_ip`, connections leave from it, so
    /// a proxy in front of a peer knows which node is calling; with `tls`, over mutual TLS
    /// with this node's certificate.
    pub fn new(
        secret: &ClusterSecret,
        node_name: &str,
        source_ip: Option<std::net::IpAddr>,
        tls: Option<&MeshTls>,
    ) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .local_address(source_ip);
        if let Some(files) = tls {
            builder = builder.use_preconfigured_tls(ClusterTls::load(files)?.peer_client()?);
        }
        let client = builder
            .build()
            .context("cannot build the HTTP client for peers")?;
        Ok(Self {
            client,
            signer: PeerSigner::new(secret, node_name),
            scheme: if tls.is_some() { "https" } else { "http" },
        })
    }

    /// A signed POST of `body` as JSON to `path` on the peer listening at `addr`.
    pub async fn post_json(
        &self,
        addr: &str,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> reqwest::Result<reqwest::Response> {
        let body = serde_json::to_vec(body).expect("peer messages serialise to JSON");
        self.send(Method::POST, addr, path, body, timeout).await
    }

    /// A signed GET of `path` on the peer listening at `addr`.
    pub async fn get(
        &self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> reqwest::Result<reqwest::Response> {
        self.send(Method::GET, addr, path, Vec::new(), timeout)
            .await
    }

    async fn send(
        &self,
        method: Method,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> reqwest::Result<reqwest::Response> {
        let proof = self
            .signer
            .sign(method.as_str(), path, &body, inkling_domain::now_ms());
        let mut request = self
            .client
            .request(method, format!("{}://{addr}{path}", self.scheme))
            .timeout(timeout);
        for (name, value) in HEADERS.into_iter().zip(proof.header_values()) {
            request = request.header(name, value);
        }
        request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
    }
}
