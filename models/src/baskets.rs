//! "Often bought together": association rules between items that shoppers put in the same
//! basket, the set of distinct items carted or bought in one session.
//!
//! [`mine_rules`] mines pair rules offline over all baskets; [`BasketCounter`] learns the same
//! co-occurrences online from the event stream, in bounded memory.
//! Costs: mining is O(total basket items + Σ frequent items per basket²), each basket capped at
//! [`MAX_BASKET_ITEMS`]; [`BasketCounter::observe_basket_add`] is O(basket length ×
//! max partners) per event and [`BasketCounter::together_with`] O(max partners log max
//! partners) per request; [`AssociationRules::consequents`] is O(1).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;

use lru::LruCache;
use serde::{Deserialize, Serialize};

/// Items of a basket beyond this many distinct ones are ignored: pairs grow with the square
/// of a basket's size, and a basket this large says little about what belongs together.
pub const MAX_BASKET_ITEMS: usize = 50;

/// "Shoppers whose basket holds `antecedent` also take `consequent`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub antecedent: String,
    pub consequent: String,
    /// Baskets holding both items.
    pub support: u32,
    /// Share of the baskets holding the antecedent that also hold the consequent.
    pub confidence: f32,
    /// Confidence over the consequent's share of all baskets: above 1, the antecedent makes
    /// the consequent likelier than it is anyway.
    pub lift: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct RuleThresholds {
    /// Baskets an item, and a pair, must appear in to count: rarer ones are noise.
    pub min_support: u32,
    pub min_confidence: f32,
    pub max_rules_per_item: usize,
}

impl Default for RuleThresholds {
    fn default() -> Self {
        Self {
            min_support: 2,
            min_confidence: 0.05,
            max_rules_per_item: 20,
        }
    }
}

/// Mined rules, by antecedent, each list strongest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssociationRules {
    by_antecedent: HashMap<String, Vec<Rule>>,
    /// Non-empty baskets mined.
    pub baskets: u64,
}

impl AssociationRules {
    /// The at most `limit` strongest rules from `item`: highest confidence first, then
    /// highest lift, then consequent id.
    pub fn consequents(&self, item: &str, limit: usize) -> &[Rule] {
        let rules = self.by_antecedent.get(item).map_or(&[][..], Vec::as_slice);
        &rules[..limit.min(rules.len())]
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.by_antecedent.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_antecedent.is_empty()
    }
}

/// Mines the pair rules A → B that pass `thresholds`, Apriori-style: count every item's
/// support, drop items below the minimum support (no pair can be more frequent than its
/// items), then count pairs among the frequent items only.
///
/// Both passes need the baskets, so their distinct items are held in memory, borrowed.
pub fn mine_rules<'a>(
    baskets: impl IntoIterator<Item = &'a [String]>,
    thresholds: &RuleThresholds,
) -> AssociationRules {
    let baskets: Vec<Vec<&str>> = baskets
        .into_iter()
        .map(distinct_items)
        .filter(|items| !items.is_empty())
        .collect();
    let mut item_support: HashMap<&str, u32> = HashMap::new();
    for item in baskets.iter().flatten() {
        *item_support.entry(*item).or_default() += 1;
    }
    item_support.retain(|_, support| *support >= thresholds.min_support);
    let pair_support = count_frequent_pairs(&baskets, &item_support);
    let basket_count = baskets.len() as u64;
    let mut by_antecedent: HashMap<String, Vec<Rule>> = HashMap::new();
    for ((a, b), support) in pair_support {
        if support < thresholds.min_support {
            continue;
        }
        for (antecedent, consequent) in [(a, b), (b, a)] {
            let rule = pair_rule(antecedent, consequent, support, &item_support, basket_count);
            if rule.confidence >= thresholds.min_confidence {
                by_antecedent
                    .entry(antecedent.to_string())
                    .or_default()
                    .push(rule);
            }
        }
    }
    for rules in by_antecedent.values_mut() {
        rules.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then_with(|| b.lift.total_cmp(&a.lift))
                .then_with(|| a.consequent.cmp(&b.consequent))
        });
        rules.truncate(thresholds.max_rules_per_item);
    }
    by_antecedent.retain(|_, rules| !rules.is_empty());
    AssociationRules {
        by_antecedent,
        baskets: basket_count,
    }
}

/// The basket's first [`MAX_BASKET_ITEMS`] distinct items, in order.
fn distinct_items(basket: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    basket
        .iter()
        .map(String::as_str)
        .filter(|item| seen.insert(*item))
        .take(MAX_BASKET_ITEMS)
        .collect()
}

/// Co-occurrence counts of frequent items, keyed by the pair in id order.
fn count_frequent_pairs<'a>(
    baskets: &[Vec<&'a str>],
    item_support: &HashMap<&str, u32>,
) -> HashMap<(&'a str, &'a str), u32> {
    let mut pair_support = HashMap::new();
    for basket in baskets {
        let mut frequent: Vec<&str> = basket
            .iter()
            .copied()
            .filter(|item| item_support.contains_key(item))
            .collect();
        frequent.sort_unstable();
        for (index, &a) in frequent.iter().enumerate() {
            for &b in &frequent[index + 1..] {
                *pair_support.entry((a, b)).or_default() += 1;
            }
        }
    }
    pair_support
}

fn pair_rule(
    antecedent: &str,
    consequent: &str,
    support: u32,
    item_support: &HashMap<&str, u32>,
    baskets: u64,
) -> Rule {
    // Both items are frequent, so both have a support of at least the pair's.
    let support_of =
        |item: &str| f64::from(item_support.get(item).copied().unwrap_or(support).max(1));
    let confidence = f64::from(support) / support_of(antecedent);
    let consequent_share = support_of(consequent) / baskets.max(1) as f64;
    Rule {
        antecedent: antecedent.to_string(),
        consequent: consequent.to_string(),
        support,
        confidence: confidence as f32,
        lift: (confidence / consequent_share) as f32,
    }
}

/// Online "bought together" counts: for each item, the baskets it was added to and its
/// strongest basket partners. Least recently seen items are evicted past `max_items`, and each
/// item keeps its `max_partners` strongest partners.
pub struct BasketCounter {
    items: LruCache<String, ItemCounts>,
    max_partners: usize,
}

struct ItemCounts {
    baskets: u32,
    partners: Vec<(String, u32)>,
}

impl BasketCounter {
    pub fn new(max_items: usize, max_partners: usize) -> Self {
        Self {
            items: LruCache::new(NonZeroUsize::new(max_items.max(1)).expect("non-zero")),
            max_partners: max_partners.max(1),
        }
    }

    /// Counts `added` joining a basket that already holds `basket_so_far`: one more basket for
    /// it, and one more co-occurrence with each item already there, in both directions. An item
    /// already in the basket, or beyond its first [`MAX_BASKET_ITEMS`] items, counts nothing,
    /// as in [`mine_rules`].
    pub fn observe_basket_add(&mut self, basket_so_far: &[String], added: &str) {
        let mut partners: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for item in basket_so_far {
            if item == added {
                return;
            }
            if seen.insert(item.as_str()) {
                partners.push(item);
            }
        }
        if partners.len() >= MAX_BASKET_ITEMS {
            return;
        }
        let new_counts = || ItemCounts {
            baskets: 0,
            partners: Vec::new(),
        };
        self.items
            .get_or_insert_mut(added.to_string(), new_counts)
            .baskets += 1;
        for partner in partners {
            self.bump_pair(added, partner);
            self.bump_pair(partner, added);
        }
    }

    fn bump_pair(&mut self, item: &str, partner: &str) {
        // An item evicted since it joined this basket comes back counting this basket only.
        let counts = self
            .items
            .get_or_insert_mut(item.to_string(), || ItemCounts {
                baskets: 1,
                partners: Vec::new(),
            });
        if let Some(entry) = counts
            .partners
            .iter_mut()
            .find(|(known, _)| known == partner)
        {
            entry.1 += 1;
            return;
        }
        if counts.partners.len() < self.max_partners {
            counts.partners.push((partner.to_string(), 1));
            return;
        }
        // Full: a newcomer replaces the weakest partner, inheriting its count plus one, so a
        // rising pair can displace a stale one (the space-saving heavy-hitters scheme).
        if let Some(weakest) = counts.partners.iter_mut().min_by_key(|(_, count)| *count) {
            *weakest = (partner.to_string(), weakest.1 + 1);
        }
    }

    /// The at most `limit` partners of `item` seen together with it in at least `min_support`
    /// baskets, with confidence (the share of `item`'s baskets that also held the partner),
    /// strongest first, ties by id.
    pub fn together_with(&self, item: &str, min_support: u32, limit: usize) -> Vec<(String, f32)> {
        let Some(counts) = self.items.peek(item) else {
            return Vec::new();
        };
        let baskets = counts.baskets.max(1) as f32;
        let mut ranked: Vec<(String, f32)> = counts
            .partners
            .iter()
            .filter(|(_, together)| *together >= min_support)
            // Space-saving can overestimate a pair; a confidence never exceeds 1.
            .map(|(partner, together)| (partner.clone(), (*together as f32 / baskets).min(1.0)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(limit);
        ranked
    }

    /// The number of items tracked.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baskets(lists: &[&[&str]]) -> Vec<Vec<String>> {
        lists
            .iter()
            .map(|items| items.iter().map(|item| item.to_string()).collect())
            .collect()
    }

    /// The five-basket example of Tan, Steinbach and Kumar's "Introduction to Data Mining".
    fn market() -> Vec<Vec<String>> {
        baskets(&[
            &["bread", "milk"],
            &["bread", "diapers", "beer", "eggs"],
            &["milk", "diapers", "beer", "cola"],
            &["bread", "milk", "diapers", "beer"],
            &["bread", "milk", "diapers", "cola"],
        ])
    }

    fn mine(baskets: &[Vec<String>], thresholds: &RuleThresholds) -> AssociationRules {
        mine_rules(baskets.iter().map(Vec::as_slice), thresholds)
    }

    /// Mines `baskets` and checks the rules from `item`: (consequent, support, confidence, lift).
    fn check_consequents(
        baskets: &[Vec<String>],
        thresholds: RuleThresholds,
        item: &str,
        expected: &[(&str, u32, f32, f32)],
    ) {
        let rules = mine(baskets, &thresholds);
        let found = rules.consequents(item, usize::MAX);
        let context = format!("{item} with {thresholds:?}: {found:?}");
        assert_eq!(found.len(), expected.len(), "{context}");
        for (rule, (consequent, support, confidence, lift)) in found.iter().zip(expected) {
            assert_eq!(rule.antecedent, item, "{context}");
            assert_eq!(rule.consequent, *consequent, "{context}");
            assert_eq!(rule.support, *support, "{context}");
            assert!((rule.confidence - confidence).abs() < 1e-3, "{context}");
            assert!((rule.lift - lift).abs() < 1e-3, "{context}");
        }
    }

    #[test]
    fn market_baskets_give_hand_computed_rules() {
        let defaults = RuleThresholds::default();
        let confident = RuleThresholds {
            min_confidence: 0.8,
            ..defaults
        };
        let frequent = RuleThresholds {
            min_support: 3,
            ..defaults
        };
        let short = RuleThresholds {
            max_rules_per_item: 2,
            ..defaults
        };
        let duplicates = baskets(&[&["a", "a", "b"], &["a", "b", "b"], &["b"]]);
        let lenient = RuleThresholds {
            min_support: 1,
            ..defaults
        };
        type Case<'a> = (
            Vec<Vec<String>>,
            RuleThresholds,
            &'a str,
            Vec<(&'a str, u32, f32, f32)>,
        );
        let cases: Vec<Case> = vec![
            // 3 of beer's 3 baskets hold diapers, which 4 of 5 baskets hold: lift 1 / 0.8.
            (
                market(),
                defaults,
                "beer",
                vec![
                    ("diapers", 3, 1.0, 1.25),
                    ("bread", 2, 0.667, 0.833),
                    ("milk", 2, 0.667, 0.833),
                ],
            ),
            // Equal confidence: the higher lift first, then by id.
            (
                market(),
                defaults,
                "diapers",
                vec![
                    ("beer", 3, 0.75, 1.25),
                    ("bread", 3, 0.75, 0.9375),
                    ("milk", 3, 0.75, 0.9375),
                    ("cola", 2, 0.5, 1.25),
                ],
            ),
            // Cola with bread or beer happened once only.
            (
                market(),
                defaults,
                "cola",
                vec![("diapers", 2, 1.0, 1.25), ("milk", 2, 1.0, 1.25)],
            ),
            // Eggs were bought once: below the minimum support.
            (market(), defaults, "eggs", vec![]),
            (market(), confident, "diapers", vec![]),
            (market(), confident, "beer", vec![("diapers", 3, 1.0, 1.25)]),
            (
                market(),
                frequent,
                "milk",
                vec![("bread", 3, 0.75, 0.9375), ("diapers", 3, 0.75, 0.9375)],
            ),
            (
                market(),
                short,
                "diapers",
                vec![("beer", 3, 0.75, 1.25), ("bread", 3, 0.75, 0.9375)],
            ),
            // A repeated item counts once per basket.
            (duplicates.clone(), lenient, "a", vec![("b", 2, 1.0, 1.0)]),
            (duplicates, lenient, "b", vec![("a", 2, 0.667, 1.0)]),
        ];
        for (baskets, thresholds, item, expected) in cases {
            check_consequents(&baskets, thresholds, item, &expected);
        }
    }

    #[test]
    fn mining_counts_baskets_and_caps_large_ones() {
        let lenient = RuleThresholds {
            min_support: 1,
            min_confidence: 0.0,
            max_rules_per_item: usize::MAX,
        };
        let rules = mine(&market(), &RuleThresholds::default());
        assert_eq!(rules.baskets, 5);
        assert_eq!(rules.consequents("diapers", 1).len(), 1);
        let huge: Vec<String> = (0..60).map(|index| format!("item-{index:02}")).collect();
        let rules = mine(&[huge.clone(), huge, vec![]], &lenient);
        assert_eq!(rules.baskets, 2, "empty baskets do not count");
        assert_eq!(rules.len(), MAX_BASKET_ITEMS * (MAX_BASKET_ITEMS - 1));
        assert!(rules.consequents("item-55", 10).is_empty());
        assert!(mine(&[], &lenient).is_empty());
    }

    /// Plays baskets item by item, as shoppers fill them, into a counter.
    fn play(baskets: &[Vec<String>], caps: (usize, usize)) -> BasketCounter {
        let mut counter = BasketCounter::new(caps.0, caps.1);
        for basket in baskets {
            for (index, item) in basket.iter().enumerate() {
                counter.observe_basket_add(&basket[..index], item);
            }
        }
        counter
    }

    #[test]
    fn online_counts_agree_with_offline_confidence() {
        let everything = RuleThresholds {
            min_support: 1,
            min_confidence: 0.0,
            max_rules_per_item: usize::MAX,
        };
        let mut data = market();
        data.push(baskets(&[&["milk", "milk", "cola", "bread"]]).remove(0));
        let offline = mine(&data, &everything);
        let online = play(&data, (100, 100));
        for item in ["bread", "milk", "diapers", "beer", "eggs", "cola"] {
            let mut expected: Vec<(String, f32)> = offline
                .consequents(item, usize::MAX)
                .iter()
                .map(|rule| (rule.consequent.clone(), rule.confidence))
                .collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            let mut found = online.together_with(item, 1, usize::MAX);
            found.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(found.len(), expected.len(), "{item}: {found:?}");
            for ((partner, confidence), (consequent, offline_confidence)) in
                found.iter().zip(&expected)
            {
                assert_eq!(partner, consequent, "{item}");
                assert!((confidence - offline_confidence).abs() < 1e-6, "{item}");
            }
        }
    }

    /// Plays `baskets` into a counter with `caps` and checks the partners of `item` seen with
    /// it in at least `min_support` baskets.
    fn check_partners(
        baskets: &[Vec<String>],
        caps: (usize, usize),
        min_support: u32,
        item: &str,
        expected: &[&str],
    ) {
        let counter = play(baskets, caps);
        let partners: Vec<String> = counter
            .together_with(item, min_support, 10)
            .into_iter()
            .map(|(partner, _)| partner)
            .collect();
        assert_eq!(partners, expected, "{baskets:?}");
        assert!(counter.len() <= caps.0);
    }

    #[test]
    fn online_partners_rank_and_stay_bounded() {
        type Case<'a> = (Vec<Vec<String>>, (usize, usize), u32, &'a str, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                market(),
                (100, 100),
                1,
                "beer",
                vec!["diapers", "bread", "milk", "cola", "eggs"],
            ),
            // Cola and eggs went with beer once only.
            (
                market(),
                (100, 100),
                2,
                "beer",
                vec!["diapers", "bread", "milk"],
            ),
            (baskets(&[&["a", "a", "b"]]), (10, 10), 1, "a", vec!["b"]),
            (baskets(&[&["x", "y"]]), (10, 10), 1, "a", vec![]),
            // Two partners at most: "d" displaces the weakest and inherits its count.
            (
                baskets(&[&["a", "b"], &["a", "b"], &["a", "c"], &["a", "d"]]),
                (10, 2),
                1,
                "a",
                vec!["b", "d"],
            ),
            // Two items tracked: "a" is evicted by "x" and "y".
            (
                baskets(&[&["a", "b"], &["x", "y"]]),
                (2, 10),
                1,
                "a",
                vec![],
            ),
        ];
        for (baskets, caps, min_support, item, expected) in cases {
            check_partners(&baskets, caps, min_support, item, &expected);
        }
    }

    #[test]
    fn online_ignores_repeats_and_items_past_the_basket_cap() {
        let mut counter = BasketCounter::new(1_000, 100);
        let basket: Vec<String> = (0..MAX_BASKET_ITEMS)
            .map(|index| format!("item-{index}"))
            .collect();
        counter.observe_basket_add(&basket[..MAX_BASKET_ITEMS - 1], "item-49");
        counter.observe_basket_add(&basket, "late");
        counter.observe_basket_add(&basket[..1], "item-0");
        assert!(counter.together_with("late", 1, 10).is_empty());
        assert_eq!(
            counter.together_with("item-49", 1, 100).len(),
            MAX_BASKET_ITEMS - 1
        );
        assert_eq!(
            counter.together_with("item-0", 1, 10),
            [("item-49".to_string(), 1.0)]
        );
    }
}
