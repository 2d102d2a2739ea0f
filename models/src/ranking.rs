//! Profile-aware scoring with reasons.
//!
//! Every signal is normalised to `[0, 1]` before weighting, so the weights read as "how much
//! this signal matters" and a reason is given only for signals that actually moved the score.

use std::collections::HashMap;
use std::sync::Arc;

use inkling_domain::Product;
use inkling_domain::Profile;
use inkling_domain::Reason;
use serde::{Deserialize, Serialize};

pub use crate::candidate::{Candidate, CandidateSource, Matched};
use crate::intent::Preference;
use crate::slot_evidence::QueryEvidence;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub product: Arc<Product>,
    pub score: f64,
    pub reasons: Vec<Reason>,
    /// Whether it is a match for the query: its text holds the query's words, or it ranks
    /// among the relevant products (see [`RankingWeights::relevant_share`]). A product
    /// that is only somewhat close in meaning is not: a page sorted by price leaves it out
    /// of the sorted matches.
    #[serde(default = "matches_by_default")]
    pub matches_query: bool,
}

fn matches_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Copy)]
pub struct RankingWeights {
    pub retrieval: f64,
    /// How search fuses its BM25 and embedding lists.
    pub fusion: crate::fusion::Fusion,
    /// Weight of the embedding-similarity list against the BM25 list in search fusion.
    pub semantic: f64,
    pub category: f64,
    pub brand: f64,
    pub price: f64,
    pub rating: f64,
    /// At most this share of the answer comes from one leaf category.
    pub max_category_share: f64,
    /// Weight of a stated preference (best value, cheapest, ...): the shopper asked for this
    /// order, so it outweighs every implicit signal.
    pub preference: f64,
    /// Relevance a product gains for being in the category the query names, times the
    /// confidence of that reading.
    pub query_category: f64,
    /// Relevance a product gains for being of the brand the query names, times confidence.
    pub query_brand: f64,
    /// A product is relevant when its relevance (retrieval plus the query's category and
    /// brand) reaches this share of the best candidate's; the profile, rating and stated
    /// preferences reorder relevant products, never lift another above them.
    pub relevant_share: f64,
}

impl Default for RankingWeights {
    fn default() -> Self {
        Self {
            retrieval: 1.0,
            fusion: crate::fusion::Fusion::Convex,
            semantic: 0.5,
            category: 0.3,
            brand: 0.15,
            price: 0.1,
            rating: 0.05,
            max_category_share: 0.5,
            preference: 2.0,
            query_category: 0.5,
            query_brand: 0.5,
            relevant_share: 0.5,
        }
    }
}

/// What the profile says, resolved once per request.
pub(crate) struct ProfileSignals<'a> {
    categories: HashMap<String, f64>,
    brands: HashMap<String, f64>,
    price_band: Option<(f64, f64)>,
    profile: &'a Profile,
}

impl<'a> ProfileSignals<'a> {
    pub(crate) fn new(profile: &'a Profile, now_ms: u64, half_life_ms: u64) -> Self {
        let categories = Profile::normalised(&profile.category_affinity, now_ms, half_life_ms);
        let brands = Profile::normalised(&profile.brand_affinity, now_ms, half_life_ms);
        Self {
            categories: categories.into_iter().collect(),
            brands: brands.into_iter().collect(),
            price_band: profile.price_affinity.band(),
            profile,
        }
    }

    /// The strongest category affinity along the product's path, with its name.
    pub(crate) fn category<'p>(&self, product: &'p Product) -> Option<(&'p str, f64)> {
        product
            .category_path
            .iter()
            .filter_map(|level| {
                self.categories
                    .get(level)
                    .map(|value| (level.as_str(), *value))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub(crate) fn brand(&self, product: &Product) -> Option<f64> {
        product
            .brand
            .as_ref()
            .and_then(|brand| self.brands.get(brand).copied())
    }

    /// 1 at the centre of the shopper's usual price band, falling off in log-price.
    pub(crate) fn price_fit(&self, product: &Product) -> Option<f64> {
        let (mean, deviation) = self.price_band?;
        let z = (product.price.max(0.01).ln() - mean) / deviation.max(0.25);
        Some((-0.5 * z * z).exp())
    }

    fn recently_seen(&self, product: &Product) -> bool {
        self.profile
            .recent_items
            .iter()
            .rev()
            .take(10)
            .any(|item| item.item_id == product.id)
    }
}

/// What ranking knows about the request beyond the candidates.
pub struct RankContext<'a> {
    pub profile: &'a Profile,
    pub now_ms: u64,
    pub half_life_ms: u64,
    /// An order the shopper asked for in words.
    pub preference: Option<Preference>,
    /// A price ceiling the shopper stated, with its currency when they named one.
    pub budget: Option<Budget>,
    /// Off when the shopper asked for one category: diversity would fight the request.
    pub diversify: bool,
    /// The category and brand the query was read to name, as boosts.
    pub evidence: QueryEvidence,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub max: f64,
    pub currency: Option<String>,
}

impl<'a> RankContext<'a> {
    pub fn new(profile: &'a Profile, now_ms: u64, half_life_ms: u64) -> Self {
        Self {
            profile,
            now_ms,
            half_life_ms,
            preference: None,
            budget: None,
            diversify: true,
            evidence: QueryEvidence::default(),
        }
    }
}

/// Scores, explains and orders candidates, then applies the business rules: never an
/// unavailable or purchased item, no duplicates, and no category taking over the list.
pub fn rank(
    candidates: Vec<Candidate>,
    context: &RankContext,
    weights: &RankingWeights,
    k: usize,
) -> Vec<Scored> {
    let profile = context.profile;
    let signals = ProfileSignals::new(profile, context.now_ms, context.half_life_ms);
    // Retrieval scores are only comparable within one source: BM25 is not a rating.
    let mut best_retrieval: HashMap<std::mem::Discriminant<CandidateSource>, f32> = HashMap::new();
    for candidate in &candidates {
        let best = best_retrieval
            .entry(std::mem::discriminant(&candidate.source))
            .or_insert(f32::EPSILON);
        *best = best.max(candidate.retrieval_score);
    }

    // Availability is the filters' to decide: a storefront may ask for sold-out products.
    let eligible: Vec<Candidate> = candidates
        .into_iter()
        .filter(|candidate| !profile.purchased.contains(&candidate.product.id))
        .collect();
    let preference = context
        .preference
        .map(|preference| PreferenceScale::new(preference, &eligible));
    let mut scored: Vec<(f64, Option<f64>, Scored)> = eligible
        .into_iter()
        .map(|candidate| {
            let best = best_retrieval[&std::mem::discriminant(&candidate.source)];
            let relevance = relevance(&candidate, best, &context.evidence, weights);
            let mut scored = score_one(candidate, &signals, relevance, weights);
            let preferred = preference
                .as_ref()
                .and_then(|preference| preference.apply(&mut scored, weights.preference));
            if let Some(budget) = &context.budget {
                explain_budget(&scored.product, &mut scored.reasons, budget);
            }
            (relevance, preferred, scored)
        })
        .collect();
    // Relevant products first, whatever the profile, rating or preference say of the rest;
    // among them, an order the shopper asked for ("cheapest", "best rated") decides.
    let best_relevance = scored
        .iter()
        .map(|(relevance, ..)| *relevance)
        .fold(0.0, f64::max);
    let threshold = best_relevance * weights.relevant_share;
    scored.sort_by(
        |(relevance_a, preferred_a, a), (relevance_b, preferred_b, b)| {
            (*relevance_b >= threshold)
                .cmp(&(*relevance_a >= threshold))
                .then_with(|| {
                    preferred_b
                        .unwrap_or(0.0)
                        .total_cmp(&preferred_a.unwrap_or(0.0))
                })
                .then_with(|| b.score.total_cmp(&a.score))
        },
    );
    let mut scored: Vec<Scored> = scored
        .into_iter()
        .map(|(relevance, _, mut scored)| {
            scored.matches_query |= relevance >= threshold;
            scored
        })
        .collect();
    // A product proposed by several sources keeps its best-scoring proposal.
    let mut seen = std::collections::HashSet::new();
    scored.retain(|item| seen.insert(item.product.id.clone()));
    let max_share = context.diversify.then_some(weights.max_category_share);
    diversify(scored, |item| item.product.as_ref(), max_share, k)
}

/// Turns a stated preference into a score in [0, 1] relative to the other candidates.
struct PreferenceScale {
    preference: Preference,
    lowest_log_price: f64,
    log_price_span: f64,
}

impl PreferenceScale {
    fn new(preference: Preference, candidates: &[Candidate]) -> Self {
        let log_prices = candidates.iter().map(|c| c.product.price.max(0.01).ln());
        let (low, high) = log_prices.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), p| {
            (low.min(p), high.max(p))
        });
        Self {
            preference,
            lowest_log_price: if low.is_finite() { low } else { 0.0 },
            log_price_span: if high > low { high - low } else { 1.0 },
        }
    }

    /// 0 for the cheapest candidate, 1 for the most expensive.
    fn price_position(&self, product: &Product) -> f64 {
        (product.price.max(0.01).ln() - self.lowest_log_price) / self.log_price_span
    }

    /// Adds the preference to the score and explains it; returns how well the product
    /// meets it, from 0 to 1 (`None` for a preference the catalog cannot honour).
    fn apply(&self, scored: &mut Scored, weight: f64) -> Option<f64> {
        let product = &scored.product;
        let rating = f64::from(product.rating.unwrap_or(0.0)) / 5.0;
        let price = self.price_position(product);
        let currency = product.currency.clone();
        // Reasons state only what the catalog holds: an unrated product gets no rating.
        let (value, reason) = match self.preference {
            Preference::BestValue => (
                ((rating - price) + 1.0) / 2.0,
                product.rating.map(|rating| Reason::GoodValue {
                    rating,
                    price: product.price,
                    currency,
                }),
            ),
            Preference::Cheapest => (
                1.0 - price,
                Some(Reason::LowPrice {
                    price: product.price,
                    currency,
                }),
            ),
            Preference::Premium => (price, Some(Reason::Premium)),
            Preference::BestRated => (
                rating,
                product.rating.map(|rating| Reason::TopRated { rating }),
            ),
            // The catalog carries no release dates, so "newest" cannot be honoured.
            Preference::Newest => return None,
        };
        scored.score += weight * value;
        if value < 0.5 {
            return Some(value);
        }
        if matches!(
            self.preference,
            Preference::BestValue | Preference::BestRated
        ) {
            // The preference's reason already states the rating.
            scored
                .reasons
                .retain(|existing| !matches!(existing, Reason::Rated { .. }));
        }
        scored.reasons.extend(reason);
        Some(value)
    }
}

pub(crate) fn explain_budget(product: &Product, reasons: &mut Vec<Reason>, budget: &Budget) {
    let same_currency = budget
        .currency
        .as_deref()
        .is_none_or(|c| c == product.currency);
    if same_currency && product.price <= budget.max {
        let currency = budget.currency.as_deref().unwrap_or(&product.currency);
        reasons.push(Reason::WithinBudget {
            amount: budget.max,
            currency: currency.to_string(),
        });
    }
}

/// How well the candidate answers the query: its retrieval score (normalised within its
/// source) plus the category and brand the query names, weighted by their confidence.
fn relevance(
    candidate: &Candidate,
    best_retrieval: f32,
    evidence: &QueryEvidence,
    weights: &RankingWeights,
) -> f64 {
    let retrieval = f64::from(candidate.retrieval_score / best_retrieval);
    let (category, brand) = evidence.support(&candidate.product);
    weights.retrieval * retrieval + weights.query_category * category + weights.query_brand * brand
}

fn score_one(
    candidate: Candidate,
    signals: &ProfileSignals,
    relevance: f64,
    weights: &RankingWeights,
) -> Scored {
    let product = candidate.product;
    let mut reasons = Vec::new();
    let mut score = relevance;
    let matches_query = !matches!(
        candidate.source,
        CandidateSource::Search {
            matched: Matched::Meaning,
            ..
        }
    );
    match &candidate.source {
        CandidateSource::Search {
            query,
            matched: Matched::Words | Matched::Both,
        } => reasons.push(Reason::MatchesSearch {
            query: query.clone(),
        }),
        CandidateSource::Search {
            query,
            matched: Matched::Meaning,
        } => reasons.push(Reason::CloseInMeaning {
            query: query.clone(),
        }),
        CandidateSource::Requested => {}
    }

    if let Some((category, affinity)) = signals.category(&product) {
        score += weights.category * affinity;
        if affinity >= 0.2 {
            reasons.push(Reason::BrowsingCategory {
                category: category.to_string(),
            });
        }
    }
    if let Some(affinity) = signals.brand(&product) {
        score += weights.brand * affinity;
        if affinity >= 0.2
            && let Some(brand) = &product.brand
        {
            reasons.push(Reason::InterestInBrand {
                brand: brand.clone(),
            });
        }
    }
    if let Some(fit) = signals.price_fit(&product) {
        score += weights.price * fit;
        if fit >= 0.6 {
            reasons.push(Reason::UsualPriceRange);
        }
    }
    if let Some(rating) = product.rating {
        score += weights.rating * f64::from(rating) / 5.0;
        if rating >= 4.0 {
            reasons.push(Reason::Rated { rating });
        }
    }
    if signals.recently_seen(&product) {
        // A search asked for this item again: show it, and say why it is familiar.
        reasons.push(Reason::SeenRecently);
    }
    Scored {
        product,
        score,
        reasons,
        matches_query,
    }
}

/// The best `k` items. With `max_share`, it takes the best items while no leaf category
/// exceeds that share, then fills up from the rest when diversity alone cannot fill `k`;
/// the fill-ups rank after the diverse items.
pub(crate) fn diversify<T>(
    mut ranked: Vec<T>,
    product_of: impl Fn(&T) -> &Product,
    max_share: Option<f64>,
    k: usize,
) -> Vec<T> {
    let Some(max_share) = max_share else {
        ranked.truncate(k);
        return ranked;
    };
    let per_category_cap = ((k as f64 * max_share).ceil() as usize).max(1);
    let mut per_category: HashMap<String, usize> = HashMap::new();
    let (mut chosen, mut deferred) = (Vec::with_capacity(k), Vec::new());
    for item in ranked {
        if chosen.len() == k {
            break;
        }
        // Items without a category are not one category: only named ones are capped.
        let Some(category) = product_of(&item).leaf_category() else {
            chosen.push(item);
            continue;
        };
        let category = category.to_string();
        let count = per_category.entry(category).or_default();
        if *count < per_category_cap {
            *count += 1;
            chosen.push(item);
        } else {
            deferred.push(item);
        }
    }
    let missing = k.saturating_sub(chosen.len());
    chosen.extend(deferred.into_iter().take(missing));
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkling_domain::ProfileConfig;
    use inkling_domain::{Event, EventKind};

    fn product(id: &str, category: &str, brand: &str, price: f64) -> Product {
        Product {
            brand: Some(brand.into()),
            ..inkling_domain::testing::product(id, category, price)
        }
    }

    fn candidate(product: Product, retrieval_score: f32) -> Candidate {
        Candidate {
            product: product.into(),
            retrieval_score,
            source: CandidateSource::Requested,
        }
    }

    fn profile_after(events: &[(EventKind, &Product)]) -> Profile {
        let mut profile = Profile::new("u");
        for (kind, product) in events {
            let event = Event {
                user_id: "u".into(),
                session_id: None,
                kind: *kind,
                item_id: Some(product.id.clone()),
                query: None,
                timestamp: Some(0),
                learn: true,
                event_id: None,
                attribution: None,
            };
            profile.apply(&event, Some(product), 0, &ProfileConfig::default());
        }
        profile
    }

    /// Ranks `candidates` for `profile` with k = `k` and checks the order of ids.
    fn check(profile: &Profile, candidates: Vec<Candidate>, k: usize, expected: &[&str]) {
        let context = RankContext::new(profile, 0, 1000);
        let ranked = rank(candidates, &context, &RankingWeights::default(), k);
        let ids: Vec<&str> = ranked
            .iter()
            .map(|scored| scored.product.id.as_str())
            .collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn ranking_rules() {
        let phone = product("phone", "手机", "Xiaomi", 3500.0);
        let laptop = product("laptop", "电脑", "Apple", 15000.0);
        let tablet = product("tablet", "平板", "Apple", 3000.0);
        let phone_fan =
            profile_after(&[(EventKind::View, &product("other", "手机", "Xiaomi", 3600.0))]);
        let buyer = profile_after(&[(EventKind::Purchase, &phone)]);
        let newcomer = Profile::new("u");
        let cases: Vec<(&Profile, Vec<Candidate>, usize, Vec<&str>)> = vec![
            // Equal retrieval: the profile decides.
            (
                &phone_fan,
                vec![
                    candidate(laptop.clone(), 1.0),
                    candidate(phone.clone(), 1.0),
                ],
                2,
                vec!["phone", "laptop"],
            ),
            // Purchased items are not shown again.
            (
                &buyer,
                vec![
                    candidate(phone.clone(), 1.0),
                    candidate(tablet.clone(), 0.5),
                ],
                2,
                vec!["tablet"],
            ),
            // Duplicates from several shards or sources collapse.
            (
                &newcomer,
                vec![
                    candidate(tablet.clone(), 1.0),
                    candidate(tablet.clone(), 0.9),
                ],
                5,
                vec!["tablet"],
            ),
        ];
        for (profile, candidates, k, expected) in cases {
            check(profile, candidates, k, &expected);
        }
    }

    #[test]
    fn diversity_caps_one_category_but_still_fills_k() {
        let phones: Vec<Candidate> = (0..4)
            .map(|index| {
                candidate(
                    product(&format!("phone{index}"), "手机", "X", 100.0),
                    1.0 - index as f32 * 0.1,
                )
            })
            .collect();
        let mut candidates = phones;
        candidates.push(candidate(product("laptop", "电脑", "Y", 100.0), 0.1));
        let newcomer = Profile::new("u");
        let context = RankContext::new(&newcomer, 0, 1000);
        let ranked = rank(candidates.clone(), &context, &RankingWeights::default(), 4);
        let ids: Vec<&str> = ranked
            .iter()
            .map(|scored| scored.product.id.as_str())
            .collect();
        assert_eq!(ids, ["phone0", "phone1", "laptop", "phone2"]);
        assert_eq!(
            rank(candidates, &context, &RankingWeights::default(), 2).len(),
            2
        );
    }

    #[test]
    fn reasons_explain_the_signals_that_counted() {
        let phone = product("phone", "手机", "Xiaomi", 3500.0);
        let profile =
            profile_after(&[(EventKind::View, &product("other", "手机", "Xiaomi", 3500.0))]);
        let search = Candidate {
            product: phone.into(),
            retrieval_score: 2.0,
            source: CandidateSource::Search {
                query: "phone".into(),
                matched: Matched::Words,
            },
        };
        let context = RankContext::new(&profile, 0, 1000);
        let ranked = rank(vec![search], &context, &RankingWeights::default(), 1);
        let texts: Vec<String> = ranked[0]
            .reasons
            .iter()
            .map(|reason| reason.text(inkling_domain::Language::En))
            .collect();
        assert_eq!(
            texts,
            [
                "matches your search \"phone\"",
                "you have been browsing 手机",
                "you showed interest in Xiaomi",
                "in your usual price range"
            ]
        );
    }

    #[test]
    fn stated_preferences_order_the_classic_phones() {
        let mut phones = [
            product("iphone-14", "手机", "Apple", 8000.0),
            product("iphone-se", "手机", "Apple", 4500.0),
            product("xiaomi-12", "手机", "Xiaomi", 3500.0),
        ];
        for (phone, rating) in phones.iter_mut().zip([4.6, 4.3, 4.5]) {
            phone.rating = Some(rating);
        }
        let newcomer = Profile::new("u");
        let cases = [
            (
                Preference::BestValue,
                ["xiaomi-12", "iphone-se", "iphone-14"],
            ),
            (
                Preference::Cheapest,
                ["xiaomi-12", "iphone-se", "iphone-14"],
            ),
            (Preference::Premium, ["iphone-14", "iphone-se", "xiaomi-12"]),
            (
                Preference::BestRated,
                ["iphone-14", "xiaomi-12", "iphone-se"],
            ),
        ];
        for (preference, expected) in cases {
            let context = RankContext {
                preference: Some(preference),
                budget: Some(Budget {
                    max: 8000.0,
                    currency: Some("CNY".into()),
                }),
                diversify: false,
                ..RankContext::new(&newcomer, 0, 1000)
            };
            // Retrieval prefers the iPhone 14; all three stay relevant, so the stated order
            // decides among them.
            let candidates = phones
                .iter()
                .zip([1.0, 0.9, 0.8])
                .map(|(phone, retrieval)| candidate(phone.clone(), retrieval))
                .collect();
            let ranked = rank(candidates, &context, &RankingWeights::default(), 3);
            let ids: Vec<&str> = ranked
                .iter()
                .map(|scored| scored.product.id.as_str())
                .collect();
            assert_eq!(ids, expected, "{preference:?}");
            assert!(ranked[2].reasons.contains(&Reason::WithinBudget {
                amount: 8000.0,
                currency: "CNY".into()
            }));
        }
    }

    /// A preference's reason states only facts the product carries.
    #[test]
    fn an_unrated_product_gets_no_rating_reason() {
        let unrated = product("plain", "手机", "Acme", 3500.0);
        let mut rated = product("rated", "手机", "Acme", 9000.0);
        rated.rating = Some(4.5);
        let newcomer = Profile::new("u");
        for preference in [Preference::BestValue, Preference::BestRated] {
            let context = RankContext {
                preference: Some(preference),
                ..RankContext::new(&newcomer, 0, 1000)
            };
            let candidates = vec![
                candidate(unrated.clone(), 1.0),
                candidate(rated.clone(), 1.0),
            ];
            let ranked = rank(candidates, &context, &RankingWeights::default(), 2);
            let plain = ranked
                .iter()
                .find(|s| s.product.id == "plain")
                .expect("ranked");
            assert!(
                plain.reasons.iter().all(|reason| !reason.states_rating()),
                "{preference:?}: {:?}",
                plain.reasons
            );
        }
    }
}
