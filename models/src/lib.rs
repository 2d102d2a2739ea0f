//! The models that turn candidates into a ranked, explained answer.
//!
//! `inkling-models` owns the learning and the scoring: the encoders and query understanding,
//! the online recommendation signals, segments and association rules, how search hits and
//! recommendation candidates become one score (hand-set for search, learned for
//! recommendations), and the human-readable reasons behind it. It works on plain data
//! (`inkling-domain`'s products and profiles) and must never know about actors, mailboxes,
//! nodes, HTTP, or how and where the data is stored.

pub mod baskets;
mod candidate;
pub mod encoder;
pub mod fusion;
pub mod intent;
pub mod page;
pub mod ranking;
pub mod recommend;
pub mod search_ranker;
pub mod segments;
pub mod signals;
pub mod slot_evidence;

pub use candidate::{Candidate, CandidateSource, Matched};
pub use ranking::{Budget, RankContext, RankingWeights, Scored, rank};
