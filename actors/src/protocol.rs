//! Requests and answers that travel between the gateway and the actors, possibly across
//! nodes, so all of them are plain serialisable data.

use std::collections::BTreeMap;
use std::sync::Arc;

use inkling_domain::{Filters, Product, Reason};
use inkling_models::intent::{Slots, Understanding};
use inkling_models::page::Facets;
pub use inkling_models::page::SortOrder;
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
    #[serde(default)]
    pub mode: SearchMode,
    /// Return each item's ranking features with it, for training the search ranker.
    #[serde(default)]
    pub explain: bool,
    /// How many of the ordered results the page skips.
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub sort: SortOrder,
    /// The weight of the meaning list against the words list in fusion, when the request's
    /// A/B variant sets one; the ranking configuration's otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic_weight: Option<f64>,
}

impl SearchRequest {
    /// A hybrid search for the first `k` results, by relevance, with no filter.
    pub fn new(user_id: impl Into<String>, query: impl Into<String>, k: usize) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: None,
            query: query.into(),
            k,
            filters: Filters::default(),
            mode: SearchMode::default(),
            explain: false,
            offset: 0,
            sort: SortOrder::default(),
            semantic_weight: None,
        }
    }

    /// Where the page ends among the ordered results.
    pub fn page_end(&self) -> usize {
        self.offset + self.k
    }
}

/// Which retrieval a search uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 only; the encoder is not involved at all, so it is the fastest.
    Lexical,
    /// Embedding similarity only.
    Vector,
    /// Both, fused by reciprocal rank; lexical alone on a node without an encoder.
    #[default]
    Hybrid,
}

impl SearchMode {
    pub fn uses_text(self) -> bool {
        self != Self::Vector
    }

    pub fn uses_vectors(self) -> bool {
        self != Self::Lexical
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendRequest {
    pub user_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    pub k: usize,
    #[serde(default)]
    pub filters: Filters,
    /// Return each item's model features with it, for training the ranker and debugging.
    #[serde(default)]
    pub explain: bool,
    /// Also recommend what the shopper has in the cart or is viewing ("buy again");
    /// evaluations that count repeated items as hits set it.
    #[serde(default)]
    pub buy_again: bool,
    /// The product page the recommendations are for, and what they should be to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<ItemContext>,
}

/// Recommendations around one product, as a product page shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemContext {
    pub item_id: String,
    pub relation: Relation,
}

/// What recommendations on a product page are to its product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Alternatives: the same kind of product ("similar items").
    #[default]
    Similar,
    /// Complements: other kinds of product shoppers take with it ("goes with").
    GoesWith,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedItem {
    pub product: Arc<Product>,
    pub score: f64,
    pub reasons: Vec<Reason>,
    /// The model's inputs, by feature name, when the request asked to explain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeMap<String, f32>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankedList {
    pub items: Vec<RankedItem>,
    /// Shards that failed or missed their deadline; the answer was built without them.
    pub missing_shards: Vec<MissingShard>,
    /// How many shards the catalog is split into, so callers can tell what share of the
    /// catalog the answer covers without knowing how shards are numbered or placed.
    #[serde(default)]
    pub shard_count: usize,
    /// What the query was understood to ask, for searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub understanding: Option<Understanding>,
    /// What the answer relaxed because it would otherwise be empty, in words for the
    /// shopper: "no Coffee Mugs from Coffee; showing all Coffee Mugs".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Where the next page starts, when the matches hold more (searches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
    /// Facet counts over the matches the pages come from (searches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facets: Option<Facets>,
}

/// The request's explicit filters, completed by the constraints understood from the
/// dialogue. A price bound understood with its currency ("8000元以内") holds in that
/// currency; an explicit bound keeps the currency the request named with it.
pub fn effective_filters(explicit: &Filters, understood: &Slots) -> Filters {
    let or_understood = |explicit: &Vec<String>, understood: &Option<String>| {
        if explicit.is_empty() {
            understood.iter().cloned().collect()
        } else {
            explicit.clone()
        }
    };
    let currency = if explicit.has_price_bound() {
        explicit.currency.clone()
    } else {
        understood.currency.clone()
    };
    Filters {
        category: or_understood(&explicit.category, &understood.category),
        brand: or_understood(&explicit.brand, &understood.brand),
        price_min: explicit.price_min.or(understood.price_min),
        price_max: explicit.price_max.or(understood.price_max),
        currency: currency.or_else(|| explicit.currency.clone()),
        attributes: explicit.attributes.clone(),
        include_out_of_stock: explicit.include_out_of_stock,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingShard {
    pub shard: usize,
    pub error: String,
}
