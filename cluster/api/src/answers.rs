//! What clients get back, errors included.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::requests::{EventBody, EventType};

/// `PUT /v1/products` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpsertAnswer {
    /// Products written: a product the batch names twice is written once, as its last
    /// version.
    pub upserted: usize,
}

/// `DELETE /v1/products/{id}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeleteAnswer {
    pub deleted: String,
}

/// `DELETE /v1/users/{id}` answer: given once the erasure is committed on a quorum of the
/// user's partition; every replica applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErasedAnswer {
    pub erased: String,
}

/// `POST /v1/events` answer: given only once every event of the batch is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventsAnswer {
    pub accepted: usize,
    pub durable: bool,
    /// Only when the batch asked for `debug`: per partition written, the raft term and
    /// leader id that committed the events, so a client (the chaos checker) can verify
    /// that one owner acknowledged each term.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<CommitView>,
}

/// One partition's commit of an event batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommitView {
    pub partition: u16,
    pub term: u64,
    pub leader: u64,
}

/// The answer to a search or a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RankedAnswer {
    /// This answer's id: events on its items quote it (`request_id`, with `position`) so
    /// that clicks, carts and purchases are counted for the variant that served it.
    #[serde(default)]
    pub request_id: String,
    /// The A/B variant that served it.
    #[serde(default)]
    pub variant: String,
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
    /// The `offset` of the next page, when the best matches hold more (searches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
    /// How many of the best matches fall under each category, brand and price range
    /// (searches only): counted over the matches the pages come from, before paging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facets: Option<FacetsView>,
    pub took_ms: f64,
}

/// Facet counts of a search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FacetsView {
    /// By the narrowest level of the category path, most products first.
    pub category: Vec<FacetCountView>,
    pub brand: Vec<FacetCountView>,
    /// Price ranges per currency, the most common currency first, cheapest first.
    pub price: Vec<PriceBucketView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FacetCountView {
    pub value: String,
    pub count: usize,
}

/// Products priced from `min` (included) to `max` (excluded) in `currency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriceBucketView {
    pub currency: String,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

/// One ranked product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemAnswer {
    pub product: ProductView,
    pub score: f64,
    pub reasons: Vec<ReasonView>,
    /// The model's inputs by feature name, when the request asked to explain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeMap<String, f32>>,
}

/// Why an item is shown. `code` is stable (a storefront may key its own wording on it),
/// `params` holds the values the text quotes, and `text` is written in the language the
/// request's `Accept-Language` prefers among English and Chinese.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasonView {
    pub code: String,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    pub text: String,
}

/// A product as answers show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at_ms: Option<u64>,
}

/// What a search query was understood to ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnderstandingView {
    pub intent: Intent,
    pub confidence: f32,
    /// Whether this turn refined the previous one rather than starting a new topic.
    pub follow_up: bool,
    /// Constraints stated in this turn alone.
    pub turn: ConstraintsView,
    /// Constraints in force after this turn: the ones the search applied.
    pub constraints: ConstraintsView,
    /// What was searched for: the query, or on a follow-up the query that started the
    /// topic ("有没有8000元以内的？" names no product of its own).
    #[serde(default)]
    pub topic: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Browse,
    Purchase,
    Compare,
    Refine,
    PriceCheck,
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    BestValue,
    Cheapest,
    Premium,
    BestRated,
    Newest,
}

/// `GET /v1/users/{id}/profile`: current affinities rather than raw decayed sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
}

/// A category or brand with its current strength, the strongest being 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Affinity {
    pub name: String,
    pub affinity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecentItemView {
    pub item_id: String,
    pub kind: EventType,
    pub at_ms: u64,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecentQueryView {
    pub query: String,
    pub at_ms: u64,
}

/// `GET /v1/users/{id}/export` answer: everything the cluster stores about the user, as
/// the leader of the user's partition holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserExport {
    pub user_id: String,
    /// When the export was read, in milliseconds since the Unix epoch.
    pub exported_at_ms: u64,
    /// The profile as the API shows it; absent when nothing is stored for the user.
    pub profile: Option<ProfileView>,
    /// The stored profile record itself, every field as kept (decayed sums, sessions of
    /// recent items, idempotency key hashes): what `profile` is computed from.
    pub stored_profile: Option<serde_json::Value>,
    /// xxh3 hashes of the newest idempotency keys (`event_id`) the profile applied, oldest
    /// first: whether an acknowledged event is in the profile, exactly once.
    #[serde(default)]
    pub applied_event_keys: Vec<u64>,
    /// The user's events that the replicated log still holds, oldest first.
    pub events: Vec<EventBody>,
    /// Whether `events` is every event the user sent: false once older log entries were
    /// compacted into a snapshot, after which they survive only as `stored_profile`.
    pub events_complete: bool,
    /// Whether a live session holds conversational context for the user (the dialogue of
    /// the current session, never stored; it ends with the session).
    pub active_session: bool,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    pub status: String,
    pub products: usize,
    pub active_sessions: u64,
    /// Queue and cache figures of the model pool; null on a node without an encoder.
    pub model_pool: Option<ModelPoolView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelPoolView {
    pub queued_texts: u64,
    pub batches: u64,
    pub texts_encoded: u64,
    pub cache_hits: u64,
    pub rejected: u64,
}

/// Every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorAnswer {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `invalid_request`, `invalid_json`, `unsupported_media_type`,
    /// `payload_too_large`, `unauthenticated`, `forbidden`, `rate_limited`, `not_found`,
    /// `method_not_allowed`, `not_a_gateway`, `overloaded`, `not_ready`, `unavailable`,
    /// `timeout`, `storage` or `insufficient_storage`.
    pub code: String,
    pub message: String,
}

/// `POST /v1/admin/members/{name}/admit`: the node named may now hold replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdmittedAnswer {
    pub admitted: String,
}
