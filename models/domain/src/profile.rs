//! A shopper's long-term profile: what they looked at, searched for and bought, with
//! affinities that fade over time so the profile follows what they want now.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::types::{Event, EventKind, Product};

/// How a profile learns and how much it remembers.
#[derive(Debug, Clone, Copy)]
pub struct ProfileConfig {
    /// Time after which an affinity counts half as much.
    pub half_life_ms: u64,
    pub max_recent_items: usize,
    pub max_recent_queries: usize,
    pub max_affinities: usize,
    pub max_purchases: usize,
    /// Idempotency keys remembered per shopper: a retried batch is recognised while its
    /// keys are among the newest this many. It covers the largest batch the API accepts.
    pub max_event_keys: usize,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            half_life_ms: 24 * 60 * 60 * 1000,
            max_recent_items: 50,
            max_recent_queries: 20,
            max_affinities: 64,
            max_purchases: 500,
            max_event_keys: 10_000,
        }
    }
}

/// A score that decays exponentially from the moment it was last updated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Decayed {
    pub value: f64,
    pub at_ms: u64,
}

impl Decayed {
    pub fn value_at(&self, now_ms: u64, half_life_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        self.value * 0.5f64.powf(elapsed / half_life_ms.max(1) as f64)
    }

    pub fn add(&mut self, amount: f64, now_ms: u64, half_life_ms: u64) {
        // Events may arrive slightly out of order; never move the clock backwards.
        let at_ms = now_ms.max(self.at_ms);
        self.value = self.value_at(at_ms, half_life_ms) + amount;
        self.at_ms = at_ms;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentItem {
    pub item_id: String,
    pub kind: EventKind,
    pub at_ms: u64,
    /// The client session it happened in, which delimits "what followed what".
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentQuery {
    pub query: String,
    pub at_ms: u64,
}

/// Decayed moments of log(price) over the items a shopper showed interest in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceAffinity {
    pub weight: Decayed,
    pub log_price_sum: Decayed,
    pub log_price_square_sum: Decayed,
}

impl PriceAffinity {
    fn add(&mut self, price: f64, weight: f64, now_ms: u64, half_life_ms: u64) {
        let log_price = price.max(0.01).ln();
        self.weight.add(weight, now_ms, half_life_ms);
        self.log_price_sum
            .add(weight * log_price, now_ms, half_life_ms);
        self.log_price_square_sum
            .add(weight * log_price * log_price, now_ms, half_life_ms);
    }

    /// Mean and standard deviation of log(price), once there is any evidence.
    pub fn band(&self) -> Option<(f64, f64)> {
        if self.weight.value <= f64::EPSILON {
            return None;
        }
        // All three moments share one timestamp, so their ratios need no decay.
        let mean = self.log_price_sum.value / self.weight.value;
        let variance = (self.log_price_square_sum.value / self.weight.value - mean * mean).max(0.0);
        Some((mean, variance.sqrt()))
    }
}

/// Everything Inkling remembers about one shopper.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: String,
    /// Events applied so far; with `kill -9` tests this proves no acknowledged event was lost.
    pub event_count: u64,
    pub updated_at_ms: u64,
    pub recent_items: VecDeque<RecentItem>,
    pub recent_queries: VecDeque<RecentQuery>,
    pub category_affinity: BTreeMap<String, Decayed>,
    pub brand_affinity: BTreeMap<String, Decayed>,
    pub price_affinity: PriceAffinity,
    pub purchased: BTreeSet<String>,
    /// The shopper segment (k-means over profiles) this profile was last assigned to.
    #[serde(default)]
    pub segment: Option<u32>,
    /// Hashes of the newest idempotency keys (`event_id`) applied, oldest first: a client
    /// retry of a batch whose answer was lost finds its events here and skips them.
    #[serde(
        default,
        skip_serializing_if = "VecDeque::is_empty",
        with = "packed_key_hashes"
    )]
    pub applied_event_keys: VecDeque<u64>,
}

impl Profile {
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            ..Default::default()
        }
    }

    /// Whether an event with this idempotency key was applied already (within the window of
    /// the newest `max_event_keys` keys).
    pub fn has_applied(&self, event: &Event) -> bool {
        event
            .event_id
            .as_deref()
            .is_some_and(|key| self.applied_event_keys.contains(&event_key_hash(key)))
    }

    /// Folds one event into the profile, unless its idempotency key shows it was applied
    /// before; answers whether it was applied now. `product` is the catalog entry of the
    /// event's item, when the catalog knows it; unknown items still count as recent activity.
    pub fn apply(
        &mut self,
        event: &Event,
        product: Option<&Product>,
        now_ms: u64,
        config: &ProfileConfig,
    ) -> bool {
        if self.has_applied(event) {
            return false;
        }
        if let Some(key) = &event.event_id {
            push_bounded(
                &mut self.applied_event_keys,
                event_key_hash(key),
                config.max_event_keys,
            );
        }
        self.fold(event, product, now_ms, config);
        true
    }

    fn fold(
        &mut self,
        event: &Event,
        product: Option<&Product>,
        now_ms: u64,
        config: &ProfileConfig,
    ) {
        let at_ms = event.timestamp.unwrap_or(now_ms);
        self.event_count += 1;
        self.updated_at_ms = self.updated_at_ms.max(at_ms);

        if let Some(query) = &event.query {
            self.remember_query(query, at_ms, config);
        }
        let Some(item_id) = &event.item_id else {
            return;
        };
        push_bounded(
            &mut self.recent_items,
            RecentItem {
                item_id: item_id.clone(),
                kind: event.kind,
                at_ms,
                session_id: event.session_id.clone(),
            },
            config.max_recent_items,
        );
        if event.kind == EventKind::Purchase && self.purchased.len() < config.max_purchases {
            self.purchased.insert(item_id.clone());
        }
        if let Some(product) = product {
            self.learn_from_product(product, event.kind.interest_weight(), at_ms, config);
        }
    }

    /// The item this shopper touched last in `session_id`, if the session saw one.
    pub fn last_item_in(&self, session_id: Option<&str>) -> Option<&str> {
        let last = self.recent_items.back()?;
        (last.session_id.as_deref() == session_id).then_some(last.item_id.as_str())
    }

    /// The distinct items carted or bought in `session_id` so far: the session's basket.
    pub fn basket_in(&self, session_id: Option<&str>) -> Vec<String> {
        let mut basket: Vec<String> = Vec::new();
        for item in &self.recent_items {
            let in_basket = matches!(item.kind, EventKind::AddToCart | EventKind::Purchase);
            if in_basket
                && item.session_id.as_deref() == session_id
                && !basket.contains(&item.item_id)
            {
                basket.push(item.item_id.clone());
            }
        }
        basket
    }

    /// Records a query typed into search, which tells what the shopper wants right now.
    pub fn remember_query(&mut self, query: &str, at_ms: u64, config: &ProfileConfig) {
        // A search event and the search request itself often report the same query.
        if let Some(last) = self.recent_queries.back_mut()
            && last.query == query
        {
            last.at_ms = last.at_ms.max(at_ms);
            return;
        }
        push_bounded(
            &mut self.recent_queries,
            RecentQuery {
                query: query.to_string(),
                at_ms,
            },
            config.max_recent_queries,
        );
    }

    fn learn_from_product(
        &mut self,
        product: &Product,
        weight: f64,
        at_ms: u64,
        config: &ProfileConfig,
    ) {
        let half_life = config.half_life_ms;
        for category in &product.category_path {
            bump(&mut self.category_affinity, category, weight, at_ms, config);
        }
        if let Some(brand) = &product.brand {
            bump(&mut self.brand_affinity, brand, weight, at_ms, config);
        }
        self.price_affinity
            .add(product.price, weight, at_ms, half_life);
    }

    /// Affinities as of `now_ms`, normalised so the strongest is 1.
    pub fn normalised(
        affinities: &BTreeMap<String, Decayed>,
        now_ms: u64,
        half_life_ms: u64,
    ) -> Vec<(String, f64)> {
        let mut scored: Vec<(String, f64)> = affinities
            .iter()
            .map(|(key, decayed)| (key.clone(), decayed.value_at(now_ms, half_life_ms)))
            .collect();
        let strongest = scored.iter().map(|(_, value)| *value).fold(0.0, f64::max);
        if strongest <= f64::EPSILON {
            return Vec::new();
        }
        for (_, value) in &mut scored {
            *value /= strongest;
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }
}

/// A stable hash of an idempotency key: xxh3 is fixed across releases and platforms, so a
/// profile written by one node version deduplicates correctly on the next.
pub fn event_key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, capacity: usize) {
    queue.push_back(item);
    while queue.len() > capacity {
        queue.pop_front();
    }
}

fn bump(
    affinities: &mut BTreeMap<String, Decayed>,
    key: &str,
    weight: f64,
    at_ms: u64,
    config: &ProfileConfig,
) {
    affinities
        .entry(key.to_string())
        .or_default()
        .add(weight, at_ms, config.half_life_ms);
    if affinities.len() <= config.max_affinities {
        return;
    }
    // Evict the weakest affinity so a long-lived profile stays bounded.
    let weakest = affinities
        .iter()
        .min_by(|a, b| {
            let a = a.1.value_at(at_ms, config.half_life_ms);
            let b = b.1.value_at(at_ms, config.half_life_ms);
            a.total_cmp(&b)
        })
        .map(|(key, _)| key.clone());
    if let Some(weakest) = weakest {
        affinities.remove(&weakest);
    }
}

/// The key hashes as one base64 string of their little-endian bytes: 11 characters a key,
/// where a JSON list of decimals takes 21. The profile is rewritten whole on every event,
/// so its size is what the data folder's growth scales with (docs/benchmarks.md). Profiles
/// stored as a list still load.
mod packed_key_hashes {
    use std::collections::VecDeque;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        hashes: &VecDeque<u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = hashes.iter().flat_map(|hash| hash.to_le_bytes()).collect();
        serializer.serialize_str(&STANDARD_NO_PAD.encode(bytes))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Packed(String),
        List(VecDeque<u64>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<VecDeque<u64>, D::Error> {
        let packed = match Stored::deserialize(deserializer)? {
            Stored::List(hashes) => return Ok(hashes),
            Stored::Packed(packed) => packed,
        };
        let bytes = STANDARD_NO_PAD.decode(packed).map_err(D::Error::custom)?;
        if bytes.len() % 8 != 0 {
            return Err(D::Error::custom("packed key hashes are not whole u64s"));
        }
        Ok(bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 60 * 60 * 1000;

    /// Key hashes are stored packed, and profiles stored before that (a JSON list) still load.
    #[test]
    fn key_hashes_are_stored_packed_and_old_lists_still_load() {
        let hashes = [0, 1, u64::MAX, 0x0123_4567_89ab_cdef];
        let cases: [(&str, Vec<u64>); 4] = [
            ("no keys", vec![]),
            ("one key", vec![hashes[3]]),
            ("several keys", hashes.to_vec()),
            ("many keys", (0..10_000).map(|n| n * 7_919).collect()),
        ];
        for (why, keys) in cases {
            let profile = Profile {
                applied_event_keys: keys.iter().copied().collect(),
                ..Profile::new("u")
            };
            let json = serde_json::to_string(&profile).unwrap();
            let back: Profile = serde_json::from_str(&json).unwrap();
            assert_eq!(back.applied_event_keys, keys, "{why}: {json:.200}");
            let mut list = serde_json::to_value(&profile).unwrap();
            list["applied_event_keys"] = serde_json::json!(keys);
            let old: Profile = serde_json::from_value(list).unwrap();
            assert_eq!(old.applied_event_keys, keys, "{why}: the old list form");
            let without_keys = serde_json::to_string(&Profile::new("u")).unwrap().len();
            let key_bytes = json.len() - without_keys;
            assert!(
                key_bytes <= 30 + keys.len() * 11,
                "{why}: {key_bytes} bytes for {} keys",
                keys.len()
            );
        }
        let mut broken = serde_json::to_value(Profile::new("u")).unwrap();
        broken["applied_event_keys"] = serde_json::json!("AAAA");
        let error = serde_json::from_value::<Profile>(broken).unwrap_err();
        assert!(error.to_string().contains("whole u64s"), "{error}");
    }

    fn product(id: &str, category: &str, brand: &str, price: f64) -> Product {
        Product {
            brand: Some(brand.into()),
            ..crate::testing::product(id, category, price)
        }
    }

    fn event(kind: EventKind, item: &str, at_ms: u64) -> Event {
        Event {
            user_id: "u".into(),
            session_id: None,
            kind,
            item_id: Some(item.into()),
            query: None,
            timestamp: Some(at_ms),
            learn: true,
            event_id: None,
            attribution: None,
        }
    }

    /// Applies `events` (kind, product, hours since start) and checks that the strongest
    /// category at the time of the last event is `expected_top`.
    fn check_top_category(events: &[(EventKind, &Product, u64)], expected_top: &str) {
        let config = ProfileConfig {
            half_life_ms: 24 * HOUR,
            ..Default::default()
        };
        let mut profile = Profile::new("u");
        let mut last = 0;
        for (kind, product, hours) in events {
            last = hours * HOUR;
            profile.apply(
                &event(*kind, &product.id, last),
                Some(product),
                last,
                &config,
            );
        }
        let ranked = Profile::normalised(&profile.category_affinity, last, config.half_life_ms);
        assert_eq!(ranked[0].0, expected_top, "{ranked:?}");
    }

    #[test]
    fn affinity_follows_recent_and_strong_interest() {
        let phone = product("phone", "手机", "Apple", 8000.0);
        let laptop = product("laptop", "电脑", "Apple", 15000.0);
        use EventKind::*;
        type Case<'a> = (Vec<(EventKind, &'a Product, u64)>, &'a str);
        let cases: Vec<Case> = vec![
            (vec![(View, &phone, 0)], "手机"),
            (
                vec![(View, &phone, 0), (View, &laptop, 0), (View, &laptop, 0)],
                "电脑",
            ),
            // A purchase outweighs two views at the same moment.
            (
                vec![(View, &phone, 0), (View, &phone, 0), (Purchase, &laptop, 0)],
                "电脑",
            ),
            // Three old views fade below one view three days later.
            (
                vec![
                    (View, &phone, 0),
                    (View, &phone, 0),
                    (View, &phone, 0),
                    (View, &laptop, 72),
                ],
                "电脑",
            ),
        ];
        for (events, expected) in &cases {
            check_top_category(events, expected);
        }
    }

    #[test]
    fn recent_lists_are_bounded_and_purchases_remembered() {
        let config = ProfileConfig {
            max_recent_items: 3,
            ..Default::default()
        };
        let mut profile = Profile::new("u");
        for index in 0..10 {
            profile.apply(
                &event(EventKind::View, &format!("p{index}"), index),
                None,
                0,
                &config,
            );
        }
        profile.apply(&event(EventKind::Purchase, "p42", 11), None, 0, &config);
        profile.remember_query("phone", 12, &config);
        profile.remember_query("phone", 13, &config);
        assert_eq!(profile.recent_queries.len(), 1, "repeated query kept once");
        assert_eq!(profile.recent_items.len(), 3);
        assert_eq!(profile.event_count, 11);
        assert!(profile.purchased.contains("p42"));
    }

    #[test]
    fn price_band_tracks_prices_of_interest() {
        let config = ProfileConfig::default();
        let mut profile = Profile::new("u");
        for price in [3000.0, 3500.0, 4500.0] {
            let item = product("x", "手机", "Xiaomi", price);
            profile.apply(&event(EventKind::View, "x", 0), Some(&item), 0, &config);
        }
        let (mean, deviation) = profile.price_affinity.band().unwrap();
        assert!((mean.exp() - 3620.0).abs() < 100.0, "{}", mean.exp());
        assert!(deviation < 0.3);
    }
}
