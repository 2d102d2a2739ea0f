//! The offline tools that drive a real node from outside: benchmarks (`bench`), evaluations
//! on public data sets (`eval`), ranker training (`train`) and the profile jobs that fit
//! segments and association rules on a stopped node's files (`profiles`).
//!
//! `inkling-tools` owns measurement and offline fitting. Everything it measures goes through
//! the node's real HTTP path ([`inkling_node::LocalNode`]) or its real storage files; it must
//! never reach into a running node's actors, so its figures hold for the shipped binary.

pub mod bench;
pub mod eval;
pub mod profiles;
pub mod status;
pub mod train;
pub mod train_search;
