//! Requests and answers that travel between the gateway and the actors, possibly across
//! nodes, so all of them are plain serialisable data.

use inkling_storage::{Filters, Product};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    pub user_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    pub query: String,
    pub k: usize,
    #[serde(default)]
    pub filters: Filters,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendRequest {
    pub user_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    pub k: usize,
    #[serde(default)]
    pub filters: Filters,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedItem {
    pub product: Product,
    pub score: f64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankedList {
    pub items: Vec<RankedItem>,
    /// Shards that failed or missed their deadline; the answer was built without them.
    pub missing_shards: Vec<MissingShard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingShard {
    pub shard: usize,
    pub error: String,
}
