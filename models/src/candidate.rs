//! Search candidates: a product, why it is a candidate, and its retrieval score. `fusion`
//! produces them and `ranking` scores them; both depend on this module, so neither depends
//! on the other for these types.

use std::sync::Arc;

use inkling_domain::Product;
use serde::{Deserialize, Serialize};

/// Why a product is a candidate at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CandidateSource {
    /// Found for a search query, by its words, its meaning or both; the score is the
    /// fused rank score (see [`crate::fusion`]).
    Search { query: String, matched: Matched },
    /// Satisfies the category or brand the shopper asked for in words.
    Requested,
}

/// How a search hit relates to the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Matched {
    /// Its text contains the query's words (BM25).
    Words,
    /// Its embedding is close to the query's.
    Meaning,
    Both,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub product: Arc<Product>,
    pub retrieval_score: f32,
    pub source: CandidateSource,
}
