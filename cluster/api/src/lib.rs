//! HTTP API v1 as clients see it: the request and answer types, their limits, and one
//! typed client over them.
//!
//! `inkling-api` owns the public contract: what each route takes and answers
//! ([`requests`], [`answers`]), the size limits requests are checked against ([`limits`]),
//! the OpenAPI schemas of those types (derived with utoipa; [`schema`] states the limits),
//! and [`client`], the one way tools, benchmarks, the chaos harness and tests call a node.
//! The gateway serves these types and maps them to and from the actor protocol itself.
//!
//! It must never know about actors, storage, models, raft or where a request is served:
//! it depends on serde, utoipa and an HTTP client only, so the API can stay put while the inside
//! changes, and a client never pulls a node into its build.

pub mod answers;
pub mod client;
pub mod limits;
pub mod requests;
pub mod schema;

pub use answers::*;
pub use client::{AsyncClient, Client, ClientConfig, Error};
pub use requests::*;
