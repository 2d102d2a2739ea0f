//! Explicit conversions between the public API types ([`crate::api`]) and the actor protocol
//! and domain model. Requests are checked against the API's limits first, then against the
//! domain's own rules, so every message names the field by its path in the request.

use std::collections::BTreeSet;

use inkling_actors::model_pool::PoolStats;
use inkling_actors::protocol::{self, RankedItem, RankedList, RecommendRequest, SearchRequest};
use inkling_domain::{Event, EventKind, Filters, Product, Profile, RecentItem, RecentQuery};
use inkling_models::intent::{self, IntentClass, Slots, Understanding};

use crate::api::{
    Affinity, ConstraintsView, EventBatch, EventBody, EventType, FiltersBody, Intent, ItemAnswer,
    ModelPoolView, Preference, ProductBatch, ProductBody, ProductView, ProfileView, RankedAnswer,
    RecentItemView, RecentQueryView, RecommendBody, SearchBody, SearchMode, UnderstandingView,
};
use crate::limits::{self, Invalid};

/// How many categories and brands a profile view lists.
const PROFILE_TOP: usize = 10;

// ---------------------------------------------------------------------------------------
// Requests: API → domain and protocol
// ---------------------------------------------------------------------------------------

impl ProductBatch {
    /// Checks every product and converts the batch.
    pub fn into_products(self) -> Result<Vec<Product>, Invalid> {
        limits::batch("products", self.products.len())?;
        self.products
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let path = format!("products[{index}]");
                body.validate(&path)?;
                let product = Product::from(body);
                product
                    .validate()
                    .map_err(|error| format!("{path}: {error}"))?;
                Ok(product)
            })
            .collect()
    }
}

impl From<ProductBody> for Product {
    fn from(body: ProductBody) -> Self {
        Product {
            id: body.id,
            title: body.title,
            category_path: body.category_path,
            brand: body.brand,
            price: body.price,
            currency: body.currency,
            rating: body.rating,
            in_stock: body.in_stock,
            attributes: body.attributes,
        }
    }
}

impl EventBatch {
    /// Checks every event and converts the batch.
    pub fn into_events(self) -> Result<Vec<Event>, Invalid> {
        limits::batch("events", self.events.len())?;
        self.events
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let path = format!("events[{index}]");
                body.validate(&path)?;
                let event = Event::from(body);
                event
                    .validate()
                    .map_err(|error| format!("{path}: {error}"))?;
                Ok(event)
            })
            .collect()
    }
}

impl From<EventBody> for Event {
    fn from(body: EventBody) -> Self {
        Event {
            user_id: body.user_id,
            session_id: body.session_id,
            kind: body.kind.into(),
            item_id: body.item_id,
            query: body.query,
            timestamp: body.timestamp,
            learn: body.learn,
            event_id: body.event_id,
        }
    }
}

impl From<EventType> for EventKind {
    fn from(kind: EventType) -> Self {
        match kind {
            EventType::View => EventKind::View,
            EventType::Click => EventKind::Click,
            EventType::AddToCart => EventKind::AddToCart,
            EventType::Purchase => EventKind::Purchase,
            EventType::Search => EventKind::Search,
        }
    }
}

impl From<EventKind> for EventType {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::View => EventType::View,
            EventKind::Click => EventType::Click,
            EventKind::AddToCart => EventType::AddToCart,
            EventKind::Purchase => EventType::Purchase,
            EventKind::Search => EventType::Search,
        }
    }
}

impl SearchBody {
    /// Checks the request and converts it for the actors.
    pub fn into_request(self) -> Result<SearchRequest, Invalid> {
        self.validate()?;
        let request = SearchRequest {
            user_id: self.user_id,
            session_id: self.session_id,
            query: self.query,
            k: self.k,
            filters: self.filters.into(),
            mode: self.mode.into(),
            explain: self.explain,
        };
        request.filters.validate()?;
        Ok(request)
    }
}

impl RecommendBody {
    /// Checks the request and converts it for the actors.
    pub fn into_request(self) -> Result<RecommendRequest, Invalid> {
        self.validate()?;
        let request = RecommendRequest {
            user_id: self.user_id,
            session_id: self.session_id,
            k: self.k,
            filters: self.filters.into(),
            explain: self.explain,
            buy_again: self.buy_again,
        };
        request.filters.validate()?;
        Ok(request)
    }
}

impl From<FiltersBody> for Filters {
    fn from(body: FiltersBody) -> Self {
        Filters {
            category: body.category,
            brand: body.brand,
            price_min: body.price_min,
            price_max: body.price_max,
        }
    }
}

impl From<SearchMode> for protocol::SearchMode {
    fn from(mode: SearchMode) -> Self {
        match mode {
            SearchMode::Lexical => protocol::SearchMode::Lexical,
            SearchMode::Vector => protocol::SearchMode::Vector,
            SearchMode::Hybrid => protocol::SearchMode::Hybrid,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Answers: protocol and domain → API
// ---------------------------------------------------------------------------------------

impl RankedAnswer {
    /// The public form of a ranked list: how much of the catalog answered, in words and as
    /// a share, never which shard numbers failed (those are logged).
    pub fn new(list: RankedList, took_ms: f64) -> Self {
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
            items: list.items.into_iter().map(ItemAnswer::from).collect(),
            complete: missing.is_empty(),
            coverage,
            warnings,
            notices: list.notices,
            understanding: list.understanding.map(UnderstandingView::from),
            took_ms,
        }
    }
}

impl From<RankedItem> for ItemAnswer {
    fn from(item: RankedItem) -> Self {
        Self {
            product: ProductView::from(&*item.product),
            score: item.score,
            reasons: item.reasons,
            features: item.features,
        }
    }
}

impl From<&Product> for ProductView {
    fn from(product: &Product) -> Self {
        Self {
            id: product.id.clone(),
            title: product.title.clone(),
            category_path: product.category_path.clone(),
            brand: product.brand.clone(),
            price: product.price,
            currency: product.currency.clone(),
            rating: product.rating,
            in_stock: product.in_stock,
            attributes: product.attributes.clone(),
        }
    }
}

impl From<Understanding> for UnderstandingView {
    fn from(understanding: Understanding) -> Self {
        Self {
            intent: understanding.intent.into(),
            confidence: understanding.confidence,
            follow_up: understanding.follow_up,
            turn: understanding.turn.into(),
            constraints: understanding.constraints.into(),
        }
    }
}

impl From<IntentClass> for Intent {
    fn from(intent: IntentClass) -> Self {
        match intent {
            IntentClass::Browse => Intent::Browse,
            IntentClass::Purchase => Intent::Purchase,
            IntentClass::Compare => Intent::Compare,
            IntentClass::Refine => Intent::Refine,
            IntentClass::PriceCheck => Intent::PriceCheck,
            IntentClass::Other => Intent::Other,
        }
    }
}

impl From<Slots> for ConstraintsView {
    fn from(slots: Slots) -> Self {
        Self {
            category: slots.category,
            category_confidence: slots.category_confidence,
            brand: slots.brand,
            brand_confidence: slots.brand_confidence,
            price_min: slots.price_min,
            price_max: slots.price_max,
            currency: slots.currency,
            attributes: slots.attributes,
            preference: slots.preference.map(Preference::from),
        }
    }
}

impl From<intent::Preference> for Preference {
    fn from(preference: intent::Preference) -> Self {
        match preference {
            intent::Preference::BestValue => Preference::BestValue,
            intent::Preference::Cheapest => Preference::Cheapest,
            intent::Preference::Premium => Preference::Premium,
            intent::Preference::BestRated => Preference::BestRated,
            intent::Preference::Newest => Preference::Newest,
        }
    }
}

impl ProfileView {
    /// The profile as of `now_ms`: affinities decayed with `half_life_ms` and normalised so
    /// the strongest is 1.0, and the price band in currency units.
    pub fn new(profile: Profile, half_life_ms: u64, now_ms: u64) -> Self {
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
                .map(RecentItemView::from)
                .collect(),
            recent_queries: profile
                .recent_queries
                .into_iter()
                .map(RecentQueryView::from)
                .collect(),
            purchased: profile.purchased.into_iter().collect(),
            segment: profile.segment,
            applied_event_keys: profile.applied_event_keys.into_iter().collect(),
        }
    }
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

impl From<RecentItem> for RecentItemView {
    fn from(item: RecentItem) -> Self {
        Self {
            item_id: item.item_id,
            kind: item.kind.into(),
            at_ms: item.at_ms,
            session_id: item.session_id,
        }
    }
}

impl From<RecentQuery> for RecentQueryView {
    fn from(query: RecentQuery) -> Self {
        Self {
            query: query.query,
            at_ms: query.at_ms,
        }
    }
}

impl From<PoolStats> for ModelPoolView {
    fn from(stats: PoolStats) -> Self {
        Self {
            queued_texts: stats.queued_texts,
            batches: stats.batches,
            texts_encoded: stats.texts_encoded,
            cache_hits: stats.cache_hits,
            rejected: stats.rejected,
        }
    }
}

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
            understanding: None,
            notices: Vec::new(),
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
        for &(shards, missing, complete, coverage, warnings) in cases {
            let answer = RankedAnswer::new(list(shards, missing), 1.0);
            let case = format!("{shards} shards, {missing:?} missing: {answer:?}");
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
        };
        let item = ItemAnswer::from(RankedItem {
            product: Arc::new(product.clone()),
            score: 2.0,
            reasons: vec!["r".into()],
            features: None,
        });
        // The view has the product's own JSON shape, so the API stays compatible.
        assert_eq!(
            serde_json::to_value(&item.product).unwrap(),
            serde_json::to_value(&product).unwrap()
        );
        let json = serde_json::to_value(&item).unwrap();
        assert!(json.get("features").is_none(), "{json}");
    }
}
