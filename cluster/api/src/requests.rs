//! What clients send: every request type rejects unknown fields, nested ones included,
//! and checks its string limits ([`crate::limits`]) with messages that name the field by
//! its path in the request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::limits::{
    self, Invalid, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES,
    MAX_BRAND_BYTES, MAX_CATEGORY_BYTES, MAX_CATEGORY_LEVELS, MAX_FILTER_VALUES, MAX_OFFSET,
    MAX_POSITION, MAX_QUERY_BYTES, MAX_TIME_MS, MAX_TITLE_BYTES, TimeWindow,
};

/// The currency of a product that names none.
pub const DEFAULT_CURRENCY: &str = "USD";

/// `PUT /v1/products`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBatch {
    #[schema(min_items = 1, max_items = 10000)]
    pub products: Vec<ProductBody>,
}

/// One product to create or replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    #[schema(schema_with = crate::schema::required_id)]
    pub id: String,
    #[schema(schema_with = crate::schema::title)]
    pub title: String,
    /// From the broadest category to the narrowest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = crate::schema::category_path)]
    pub category_path: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_brand)]
    pub brand: Option<String>,
    pub price: f64,
    /// An ISO 4217 code; [`DEFAULT_CURRENCY`] when absent.
    #[serde(default = "default_currency")]
    #[schema(schema_with = crate::schema::currency)]
    pub currency: String,
    /// 0 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_rating)]
    pub rating: Option<f64>,
    #[serde(default = "default_true")]
    pub in_stock: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = crate::schema::attributes)]
    pub attributes: BTreeMap<String, String>,
    /// When the shop listed the product, in milliseconds since the Unix epoch: the order
    /// of `sort: newest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_time_ms)]
    pub listed_at_ms: Option<u64>,
}

fn default_currency() -> String {
    DEFAULT_CURRENCY.to_string()
}

fn default_true() -> bool {
    true
}

impl ProductBody {
    /// A product with only its id, title and price: in stock, in the default currency,
    /// with no category, brand, rating or attributes.
    pub fn new(id: impl Into<String>, title: impl Into<String>, price: f64) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            category_path: Vec::new(),
            brand: None,
            price,
            currency: default_currency(),
            rating: None,
            in_stock: true,
            attributes: BTreeMap::new(),
            listed_at_ms: None,
        }
    }

    /// Checks the API's limits; `path` names this product in the request, e.g. `products[3]`.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        limits::id(&format!("{path}.id"), &self.id)?;
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
        limits::currency(&format!("{path}.currency"), &self.currency)?;
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
        if let Some(rating) = self.rating
            && !(0.0..=5.0).contains(&rating)
        {
            return Err(format!(
                "`{path}.rating` must be between 0 and 5, got {rating}"
            ));
        }
        match self.listed_at_ms {
            Some(listed) if listed > MAX_TIME_MS => Err(format!(
                "`{path}.listed_at_ms` is {listed}, after the year 9999 (at most {MAX_TIME_MS} milliseconds since the Unix epoch)"
            )),
            _ => Ok(()),
        }
    }
}

/// `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    #[schema(min_items = 1, max_items = 10000)]
    pub events: Vec<EventBody>,
    /// Also answer the raft commits that made the events durable (partition, term,
    /// leader): for the chaos checker and for debugging, not for storefronts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
}

impl EventBatch {
    pub fn new(events: Vec<EventBody>) -> Self {
        Self {
            events,
            debug: false,
        }
    }
}

/// One shopper event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// Who the shopper is; a visitor without an account may send `session_id` alone and
    /// is known as `session:<session_id>` (see [`shopper_id`]).
    #[serde(default)]
    #[schema(schema_with = crate::schema::id)]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub session_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Required by every type but `search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub item_id: Option<String>,
    /// Required by `search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_query)]
    pub query: Option<String>,
    /// Milliseconds since the Unix epoch; the server's clock when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_time_ms)]
    pub timestamp: Option<u64>,
    /// With `false` the event updates only the shopper's own profile, not shared signals.
    #[serde(default = "default_true")]
    pub learn: bool,
    /// The client's idempotency key: an event whose key the shopper's profile has seen
    /// already is acknowledged again but not applied twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub event_id: Option<String>,
    /// The `request_id` of the search or recommendation whose result the shopper acted on:
    /// a click, cart or purchase quoting it is counted for that answer's variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub request_id: Option<String>,
    /// Where the item was in that answer, from 1 (`offset` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_position)]
    pub position: Option<u32>,
}

impl EventBody {
    /// An event of `kind` with no item, query, session or key, stamped by the server and
    /// learnt from.
    pub fn new(user_id: impl Into<String>, kind: EventType) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: None,
            kind,
            item_id: None,
            query: None,
            timestamp: None,
            learn: true,
            event_id: None,
            request_id: None,
            position: None,
        }
    }

    /// An event of `kind` on `item_id` (every kind but `search`).
    pub fn on_item(
        user_id: impl Into<String>,
        kind: EventType,
        item_id: impl Into<String>,
    ) -> Self {
        Self {
            item_id: Some(item_id.into()),
            ..Self::new(user_id, kind)
        }
    }

    /// Checks the API's limits; `path` names this event in the request, e.g. `events[3]`,
    /// and `accepted` the times the node takes.
    pub fn validate(&self, path: &str, accepted: &TimeWindow) -> Result<(), Invalid> {
        check_shopper(
            &format!("{path}."),
            &self.user_id,
            self.session_id.as_deref(),
        )?;
        for (field, value) in [
            ("session_id", &self.session_id),
            ("item_id", &self.item_id),
            ("event_id", &self.event_id),
        ] {
            limits::optional_id(&format!("{path}.{field}"), value.as_deref())?;
        }
        limits::optional(
            &format!("{path}.query"),
            self.query.as_deref(),
            MAX_QUERY_BYTES,
        )?;
        self.validate_attribution(path)?;
        match self.timestamp {
            Some(timestamp) => accepted.check(&format!("{path}.timestamp"), timestamp),
            None => Ok(()),
        }
    }

    /// A `request_id` and `position` say which answer led to an action on an item: only a
    /// click, cart or purchase has one, and a position needs its request.
    fn validate_attribution(&self, path: &str) -> Result<(), Invalid> {
        limits::optional_id(&format!("{path}.request_id"), self.request_id.as_deref())?;
        let attributed = self.request_id.is_some() || self.position.is_some();
        if attributed && !self.kind.follows_an_answer() {
            return Err(format!(
                "`{path}.request_id` and `{path}.position` belong to click, add_to_cart and purchase events"
            ));
        }
        if self.position.is_some() && self.request_id.is_none() {
            return Err(format!("`{path}.position` needs `{path}.request_id`"));
        }
        if let Some(position) = self.position
            && !(1..=MAX_POSITION).contains(&position)
        {
            return Err(format!(
                "`{path}.position` must be between 1 and {MAX_POSITION}, got {position}"
            ));
        }
        Ok(())
    }
}

/// The prefix of the id a visitor without an account is known by.
pub const SESSION_SHOPPER_PREFIX: &str = "session:";

/// The id a shopper's profile and partition are keyed by: the `user_id`, or for a visitor
/// who sent only a `session_id`, `session:<session_id>`.
pub fn shopper_id(user_id: String, session_id: Option<&str>) -> String {
    match session_id {
        Some(session_id) if user_id.is_empty() => format!("{SESSION_SHOPPER_PREFIX}{session_id}"),
        _ => user_id,
    }
}

/// A request names its shopper by `user_id`, or by `session_id` alone; `prefix` is the
/// path of the request's fields (`events[3].`).
fn check_shopper(prefix: &str, user_id: &str, session_id: Option<&str>) -> Result<(), Invalid> {
    if user_id.is_empty() && session_id.is_some() {
        return Ok(());
    }
    if user_id.is_empty() {
        return Err(format!(
            "`{prefix}user_id` must not be empty: send it, or `{prefix}session_id` alone for a visitor without an account"
        ));
    }
    limits::id(&format!("{prefix}user_id"), user_id)
}

/// What a shopper did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    Click,
    AddToCart,
    Purchase,
    Search,
}

impl EventType {
    /// Whether the action can follow a ranked answer: a click, cart or purchase.
    pub fn follows_an_answer(self) -> bool {
        matches!(self, Self::Click | Self::AddToCart | Self::Purchase)
    }
}

/// `POST /v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// Who the shopper is; a visitor without an account may send `session_id` alone and
    /// is known as `session:<session_id>` (see [`shopper_id`]).
    #[serde(default)]
    #[schema(schema_with = crate::schema::id)]
    pub user_id: String,
    /// The conversation this query belongs to; follow-ups refine earlier turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub session_id: Option<String>,
    #[schema(schema_with = crate::schema::query)]
    pub query: String,
    #[schema(schema_with = crate::schema::k)]
    pub k: usize,
    #[serde(default)]
    pub filters: FiltersBody,
    #[serde(default)]
    pub mode: SearchMode,
    /// Return each item's ranking features with it, for training the search ranker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
    /// How many results to skip: the page starts there; at most
    /// [`MAX_OFFSET`](crate::limits::MAX_OFFSET). The answer's `next_offset` is the next
    /// page's.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schema(schema_with = crate::schema::offset)]
    pub offset: usize,
    /// The order of the results: relevance, or a reordering of the best matches.
    #[serde(default)]
    pub sort: SortOrder,
    /// The A/B variant to serve; by default the one the user id hashes into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub variant: Option<String>,
}

fn is_zero(value: &usize) -> bool {
    *value == 0
}

/// The order of a search's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// As ranked: relevance to the query, personalised.
    #[default]
    Relevance,
    /// Cheapest first (products in the most common currency first).
    PriceAsc,
    /// Dearest first (products in the most common currency first).
    PriceDesc,
    /// Most recently listed first (`listed_at_ms`); products without one last.
    Newest,
    /// Best-rated first; unrated products last.
    Rating,
}

impl SearchBody {
    /// A hybrid search for `k` items with no filter, in no conversation.
    pub fn new(user_id: impl Into<String>, query: impl Into<String>, k: usize) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: None,
            query: query.into(),
            k,
            filters: FiltersBody::default(),
            mode: SearchMode::default(),
            explain: false,
            offset: 0,
            sort: SortOrder::default(),
            variant: None,
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        check_shopper("", &self.user_id, self.session_id.as_deref())?;
        limits::optional_id("session_id", self.session_id.as_deref())?;
        limits::required("query", &self.query, MAX_QUERY_BYTES)?;
        limits::k(self.k)?;
        limits::optional_id("variant", self.variant.as_deref())?;
        if self.offset > MAX_OFFSET {
            return Err(format!(
                "`offset` must be at most {MAX_OFFSET}, got {}",
                self.offset
            ));
        }
        self.filters.validate("filters")
    }
}

/// Which retrieval a search uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendBody {
    /// Who the shopper is; a visitor without an account may send `session_id` alone and
    /// is known as `session:<session_id>` (see [`shopper_id`]).
    #[serde(default)]
    #[schema(schema_with = crate::schema::id)]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub session_id: Option<String>,
    #[schema(schema_with = crate::schema::k)]
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
    /// The A/B variant to serve; by default the one the user id hashes into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub variant: Option<String>,
    /// The product whose page shows the recommendations: they are its alternatives or what
    /// goes with it (`relation`), never the product itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_id)]
    pub item_id: Option<String>,
    /// What the recommendations are to `item_id`: `similar` (the default) or `goes_with`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<Relation>,
}

/// What recommendations on a product page are to its product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Alternatives: the same kind of product.
    #[default]
    Similar,
    /// Complements: other kinds of product shoppers take with it.
    GoesWith,
}

impl RecommendBody {
    /// `k` recommendations with no filter, in no conversation.
    pub fn new(user_id: impl Into<String>, k: usize) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: None,
            k,
            filters: FiltersBody::default(),
            explain: false,
            buy_again: false,
            variant: None,
            item_id: None,
            relation: None,
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        check_shopper("", &self.user_id, self.session_id.as_deref())?;
        limits::optional_id("session_id", self.session_id.as_deref())?;
        limits::k(self.k)?;
        limits::optional_id("variant", self.variant.as_deref())?;
        limits::optional_id("item_id", self.item_id.as_deref())?;
        if self.relation.is_some() && self.item_id.is_none() {
            return Err("`relation` needs `item_id`: the product the page shows".to_string());
        }
        self.filters.validate("filters")
    }
}

/// Hard constraints every result satisfies. Within a field the values are alternatives
/// (OR); the fields all hold together (AND).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FiltersBody {
    /// Any of these categories, at any level of the category path, case-insensitively: one
    /// string or a list.
    #[serde(default, skip_serializing_if = "AnyOf::is_empty")]
    #[schema(schema_with = crate::schema::category_filter)]
    pub category: AnyOf,
    /// Any of these brands, case-insensitively: one string or a list.
    #[serde(default, skip_serializing_if = "AnyOf::is_empty")]
    #[schema(schema_with = crate::schema::brand_filter)]
    pub brand: AnyOf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
    /// The ISO 4217 currency of the price bounds: products priced in another currency
    /// never pass a price bound. Without it, a bound understood from the query holds in
    /// the currency the query named ("8000元以内"), and an explicit bound in each
    /// product's own currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::optional_currency)]
    pub currency: Option<String>,
    /// Attribute name → the values accepted (one string or a list), case-insensitively.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = crate::schema::attribute_filter)]
    pub attributes: BTreeMap<String, AnyOf>,
    /// `true` (the default): only products in stock; `false`: products out of stock too.
    #[serde(default = "default_true")]
    pub in_stock: bool,
}

impl Default for FiltersBody {
    fn default() -> Self {
        Self {
            category: AnyOf::default(),
            brand: AnyOf::default(),
            price_min: None,
            price_max: None,
            currency: None,
            attributes: BTreeMap::new(),
            in_stock: true,
        }
    }
}

impl FiltersBody {
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        self.category
            .validate(&format!("{path}.category"), MAX_CATEGORY_BYTES)?;
        self.brand
            .validate(&format!("{path}.brand"), MAX_BRAND_BYTES)?;
        if let Some(currency) = &self.currency {
            limits::currency(&format!("{path}.currency"), currency)?;
        }
        let attributes = format!("{path}.attributes");
        limits::at_most_entries(&attributes, self.attributes.len(), MAX_ATTRIBUTES)?;
        for (name, values) in &self.attributes {
            limits::at_most(&attributes, name, MAX_ATTRIBUTE_KEY_BYTES)?;
            values.validate(&format!("{attributes}.{name}"), MAX_ATTRIBUTE_VALUE_BYTES)?;
        }
        Ok(())
    }
}

/// Alternatives for one filter field: JSON takes one string or a list of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AnyOf(pub Vec<String>);

impl AnyOf {
    pub fn one(value: impl Into<String>) -> Self {
        Self(vec![value.into()])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn validate(&self, path: &str, max: usize) -> Result<(), Invalid> {
        limits::at_most_entries(path, self.0.len(), MAX_FILTER_VALUES)?;
        if let [one] = self.0.as_slice() {
            return limits::required(path, one, max);
        }
        for (index, value) in self.0.iter().enumerate() {
            limits::required(&format!("{path}[{index}]"), value, max)?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for AnyOf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a string or a list of strings")]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Self(vec![one]),
            OneOrMany::Many(many) => Self(many),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unknown fields are refused at every depth of every request type.
    #[test]
    fn every_request_type_rejects_unknown_fields() {
        fn refuses<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str, field: &str) {
            let error = serde_json::from_str::<T>(json).unwrap_err().to_string();
            assert!(
                error.contains(&format!("unknown field `{field}`")),
                "{json}: {error}"
            );
        }
        let product = r#"{"id":"p","title":"t","price":1"#;
        refuses::<ProductBatch>(&format!(r#"{{"products":[{product}}}],"x":1}}"#), "x");
        refuses::<ProductBatch>(
            &format!(r#"{{"products":[{product},"colour":1}}]}}"#),
            "colour",
        );
        let event = r#"{"user_id":"u","type":"view","item_id":"i""#;
        refuses::<EventBatch>(&format!(r#"{{"events":[{event}}}],"x":1}}"#), "x");
        refuses::<EventBatch>(
            &format!(r#"{{"events":[{event},"sesion_id":"s"}}]}}"#),
            "sesion_id",
        );
        refuses::<SearchBody>(r#"{"user_id":"u","query":"q","k":1,"filter":{}}"#, "filter");
        refuses::<SearchBody>(
            r#"{"user_id":"u","query":"q","k":1,"filters":{"colour":"red"}}"#,
            "colour",
        );
        refuses::<RecommendBody>(r#"{"user_id":"u","k":1,"explian":true}"#, "explian");
        refuses::<RecommendBody>(
            r#"{"user_id":"u","k":1,"filters":{"colour":"red"}}"#,
            "colour",
        );
    }

    /// Each case: a product as JSON, and the validation error (a fragment) or none.
    #[test]
    fn products_are_checked_against_the_limits_with_their_path() {
        let long = "x".repeat(129);
        let cases = [
            (r#"{"id":"p","title":"t","price":1}"#.to_string(), None),
            (
                format!(r#"{{"id":"{long}","title":"t","price":1}}"#),
                Some("`products[2].id` is longer than 128 bytes"),
            ),
            (
                r#"{"id":"p","title":"t","price":1,"currency":"cny"}"#.to_string(),
                Some("`products[2].currency` must be a 3-letter ISO code"),
            ),
            (
                r#"{"id":"p","title":" ","price":1}"#.to_string(),
                Some("`products[2].title` must not be empty"),
            ),
        ];
        let unpriced: ProductBody = serde_json::from_str(&cases[0].0).unwrap();
        assert_eq!(unpriced.currency, DEFAULT_CURRENCY);
        for (json, expected) in cases {
            let body: ProductBody = serde_json::from_str(&json).unwrap();
            match (body.validate("products[2]"), expected) {
                (Ok(()), None) => {}
                (Err(error), Some(fragment)) => assert!(error.contains(fragment), "{error}"),
                (outcome, _) => panic!("{json}: {outcome:?}"),
            }
        }
    }

    /// Each case: an event as JSON, and the validation error (a fragment) or none.
    #[test]
    fn events_name_the_field_with_a_control_character_or_a_time_out_of_range() {
        let window = TimeWindow::around(1_000_000, 1_000, 10);
        let cases = [
            (r#"{"user_id":"u","type":"view","item_id":"i"}"#, None),
            (
                r#"{"user_id":"u","type":"view","item_id":"i","timestamp":1000000}"#,
                None,
            ),
            (
                r#"{"user_id":"u\u0000","type":"view","item_id":"i"}"#,
                Some("`events[3].user_id` contains the control character U+0000"),
            ),
            (
                r#"{"user_id":"u","type":"view","item_id":"i\n"}"#,
                Some("`events[3].item_id` contains the control character U+000A"),
            ),
            (
                r#"{"user_id":"u","type":"view","item_id":"i","session_id":"\u0007"}"#,
                Some("`events[3].session_id` contains"),
            ),
            (
                r#"{"user_id":"u","type":"view","item_id":"i","timestamp":9000000}"#,
                Some(
                    "`events[3].timestamp` is 9000000, outside the accepted range 999000 to 1000010",
                ),
            ),
        ];
        for (json, expected) in cases {
            let body: EventBody = serde_json::from_str(json).unwrap();
            match (body.validate("events[3]", &window), expected) {
                (Ok(()), None) => {}
                (Err(error), Some(fragment)) => assert!(error.contains(fragment), "{error}"),
                (outcome, _) => panic!("{json}: {outcome:?}"),
            }
        }
        let search = SearchBody::new("u\0", "q", 1);
        assert!(
            search
                .validate()
                .unwrap_err()
                .contains("`user_id` contains")
        );
        let product = ProductBody::new("p\u{1b}", "t", 1.0);
        assert!(
            product
                .validate("products[0]")
                .unwrap_err()
                .contains("`products[0].id`")
        );
    }

    /// A request serialises to what the server reads back: the client sends these types.
    #[test]
    fn requests_round_trip_through_json() {
        let search: SearchBody = serde_json::from_str(
            r#"{"user_id":"u","query":"q","k":3,"mode":"lexical","explain":true}"#,
        )
        .unwrap();
        let again: SearchBody =
            serde_json::from_str(&serde_json::to_string(&search).unwrap()).unwrap();
        assert_eq!(again, search);
        assert_eq!(search.mode, SearchMode::Lexical);
        assert!(search.validate().is_ok());
    }
}
