//! The public types of HTTP API v1: what clients send and what they get back.
//!
//! These are deliberately separate from the actor protocol and the domain model, so actors
//! can change without changing the API; [`crate::convert`] maps between the two explicitly.
//! Every request type rejects unknown fields, nested ones included, and checks its string
//! limits ([`crate::limits`]) with messages that name the field by its path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{
    self, CURRENCY_BYTES, Invalid, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES, MAX_BRAND_BYTES, MAX_CATEGORY_BYTES, MAX_CATEGORY_LEVELS, MAX_ID_BYTES,
    MAX_QUERY_BYTES, MAX_TITLE_BYTES,
};

/// The currency of a product that names none.
pub const DEFAULT_CURRENCY: &str = "USD";

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// `PUT /v1/products`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductBatch {
    pub products: Vec<ProductBody>,
}

/// One product to create or replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    pub id: String,
    pub title: String,
    /// From the broadest category to the narrowest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category_path: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    pub price: f64,
    /// An ISO 4217 code; [`DEFAULT_CURRENCY`] when absent.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// 0 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f32>,
    #[serde(default = "default_true")]
    pub in_stock: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

fn default_currency() -> String {
    DEFAULT_CURRENCY.to_string()
}

fn default_true() -> bool {
    true
}

impl ProductBody {
    /// Checks the API's limits; `path` names this product in the request, e.g. `products[3]`.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        limits::required(&format!("{path}.id"), &self.id, MAX_ID_BYTES)?;
        limits::required(&format!("{path}.title"), &self.title, MAX_TITLE_BYTES)?;
        let levels = format!("{path}.category_path");
        limits::at_most_entries(&levels, self.category_path.len(), MAX_CATEGORY_LEVELS)?;
        for (index, level) in self.category_path.iter().enumerate() {
            limits::at_most(&format!("{levels}[{index}]"), level, MAX_CATEGORY_BYTES)?;
        }
        limits::optional(
            &format!("{path}.brand"),
            self.brand.as_deref(),
            MAX_BRAND_BYTES,
        )?;
        let currency = format!("{path}.currency");
        limits::at_most(&currency, &self.currency, CURRENCY_BYTES)?;
        if self.currency.len() != CURRENCY_BYTES
            || !self.currency.bytes().all(|byte| byte.is_ascii_uppercase())
        {
            return Err(format!(
                "`{currency}` must be a 3-letter ISO code such as CNY, got {:?}",
                self.currency
            ));
        }
        let attributes = format!("{path}.attributes");
        limits::at_most_entries(&attributes, self.attributes.len(), MAX_ATTRIBUTES)?;
        for (key, value) in &self.attributes {
            if key.len() > MAX_ATTRIBUTE_KEY_BYTES {
                return Err(format!(
                    "a key of `{attributes}` is longer than {MAX_ATTRIBUTE_KEY_BYTES} bytes"
                ));
            }
            limits::at_most(
                &format!("{attributes}.{key}"),
                value,
                MAX_ATTRIBUTE_VALUE_BYTES,
            )?;
        }
        Ok(())
    }
}

/// `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<EventBody>,
}

/// One shopper event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Required by every type but `search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// Required by `search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Milliseconds since the Unix epoch; the server's clock when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// With `false` the event updates only the shopper's own profile, not shared signals.
    #[serde(default = "default_true")]
    pub learn: bool,
    /// The client's idempotency key: an event whose key the shopper's profile has seen
    /// already is acknowledged again but not applied twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl EventBody {
    /// Checks the API's limits; `path` names this event in the request, e.g. `events[3]`.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        limits::required(&format!("{path}.user_id"), &self.user_id, MAX_ID_BYTES)?;
        for (field, value) in [
            ("session_id", &self.session_id),
            ("item_id", &self.item_id),
            ("event_id", &self.event_id),
        ] {
            limits::optional(&format!("{path}.{field}"), value.as_deref(), MAX_ID_BYTES)?;
        }
        limits::optional(
            &format!("{path}.query"),
            self.query.as_deref(),
            MAX_QUERY_BYTES,
        )
    }
}

/// What a shopper did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    Click,
    AddToCart,
    Purchase,
    Search,
}

/// `POST /v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub user_id: String,
    /// The conversation this query belongs to; follow-ups refine earlier turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub query: String,
    pub k: usize,
    #[serde(default)]
    pub filters: FiltersBody,
    #[serde(default)]
    pub mode: SearchMode,
    /// Return each item's ranking features with it, for training the search ranker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

impl SearchBody {
    pub fn validate(&self) -> Result<(), Invalid> {
        limits::required("user_id", &self.user_id, MAX_ID_BYTES)?;
        limits::optional("session_id", self.session_id.as_deref(), MAX_ID_BYTES)?;
        limits::required("query", &self.query, MAX_QUERY_BYTES)?;
        limits::k(self.k)?;
        self.filters.validate("filters")
    }
}

/// Which retrieval a search uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 only; no encoder involved.
    Lexical,
    /// Embedding neighbours only.
    Vector,
    /// Both, fused.
    #[default]
    Hybrid,
}

/// `POST /v1/recommend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendBody {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub k: usize,
    #[serde(default)]
    pub filters: FiltersBody,
    /// Return each item's model features with it.
    #[serde(default)]
    pub explain: bool,
    /// Also recommend what is in the shopper's cart and the item being viewed (their
    /// newest view); by default neither is shown again.
    #[serde(default)]
    pub buy_again: bool,
}

impl RecommendBody {
    pub fn validate(&self) -> Result<(), Invalid> {
        limits::required("user_id", &self.user_id, MAX_ID_BYTES)?;
        limits::optional("session_id", self.session_id.as_deref(), MAX_ID_BYTES)?;
        limits::k(self.k)?;
        self.filters.validate("filters")
    }
}

/// Hard constraints every result satisfies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersBody {
    /// Any level of the category path, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
}

impl FiltersBody {
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        limits::optional(
            &format!("{path}.category"),
            self.category.as_deref(),
            MAX_CATEGORY_BYTES,
        )?;
        limits::optional(
            &format!("{path}.brand"),
            self.brand.as_deref(),
            MAX_BRAND_BYTES,
        )
    }
}

// ---------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------

/// `PUT /v1/products` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsertAnswer {
    pub upserted: usize,
}

/// `DELETE /v1/products/{id}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteAnswer {
    pub deleted: String,
}

/// `DELETE /v1/users/{id}` answer: given once the erasure is committed on a quorum of the
/// user's partition; every replica applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasedAnswer {
    pub erased: String,
}

/// `POST /v1/events` answer: given only once every event of the batch is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsAnswer {
    pub accepted: usize,
    pub durable: bool,
    /// Per partition written: the raft term and leader id that committed the events, so a
    /// client (the chaos checker) can verify that one owner acknowledged each term.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<CommitView>,
}

/// One partition's commit of an event batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitView {
    pub partition: u16,
    pub term: u64,
    pub leader: u64,
}

/// The answer to a search or a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedAnswer {
    pub items: Vec<ItemAnswer>,
    /// Whether every part of the catalog's index answered.
    pub complete: bool,
    /// The share of the catalog's index partitions that answered, from 0 to 1.
    pub coverage: f64,
    /// Human-readable notes on how the answer was degraded; empty when `complete`.
    pub warnings: Vec<String>,
    /// What a search relaxed because it would otherwise have found nothing, in words for
    /// the shopper ("no Coffee Mugs from Coffee; showing all Coffee Mugs"); absent when
    /// every constraint held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// What the query was understood to ask (searches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub understanding: Option<UnderstandingView>,
    pub took_ms: f64,
}

/// One ranked product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAnswer {
    pub product: ProductView,
    pub score: f64,
    pub reasons: Vec<String>,
    /// The model's inputs by feature name, when the request asked to explain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeMap<String, f32>>,
}

/// A product as answers show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductView {
    pub id: String,
    pub title: String,
    pub category_path: Vec<String>,
    pub brand: Option<String>,
    pub price: f64,
    pub currency: String,
    pub rating: Option<f32>,
    pub in_stock: bool,
    pub attributes: BTreeMap<String, String>,
}

/// What a search query was understood to ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnderstandingView {
    pub intent: Intent,
    pub confidence: f32,
    /// Whether this turn refined the previous one rather than starting a new topic.
    pub follow_up: bool,
    /// Constraints stated in this turn alone.
    pub turn: ConstraintsView,
    /// Constraints in force after this turn: the ones the search applied.
    pub constraints: ConstraintsView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Browse,
    Purchase,
    Compare,
    Refine,
    PriceCheck,
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConstraintsView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// How sure the reading of `category` is, 0 to 1; search filters by it only from 0.8
    /// (and only when that leaves results), below it the category only boosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// How sure the reading of `brand` is, as for the category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<Preference>,
}

/// How the shopper wants results ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    BestValue,
    Cheapest,
    Premium,
    BestRated,
    Newest,
}

/// `GET /v1/users/{id}/profile`: current affinities rather than raw decayed sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileView {
    pub user_id: String,
    pub event_count: u64,
    pub updated_at_ms: u64,
    pub top_categories: Vec<Affinity>,
    pub top_brands: Vec<Affinity>,
    /// Typical price of items of interest, as a (low, high) band.
    pub price_band: Option<(f64, f64)>,
    pub recent_items: Vec<RecentItemView>,
    pub recent_queries: Vec<RecentQueryView>,
    pub purchased: Vec<String>,
    /// The shopper segment from the last `inkling profile build`.
    pub segment: Option<u32>,
    /// xxh3 hashes of the newest idempotency keys (`event_id`) applied, oldest first: a
    /// client can check that an acknowledged event is in the profile, exactly once.
    #[serde(default)]
    pub applied_event_keys: Vec<u64>,
}

/// A category or brand with its current strength, the strongest being 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affinity {
    pub name: String,
    pub affinity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentItemView {
    pub item_id: String,
    pub kind: EventType,
    pub at_ms: u64,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentQueryView {
    pub query: String,
    pub at_ms: u64,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    pub status: String,
    pub products: usize,
    pub active_sessions: u64,
    /// Queue and cache figures of the model pool; null on a node without an encoder.
    pub model_pool: Option<ModelPoolView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPoolView {
    pub queued_texts: u64,
    pub batches: u64,
    pub texts_encoded: u64,
    pub cache_hits: u64,
    pub rejected: u64,
}

/// Every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One of `invalid_request`, `invalid_json`, `unsupported_media_type`,
    /// `payload_too_large`, `not_found`, `overloaded`, `unavailable`, `storage`.
    pub code: String,
    pub message: String,
}
