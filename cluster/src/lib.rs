//! The node: process lifecycle, the HTTP gateway, the command line, and benchmarks.
//!
//! `inkling-cluster` is the only crate that knows about sockets, addresses, HTTP and (as the
//! cluster grows) nodes and placement. It opens storage, starts the actors of `inkling-actors`
//! through their façade, and translates HTTP requests into actor requests and actor errors
//! into HTTP statuses. Business logic never lives here: a handler validates, delegates and
//! maps the answer.

pub mod bench;
pub mod cli;
pub mod demo;
pub mod eval;
pub mod http;
pub mod node;
pub mod profiles;
pub mod train;
