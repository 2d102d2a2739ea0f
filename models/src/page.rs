//! What a storefront's result page needs beyond relevance: an order the shopper picks
//! (price, newest, rating) and facet counts (category, brand, price buckets) over the
//! products a search found.
//!
//! Both work on the relevance pool, the best matches the ranker kept: sorting reorders
//! those matches rather than every product that shares a word with the query, so "phone,
//! cheapest first" starts with a cheap phone, not with a cable that mentions phones.

use std::cmp::Ordering;
use std::collections::HashMap;

use inkling_domain::Product;
use serde::{Deserialize, Serialize};

/// How many values of each facet are counted; the rest are left out.
pub const FACET_VALUES: usize = 20;
/// Price buckets aim at about this many.
const PRICE_BUCKETS: f64 = 5.0;

/// The order of a result page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// As ranked: relevance to the query, personalised.
    #[default]
    Relevance,
    /// Cheapest first, within the currency most of the products are priced in first.
    PriceAsc,
    /// Dearest first, within the currency most of the products are priced in first.
    PriceDesc,
    /// Most recently listed first; products without a listing time last.
    Newest,
    /// Best-rated first; unrated products last.
    Rating,
}

/// Reorders `items` (ranked by relevance) by `order`; items that tie keep their relevance
/// order. `product` reads each item's product.
pub fn sort_by<T>(items: &mut [T], order: SortOrder, product: impl Fn(&T) -> &Product) {
    let currency_rank = currency_ranks(items.iter().map(&product));
    let by_currency = |a: &Product, b: &Product| {
        currency_rank
            .get(&a.currency)
            .cmp(&currency_rank.get(&b.currency))
    };
    let compare = |a: &T, b: &T| {
        let (a, b) = (product(a), product(b));
        match order {
            SortOrder::Relevance => Ordering::Equal,
            SortOrder::PriceAsc => by_currency(a, b).then(a.price.total_cmp(&b.price)),
            SortOrder::PriceDesc => by_currency(a, b).then(b.price.total_cmp(&a.price)),
            SortOrder::Newest => descending_known(a.listed_at_ms, b.listed_at_ms),
            SortOrder::Rating => descending_known(a.rating, b.rating),
        }
    };
    items.sort_by(compare);
}

/// Greater first; unknown after every known value.
fn descending_known<V: PartialOrd>(a: Option<V>, b: Option<V>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Each currency's place, the most used first (ties alphabetically), so a page in mixed
/// currencies never interleaves prices that cannot be compared.
fn currency_ranks<'p>(products: impl Iterator<Item = &'p Product>) -> HashMap<String, usize> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for product in products {
        *counts.entry(product.currency.as_str()).or_default() += 1;
    }
    let mut currencies: Vec<(&str, usize)> = counts.into_iter().collect();
    currencies.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    currencies
        .into_iter()
        .enumerate()
        .map(|(rank, (currency, _))| (currency.to_string(), rank))
        .collect()
}

/// How many of the found products fall under each value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facets {
    /// By the narrowest level of the category path, most products first.
    pub category: Vec<FacetCount>,
    pub brand: Vec<FacetCount>,
    /// Price ranges, per currency, cheapest first.
    pub price: Vec<PriceBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacetCount {
    pub value: String,
    pub count: usize,
}

/// Products priced from `min` (included) to `max` (excluded) in `currency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceBucket {
    pub currency: String,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

impl Facets {
    pub fn count<'p>(products: impl IntoIterator<Item = &'p Product>) -> Self {
        let products: Vec<&Product> = products.into_iter().collect();
        let leaves = products
            .iter()
            .filter_map(|product| product.category_path.last());
        let brands = products.iter().filter_map(|product| product.brand.as_ref());
        Self {
            category: top_values(leaves),
            brand: top_values(brands),
            price: price_buckets(&products),
        }
    }
}

/// The [`FACET_VALUES`] most frequent values, most frequent first (ties alphabetically).
fn top_values<'v>(values: impl Iterator<Item = &'v String>) -> Vec<FacetCount> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for value in values {
        *counts.entry(value.as_str()).or_default() += 1;
    }
    let mut facets: Vec<FacetCount> = counts
        .into_iter()
        .map(|(value, count)| FacetCount {
            value: value.to_string(),
            count,
        })
        .collect();
    facets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    facets.truncate(FACET_VALUES);
    facets
}

/// Buckets of a round width (1, 2 or 5 times a power of ten) per currency, about
/// [`PRICE_BUCKETS`] of them over the prices found; empty buckets are left out.
fn price_buckets(products: &[&Product]) -> Vec<PriceBucket> {
    let mut by_currency: HashMap<&str, Vec<f64>> = HashMap::new();
    for product in products {
        by_currency
            .entry(product.currency.as_str())
            .or_default()
            .push(product.price);
    }
    let mut currencies: Vec<(&str, Vec<f64>)> = by_currency.into_iter().collect();
    currencies.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    currencies
        .into_iter()
        .flat_map(|(currency, prices)| buckets_of(currency, &prices))
        .collect()
}

fn buckets_of(currency: &str, prices: &[f64]) -> Vec<PriceBucket> {
    let width = round_width(typical_span(prices) / PRICE_BUCKETS);
    let mut counts: std::collections::BTreeMap<i64, usize> = Default::default();
    for price in prices {
        *counts.entry((price / width).floor() as i64).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(index, count)| PriceBucket {
            currency: currency.to_string(),
            min: index as f64 * width,
            max: (index + 1) as f64 * width,
            count,
        })
        .collect()
}

/// The span of the middle nine tenths of `prices`, so one outlier does not pour every
/// other product into a single bucket; a tenth of the price when they are all alike.
fn typical_span(prices: &[f64]) -> f64 {
    let mut sorted = prices.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |share: f64| sorted[((sorted.len() - 1) as f64 * share).round() as usize];
    let (low, high) = (at(0.05), at(0.95));
    (high - low).max(high / 10.0)
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `raw` (and at least 1).
fn round_width(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|width| *width >= raw)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use inkling_domain::testing::product;

    use super::*;

    fn item(id: &str, price: f64, currency: &str, rating: Option<f32>) -> Product {
        Product {
            currency: currency.into(),
            rating,
            listed_at_ms: rating.map(|rating| (rating * 1000.0) as u64),
            brand: Some(if price < 100.0 { "Cheapo" } else { "Luxe" }.into()),
            ..product(id, "手机", price)
        }
    }

    fn catalog() -> Vec<Product> {
        vec![
            item("a", 500.0, "CNY", Some(4.0)),
            item("b", 50.0, "CNY", None),
            item("c", 9.0, "USD", Some(4.5)),
            item("d", 3000.0, "CNY", Some(3.0)),
        ]
    }

    /// Each case: an order and the ids it puts the catalog (ranked a, b, c, d) in.
    #[test]
    fn orders_reorder_the_relevance_pool() {
        let cases = [
            (SortOrder::Relevance, ["a", "b", "c", "d"]),
            (SortOrder::PriceAsc, ["b", "a", "d", "c"]),
            (SortOrder::PriceDesc, ["d", "a", "b", "c"]),
            (SortOrder::Newest, ["c", "a", "d", "b"]),
            (SortOrder::Rating, ["c", "a", "d", "b"]),
        ];
        for (order, expected) in cases {
            let mut products = catalog();
            sort_by(&mut products, order, |product| product);
            let ids: Vec<&str> = products.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(ids, expected, "{order:?}");
        }
    }

    #[test]
    fn facets_count_leaves_brands_and_round_price_buckets_per_currency() {
        let products = catalog();
        let facets = Facets::count(&products);
        assert_eq!(
            facets.category,
            vec![FacetCount {
                value: "手机".into(),
                count: 4
            }]
        );
        assert_eq!(facets.brand[0].value, "Cheapo");
        assert_eq!(facets.brand[0].count, 2);
        let buckets: Vec<(&str, f64, f64, usize)> = facets
            .price
            .iter()
            .map(|b| (b.currency.as_str(), b.min, b.max, b.count))
            .collect();
        assert_eq!(
            buckets,
            vec![
                ("CNY", 0.0, 1000.0, 2),
                ("CNY", 3000.0, 4000.0, 1),
                ("USD", 9.0, 10.0, 1)
            ]
        );
    }

    #[test]
    fn bucket_widths_are_round() {
        let cases = [(0.3, 1.0), (3.0, 5.0), (590.0, 1000.0), (1200.0, 2000.0)];
        for (raw, expected) in cases {
            assert_eq!(round_width(raw), expected, "{raw}");
        }
    }
}
