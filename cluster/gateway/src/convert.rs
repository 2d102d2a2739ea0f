//! Explicit conversions between the public API types ([`inkling_api`]) and the actor
//! protocol and domain model. Requests are checked against the API's limits first, then
//! against the domain's own rules, so every message names the field by its path in the
//! request.
//!
//! Both sides are other crates' types, so the conversions the handlers call are extension
//! traits (`batch.into_events(&window)`, `RankedAnswer::new(list, served, took_ms)`) and the rest are plain
//! functions: Rust allows no `From` between two foreign types.

use std::collections::{BTreeSet, HashSet};

use inkling_actors::model_pool::PoolStats;
use inkling_actors::protocol::{self, RankedItem, RankedList, RecommendRequest, SearchRequest};
use inkling_api::limits::{self, Invalid, TimeWindow};
use inkling_api::{
    Affinity, ConstraintsView, EventBatch, EventBody, EventType, FiltersBody, Intent, ItemAnswer,
    ModelPoolView, Preference, ProductBatch, ProductBody, ProductView, ProfileView, RankedAnswer,
    RecentItemView, RecentQueryView, RecommendBody, Relation, SearchBody, SearchMode, SortOrder,
    UnderstandingView,
};
use inkling_api::{FacetCountView, FacetsView, PriceBucketView, ReasonView, shopper_id};
use inkling_domain::{
    Attribution, Event, EventKind, Filters, Language, Product, Profile, Reason, RecentItem,
    RecentQuery,
};
use inkling_models::intent::{self, IntentClass, Slots, Understanding};
use inkling_models::page::{FacetCount, Facets};

/// How many categories and brands a profile view lists.
const PROFILE_TOP: usize = 10;

// ---------------------------------------------------------------------------------------
// Requests: API → domain and protocol
// ---------------------------------------------------------------------------------------

/// A product batch checked and converted for the catalog.
pub trait IntoProducts {
    fn into_products(self) -> Result<Vec<Product>, Invalid>;
}

impl IntoProducts for ProductBatch {
    /// Checks every product and converts the batch. A product named twice is written once,
    /// as its last version: what applying the batch in order would leave, without
    /// embedding and indexing the earlier versions for nothing.
    fn into_products(self) -> Result<Vec<Product>, Invalid> {
        limits::batch("products", self.products.len())?;
        let products = self
            .products
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let path = format!("products[{index}]");
                body.validate(&path)?;
                let product = product(body);
                product
                    .validate()
                    .map_err(|error| format!("{path}: {error}"))?;
                Ok(product)
            })
            .collect::<Result<Vec<_>, Invalid>>()?;
        Ok(last_version_of_each(products))
    }
}

/// The products in batch order, each id once, with its last version.
fn last_version_of_each(products: Vec<Product>) -> Vec<Product> {
    let mut seen = HashSet::new();
    let mut kept: Vec<Product> = products
        .into_iter()
        .rev()
        .filter(|product| seen.insert(product.id.clone()))
        .collect();
    kept.reverse();
    kept
}

fn product(body: ProductBody) -> Product {
    Product {
        id: body.id,
        title: body.title,
        category_path: body.category_path,
        brand: body.brand,
        price: body.price,
        currency: body.currency,
        // Checked against 0 to 5 as sent; stored at the catalog's precision.
        rating: body.rating.map(|rating| rating as f32),
        in_stock: body.in_stock,
        attributes: body.attributes,
        listed_at_ms: body.listed_at_ms,
    }
}

/// An event batch checked and converted for the shoppers' partitions.
pub trait IntoEvents {
    /// Every event's time, when it has one, must lie in `accepted`.
    fn into_events(self, accepted: &TimeWindow) -> Result<Vec<Event>, Invalid>;
}

impl IntoEvents for EventBatch {
    /// Checks every event and converts the batch.
    fn into_events(self, accepted: &TimeWindow) -> Result<Vec<Event>, Invalid> {
        limits::batch("events", self.events.len())?;
        self.events
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let path = format!("events[{index}]");
                body.validate(&path, accepted)?;
                let event = event(body);
                event
                    .validate()
                    .map_err(|error| format!("{path}: {error}"))?;
                Ok(event)
            })
            .collect()
    }
}

fn event(body: EventBody) -> Event {
    let attribution = body.request_id.map(|request_id| Attribution {
        request_id,
        position: body.position,
    });
    Event {
        user_id: shopper_id(body.user_id, body.session_id.as_deref()),
        session_id: body.session_id,
        kind: event_kind(body.kind),
        item_id: body.item_id,
        query: body.query,
        timestamp: body.timestamp,
        learn: body.learn,
        event_id: body.event_id,
        attribution,
    }
}

/// An event as the API shows it: for exports.
pub fn event_body(event: Event) -> EventBody {
    let (request_id, position) = match event.attribution {
        Some(attribution) => (Some(attribution.request_id), attribution.position),
        None => (None, None),
    };
    EventBody {
        request_id,
        position,
        user_id: event.user_id,
        session_id: event.session_id,
        kind: event_type(event.kind),
        item_id: event.item_id,
        query: event.query,
        timestamp: event.timestamp,
        learn: event.learn,
        event_id: event.event_id,
    }
}

fn event_kind(kind: EventType) -> EventKind {
    match kind {
        EventType::View => EventKind::View,
        EventType::Click => EventKind::Click,
        EventType::AddToCart => EventKind::AddToCart,
        EventType::Purchase => EventKind::Purchase,
        EventType::Search => EventKind::Search,
    }
}

fn event_type(kind: EventKind) -> EventType {
    match kind {
        EventKind::View => EventType::View,
        EventKind::Click => EventType::Click,
        EventKind::AddToCart => EventType::AddToCart,
        EventKind::Purchase => EventType::Purchase,
        EventKind::Search => EventType::Search,
    }
}

/// A search or recommendation checked and converted for the actors.
pub trait IntoRequest {
    type Request;
    fn into_request(self) -> Result<Self::Request, Invalid>;
}

impl IntoRequest for SearchBody {
    type Request = SearchRequest;

    /// Checks the request and converts it for the actors.
    fn into_request(self) -> Result<SearchRequest, Invalid> {
        self.validate()?;
        let request = SearchRequest {
            user_id: shopper_id(self.user_id, self.session_id.as_deref()),
            session_id: self.session_id,
            query: self.query,
            k: self.k,
            filters: filters(self.filters),
            mode: search_mode(self.mode),
            explain: self.explain,
            offset: self.offset,
            sort: sort_order(self.sort),
            // The gateway sets it from the request's A/B variant.
            semantic_weight: None,
        };
        request.filters.validate()?;
        Ok(request)
    }
}

impl IntoRequest for RecommendBody {
    type Request = RecommendRequest;

    /// Checks the request and converts it for the actors.
    fn into_request(self) -> Result<RecommendRequest, Invalid> {
        self.validate()?;
        let request = RecommendRequest {
            user_id: shopper_id(self.user_id, self.session_id.as_deref()),
            session_id: self.session_id,
            k: self.k,
            filters: filters(self.filters),
            explain: self.explain,
            buy_again: self.buy_again,
            item: self.item_id.map(|item_id| protocol::ItemContext {
                item_id,
                relation: match self.relation.unwrap_or_default() {
                    Relation::Similar => protocol::Relation::Similar,
                    Relation::GoesWith => protocol::Relation::GoesWith,
                },
            }),
        };
        request.filters.validate()?;
        Ok(request)
    }
}

fn filters(body: FiltersBody) -> Filters {
    Filters {
        category: body.category.0,
        brand: body.brand.0,
        price_min: body.price_min,
        price_max: body.price_max,
        currency: body.currency,
        attributes: body
            .attributes
            .into_iter()
            .map(|(name, values)| (name, values.0))
            .collect(),
        include_out_of_stock: !body.in_stock,
    }
}

fn sort_order(order: SortOrder) -> protocol::SortOrder {
    match order {
        SortOrder::Relevance => protocol::SortOrder::Relevance,
        SortOrder::PriceAsc => protocol::SortOrder::PriceAsc,
        SortOrder::PriceDesc => protocol::SortOrder::PriceDesc,
        SortOrder::Newest => protocol::SortOrder::Newest,
        SortOrder::Rating => protocol::SortOrder::Rating,
    }
}

fn search_mode(mode: SearchMode) -> protocol::SearchMode {
    match mode {
        SearchMode::Lexical => protocol::SearchMode::Lexical,
        SearchMode::Vector => protocol::SearchMode::Vector,
        SearchMode::Hybrid => protocol::SearchMode::Hybrid,
    }
}

// ---------------------------------------------------------------------------------------
// Answers: protocol and domain → API
// ---------------------------------------------------------------------------------------

/// Which answer this is, and the variant that served it.
pub struct Served {
    pub request_id: String,
    pub variant: String,
    /// The language reason texts are written in.
    pub language: Language,
}

/// The public form of a ranked list.
pub trait FromRankedList {
    fn new(list: RankedList, served: Served, took_ms: f64) -> Self;
}

impl FromRankedList for RankedAnswer {
    /// The public form of a ranked list: how much of the catalog answered, in words and as
    /// a share, never which shard numbers failed (those are logged).
    fn new(list: RankedList, served: Served, took_ms: f64) -> Self {
        let missing: BTreeSet<usize> = list.missing_shards.iter().map(|m| m.shard).collect();
        for shard in &list.missing_shards {
            tracing::warn!(shard = shard.shard, error = %shard.error, "answer built without a shard");
        }
        // An actor that does not report its shard count still leaves a consistent answer.
        let partitions = list.shard_count.max(missing.len());
        let answered = partitions - missing.len();
        let coverage = if partitions == 0 {
            1.0
        } else {
            answered as f64 / partitions as f64
        };
        inkling_ops::metrics::ANSWER_COVERAGE.observe(coverage);
        let warnings = if missing.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "{} of {partitions} index partitions failed or missed their deadline; these \
                 results cover about {:.0}% of the catalog",
                missing.len(),
                coverage * 100.0
            )]
        };
        Self {
            request_id: served.request_id,
            variant: served.variant,
            items: list
                .items
                .into_iter()
                .map(|item| item_answer(item, served.language))
                .collect(),
            complete: missing.is_empty(),
            coverage,
            warnings,
            notices: list.notices,
            understanding: list.understanding.map(understanding_view),
            next_offset: list.next_offset,
            facets: list.facets.map(facets_view),
            took_ms,
        }
    }
}

fn facets_view(facets: Facets) -> FacetsView {
    let counts = |counts: Vec<FacetCount>| {
        counts
            .into_iter()
            .map(|count| FacetCountView {
                value: count.value,
                count: count.count,
            })
            .collect()
    };
    FacetsView {
        category: counts(facets.category),
        brand: counts(facets.brand),
        price: facets
            .price
            .into_iter()
            .map(|bucket| PriceBucketView {
                currency: bucket.currency,
                min: bucket.min,
                max: bucket.max,
                count: bucket.count,
            })
            .collect(),
    }
}

fn item_answer(item: RankedItem, language: Language) -> ItemAnswer {
    ItemAnswer {
        product: product_view(&item.product),
        score: item.score,
        reasons: item
            .reasons
            .iter()
            .map(|reason| reason_view(reason, language))
            .collect(),
        features: item.features,
    }
}

/// A reason's code, its parameters (the serialised reason without its code) and its text.
fn reason_view(reason: &Reason, language: Language) -> ReasonView {
    // Through text rather than `to_value`: an `f32` rating then reads 4.3, as its own JSON
    // does, not the 4.300000190734863 of its widening to `f64`.
    let json = serde_json::to_string(reason).unwrap_or_default();
    let params = match serde_json::from_str(&json) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("code");
            fields
        }
        _ => serde_json::Map::new(),
    };
    ReasonView {
        code: reason.code().to_string(),
        params,
        text: reason.text(language),
    }
}

/// A product as answers show it: in ranked items and `GET /v1/products/{id}`.
pub fn product_view(product: &Product) -> ProductView {
    ProductView {
        id: product.id.clone(),
        title: product.title.clone(),
        category_path: product.category_path.clone(),
        brand: product.brand.clone(),
        price: product.price,
        currency: product.currency.clone(),
        rating: product.rating,
        in_stock: product.in_stock,
        attributes: product.attributes.clone(),
        listed_at_ms: product.listed_at_ms,
    }
}

fn understanding_view(understanding: Understanding) -> UnderstandingView {
    UnderstandingView {
        intent: intent_view(understanding.intent),
        confidence: understanding.confidence,
        follow_up: understanding.follow_up,
        turn: constraints_view(understanding.turn),
        constraints: constraints_view(understanding.constraints),
        topic: understanding.topic,
    }
}

fn intent_view(intent: IntentClass) -> Intent {
    match intent {
        IntentClass::Browse => Intent::Browse,
        IntentClass::Purchase => Intent::Purchase,
        IntentClass::Compare => Intent::Compare,
        IntentClass::Refine => Intent::Refine,
        IntentClass::PriceCheck => Intent::PriceCheck,
        IntentClass::Other => Intent::Other,
    }
}

fn constraints_view(slots: Slots) -> ConstraintsView {
    ConstraintsView {
        category: slots.category,
        category_confidence: slots.category_confidence,
        brand: slots.brand,
        brand_confidence: slots.brand_confidence,
        price_min: slots.price_min,
        price_max: slots.price_max,
        currency: slots.currency,
        attributes: slots.attributes,
        preference: slots.preference.map(preference_view),
    }
}

fn preference_view(preference: intent::Preference) -> Preference {
    match preference {
        intent::Preference::BestValue => Preference::BestValue,
        intent::Preference::Cheapest => Preference::Cheapest,
        intent::Preference::Premium => Preference::Premium,
        intent::Preference::BestRated => Preference::BestRated,
        intent::Preference::Newest => Preference::Newest,
    }
}

/// The public form of a stored profile.
pub trait FromProfile {
    fn new(profile: Profile, half_life_ms: u64, now_ms: u64) -> Self;
}

impl FromProfile for ProfileView {
    /// The profile as of `now_ms`: affinities decayed with `half_life_ms` and normalised so
    /// the strongest is 1.0, and the price band in currency units.
    fn new(profile: Profile, half_life_ms: u64, now_ms: u64) -> Self {
        let top = |affinities| {
            Profile::normalised(affinities, now_ms, half_life_ms)
                .into_iter()
                .take(PROFILE_TOP)
                .map(|(name, affinity)| Affinity { name, affinity })
                .collect()
        };
        let price_band = profile.price_affinity.band().map(|(mean, deviation)| {
            (
                cents((mean - deviation).exp()),
                cents((mean + deviation).exp()),
            )
        });
        Self {
            top_categories: top(&profile.category_affinity),
            top_brands: top(&profile.brand_affinity),
            price_band,
            user_id: profile.user_id,
            event_count: profile.event_count,
            updated_at_ms: profile.updated_at_ms,
            recent_items: profile
                .recent_items
                .into_iter()
                .map(recent_item_view)
                .collect(),
            recent_queries: profile
                .recent_queries
                .into_iter()
                .map(recent_query_view)
                .collect(),
            purchased: profile.purchased.into_iter().collect(),
            segment: profile.segment,
        }
    }
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

fn recent_item_view(item: RecentItem) -> RecentItemView {
    RecentItemView {
        item_id: item.item_id,
        kind: event_type(item.kind),
        at_ms: item.at_ms,
        session_id: item.session_id,
    }
}

fn recent_query_view(query: RecentQuery) -> RecentQueryView {
    RecentQueryView {
        query: query.query,
        at_ms: query.at_ms,
    }
}

/// The model pool's figures as `GET /healthz` shows them.
pub fn model_pool_view(stats: PoolStats) -> ModelPoolView {
    ModelPoolView {
        queued_texts: stats.queued_texts,
        batches: stats.batches,
        texts_encoded: stats.texts_encoded,
        cache_hits: stats.cache_hits,
        rejected: stats.rejected,
    }
}

/// The health handler's `ModelPoolView::from(stats)` (it imports this module under that
/// name) until it calls [`model_pool_view`] itself: no `From` between two foreign types.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use inkling_actors::protocol::MissingShard;

    use super::*;

    fn list(shard_count: usize, missing: &[usize]) -> RankedList {
        RankedList {
            items: Vec::new(),
            missing_shards: missing
                .iter()
                .map(|&shard| MissingShard {
                    shard,
                    error: format!("timed out: index shard {shard}"),
                })
                .collect(),
            shard_count,
            ..RankedList::default()
        }
    }

    /// Each case: shards, missing shard numbers, expected (complete, coverage, warnings).
    #[test]
    fn coverage_replaces_shard_numbers() {
        let cases: &[(usize, &[usize], bool, f64, usize)] = &[
            (4, &[], true, 1.0, 0),
            (4, &[1], false, 0.75, 1),
            (4, &[0, 3, 3], false, 0.5, 1),
            (1, &[0], false, 0.0, 1),
            (0, &[], true, 1.0, 0),
            (0, &[2], false, 0.0, 1),
        ];
        let histogram = &inkling_ops::metrics::ANSWER_COVERAGE;
        for &(shards, missing, complete, coverage, warnings) in cases {
            let (count, sum) = (histogram.get_sample_count(), histogram.get_sample_sum());
            let served = Served {
                request_id: "0123456789abcdef.default".into(),
                variant: "default".into(),
                language: Language::En,
            };
            let answer = RankedAnswer::new(list(shards, missing), served, 1.0);
            let case = format!("{shards} shards, {missing:?} missing: {answer:?}");
            // Other tests may observe at the same time: at least this answer was counted.
            assert!(histogram.get_sample_count() > count, "{case}: not observed");
            assert!(
                histogram.get_sample_sum() >= sum + coverage - 1e-9,
                "{case}"
            );
            assert_eq!(answer.complete, complete, "{case}");
            assert!((answer.coverage - coverage).abs() < 1e-9, "{case}");
            assert_eq!(answer.warnings.len(), warnings, "{case}");
            let json = serde_json::to_string(&answer).unwrap();
            assert!(!json.contains("shard"), "{case}: {json}");
        }
    }

    #[test]
    fn an_item_shows_its_product() {
        let product = Product {
            id: "p".into(),
            title: "Phone".into(),
            category_path: vec!["手机".into()],
            brand: None,
            price: 1.0,
            currency: "CNY".into(),
            rating: Some(4.5),
            in_stock: true,
            attributes: Default::default(),
            listed_at_ms: None,
        };
        let ranked = RankedItem {
            product: Arc::new(product.clone()),
            score: 2.0,
            reasons: vec![
                Reason::LowPrice {
                    price: 1.0,
                    currency: "CNY".into(),
                },
                Reason::Rated { rating: 4.3 },
            ],
            features: None,
        };
        let item = item_answer(ranked.clone(), Language::En);
        // The view has the product's own JSON shape, so the API stays compatible.
        assert_eq!(
            serde_json::to_value(&item.product).unwrap(),
            serde_json::to_value(&product).unwrap()
        );
        let json = serde_json::to_value(&item).unwrap();
        assert!(json.get("features").is_none(), "{json}");
        assert_eq!(
            json["reasons"],
            serde_json::json!([
                {
                    "code": "low_price",
                    "params": {"price": 1.0, "currency": "CNY"},
                    "text": "low price: ¥1"
                },
                {"code": "rated", "params": {"rating": 4.3}, "text": "rated 4.3/5"}
            ])
        );
        let chinese = item_answer(ranked, Language::Zh);
        assert_eq!(chinese.reasons[0].text, "价格低：¥1");
    }

    #[test]
    fn a_product_named_twice_in_a_batch_is_written_once_as_its_last_version() {
        let body = |id: &str, price: f64| ProductBody::new(id, format!("{id} at {price}"), price);
        let batch = ProductBatch {
            products: vec![
                body("a", 1.0),
                body("b", 2.0),
                body("a", 3.0),
                body("c", 4.0),
            ],
        };
        let written: Vec<(String, f64)> = batch
            .into_products()
            .unwrap()
            .into_iter()
            .map(|product| (product.id, product.price))
            .collect();
        let expected =
            [("b", 2.0), ("a", 3.0), ("c", 4.0)].map(|(id, price)| (id.to_string(), price));
        assert_eq!(written, expected);
    }
}
