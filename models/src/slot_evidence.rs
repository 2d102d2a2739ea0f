//! Understanding as evidence, not a verdict.
//!
//! A category or brand read from the query is a guess with a confidence (see
//! [`crate::intent::Slots`]). Search retrieves without the guesses, then settles them
//! against what it found:
//!
//! * a category guess is resolved to the category the matching products actually carry, at
//!   any level of their paths ("necklace" → "Necklaces & Chains", not a two-product
//!   "Necklaces" leaf), by the retrieval scores of the top hits;
//! * a sure guess ([`FILTER_CONFIDENCE`] or more) narrows, unless that leaves nothing: then
//!   the weakest guess (brand before category) is relaxed, and a notice says so;
//! * a category only narrows, it never starves a page: the candidates outside it are kept
//!   aside ([`Settled::outside_category`]), so a page short of its k can backfill from
//!   categories that name it ([`names_category`]) and from the levels above it
//!   ([`ancestors_of`]);
//! * every guess that does not filter is a boost weighted by its confidence, which ranking
//!   adds to the product's relevance.

use std::collections::HashMap;

use inkling_domain::{Filters, Product};

use crate::candidate::{Candidate, CandidateSource};
use crate::intent::Slots;

/// A guess at least this sure filters the results (when that leaves any).
pub const FILTER_CONFIDENCE: f64 = 0.8;
/// How many of the best search hits vote on which category a guess means.
const VOTING_HITS: usize = 30;

/// A category or brand the query was read to mean, and how sure that reading is.
#[derive(Debug, Clone, PartialEq)]
pub struct Guess {
    pub value: String,
    pub confidence: f64,
}

/// The guesses ranking weighs, as settled against the candidates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryEvidence {
    pub category: Option<Guess>,
    pub brand: Option<Guess>,
}

impl QueryEvidence {
    /// The confidence of the guesses the product matches, summed per kind:
    /// (category, brand).
    pub fn support(&self, product: &Product) -> (f64, f64) {
        let category = self
            .category
            .as_ref()
            .filter(|guess| on_path(product, &guess.value))
            .map_or(0.0, |guess| guess.confidence);
        let brand = self
            .brand
            .as_ref()
            .filter(|guess| {
                product
                    .brand
                    .as_deref()
                    .is_some_and(|brand| brand.eq_ignore_ascii_case(&guess.value))
            })
            .map_or(0.0, |guess| guess.confidence);
        (category, brand)
    }
}

/// What settling the guesses left.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// The candidates every kept filter accepts: the page, ranked first.
    pub candidates: Vec<Candidate>,
    /// The filters kept: the sure guesses that still left candidates.
    pub kept: Filters,
    /// Candidates that pass every kept filter but the category: a page that the category
    /// leaves short backfills from them.
    pub outside_category: Vec<Candidate>,
    pub evidence: QueryEvidence,
    /// Filters that were relaxed because they left nothing, in words for the shopper.
    pub notices: Vec<String>,
}

/// Settles the category and brand of `slots` against `candidates`, which were retrieved
/// without them. A guess the request's explicit filters already decide is left out.
pub fn settle(candidates: Vec<Candidate>, slots: &Slots, explicit: &Filters) -> Settled {
    let category = slots
        .category
        .as_ref()
        .filter(|_| explicit.category.is_empty())
        .map(|category| Guess {
            value: resolve_category(category, &candidates),
            confidence: slots.category_confidence.unwrap_or(FILTER_CONFIDENCE),
        });
    let brand = slots
        .brand
        .as_ref()
        .filter(|_| explicit.brand.is_empty())
        .map(|brand| Guess {
            value: brand.clone(),
            confidence: slots.brand_confidence.unwrap_or(FILTER_CONFIDENCE),
        });
    let sure = |guess: &Option<Guess>| {
        guess
            .as_ref()
            .filter(|guess| guess.confidence >= FILTER_CONFIDENCE)
            .map(|guess| guess.value.clone())
    };
    let (sure_category, sure_brand) = (sure(&category), sure(&brand));
    let mut notices = Vec::new();
    // The filters to try, strictest first; the brand is relaxed before the category.
    let attempts = [
        (sure_category.clone(), sure_brand.clone()),
        (sure_category.clone(), None),
        (None, sure_brand.clone()),
    ];
    let mut kept = None;
    for (category_filter, brand_filter) in attempts {
        let filters = guesses_only(&category_filter, &brand_filter);
        let passing: Vec<&Candidate> = candidates
            .iter()
            .filter(|candidate| filters.accepts(&candidate.product))
            .collect();
        if !passing.is_empty() {
            notices.extend(relaxation_notice(
                (&sure_category, &sure_brand),
                (&category_filter, &brand_filter),
            ));
            kept = Some(filters);
            break;
        }
    }
    let kept = kept.unwrap_or_else(|| {
        if candidates.is_empty() {
            // Nothing was found at all: there is no guess to relax, and no page to explain.
            return guesses_only(&None, &None);
        }
        notices.extend(relaxation_notice(
            (&sure_category, &sure_brand),
            (&None, &None),
        ));
        guesses_only(&None, &None)
    });
    let without_category = Filters {
        category: Vec::new(),
        ..kept.clone()
    };
    let (candidates, outside_category) = candidates
        .into_iter()
        .filter(|candidate| without_category.accepts(&candidate.product))
        .partition(|candidate| kept.accepts(&candidate.product));
    Settled {
        candidates,
        kept,
        outside_category,
        evidence: QueryEvidence { category, brand },
        notices,
    }
}

/// Filters by the guessed category and brand alone: availability and the request's own
/// filters held at retrieval already.
fn guesses_only(category: &Option<String>, brand: &Option<String>) -> Filters {
    Filters {
        category: category.iter().cloned().collect(),
        brand: brand.iter().cloned().collect(),
        include_out_of_stock: true,
        ..Filters::default()
    }
}

/// The levels between `category` and the root on the paths of the `products` that hold
/// it, by distance: the parents first, then the grandparents: [["For Boys", "Men's
/// Footwear"], ["Kids' Footwear"]] for a "Sports Shoes" held under Footwear / Kids'
/// Footwear / For Boys and under Footwear / Men's Footwear. Empty for a category at or
/// just below the root.
pub fn ancestors_of<'p>(
    category: &str,
    products: impl IntoIterator<Item = &'p Product>,
) -> Vec<Vec<String>> {
    let mut tiers: Vec<Vec<String>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for product in products {
        let path = &product.category_path;
        let Some(at) = path
            .iter()
            .position(|level| level.eq_ignore_ascii_case(category))
        else {
            continue;
        };
        // The root is a department ("Footwear", "消费电子"): too broad to stand in for a
        // kind of product, so the backfill stops below it.
        let below_root = path.get(1..at).unwrap_or_default();
        for (distance, level) in below_root.iter().rev().enumerate() {
            if !seen.insert(level.clone()) {
                continue;
            }
            if tiers.len() <= distance {
                tiers.resize_with(distance + 1, Vec::new);
            }
            tiers[distance].push(level.clone());
        }
    }
    tiers.retain(|tier| !tier.is_empty());
    tiers
}

/// "no mugs from Coffee; showing all Coffee Mugs" and the like, when a sure guess was
/// dropped; nothing when every sure guess filters.
fn relaxation_notice(
    (category, brand): (&Option<String>, &Option<String>),
    (kept_category, kept_brand): (&Option<String>, &Option<String>),
) -> Option<String> {
    let dropped_category = category.is_some() && kept_category.is_none();
    let dropped_brand = brand.is_some() && kept_brand.is_none();
    match (category, brand) {
        (Some(category), Some(brand)) if dropped_brand && !dropped_category => Some(format!(
            "no {category} from {brand}; showing all {category}"
        )),
        (Some(category), Some(brand)) if dropped_category && !dropped_brand => Some(format!(
            "nothing from {brand} in {category}; showing everything from {brand}"
        )),
        (Some(category), Some(brand)) if dropped_category => Some(format!(
            "no {category} from {brand}; showing everything that matches"
        )),
        (Some(category), _) if dropped_category => Some(format!(
            "nothing in {category} matches; showing everything that matches"
        )),
        (_, Some(brand)) if dropped_brand => Some(format!(
            "nothing from {brand} matches; showing everything that matches"
        )),
        _ => None,
    }
}

/// The category on the best search hits' paths that `guess` names: the level equal to it,
/// or whose name contains its words ("Necklaces & Chains" for "Necklaces"), that carries the
/// most retrieval score among the top hits. The guess itself when no hit votes.
fn resolve_category(guess: &str, candidates: &[Candidate]) -> String {
    let mut hits: Vec<&Candidate> = candidates
        .iter()
        .filter(|candidate| matches!(candidate.source, CandidateSource::Search { .. }))
        .collect();
    hits.sort_by(|a, b| b.retrieval_score.total_cmp(&a.retrieval_score));
    let mut votes: HashMap<&str, f64> = HashMap::new();
    for hit in hits.into_iter().take(VOTING_HITS) {
        for level in &hit.product.category_path {
            if names_category(level, guess) {
                *votes.entry(level.as_str()).or_default() += f64::from(hit.retrieval_score);
            }
        }
    }
    votes
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map_or_else(|| guess.to_string(), |(level, _)| level.to_string())
}

/// Whether a category level is `category` or names it among other words: "Necklaces &
/// Chains" names "Necklaces", "Headphones (With Mic)" names "Headphones".
pub fn names_category(level: &str, category: &str) -> bool {
    if level.eq_ignore_ascii_case(category) {
        return true;
    }
    let wanted = words(category);
    let level_words = words(level);
    !wanted.is_empty() && wanted.iter().all(|word| level_words.contains(word))
}

/// Lowercased words of a category name, singular: "Necklaces & Chains" → necklace, chain.
fn words(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let word = word.to_lowercase();
            match word.strip_suffix('s') {
                Some(stem) if stem.len() >= 3 && word.is_ascii() => stem.to_string(),
                _ => word,
            }
        })
        .collect()
}

/// Whether `category` is a level of the product's category path.
pub fn on_path(product: &Product, category: &str) -> bool {
    product
        .category_path
        .iter()
        .any(|level| level.eq_ignore_ascii_case(category))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::Matched;
    use inkling_domain::testing;

    fn product(id: &str, path: &[&str], brand: Option<&str>) -> Product {
        Product {
            category_path: path.iter().map(|level| level.to_string()).collect(),
            brand: brand.map(str::to_string),
            ..testing::product(id, path[0], 100.0)
        }
    }

    fn hit(product: Product, score: f32) -> Candidate {
        Candidate {
            product: product.into(),
            retrieval_score: score,
            source: CandidateSource::Search {
                query: "q".into(),
                matched: Matched::Words,
            },
        }
    }

    fn guesses(category: Option<(&str, f64)>, brand: Option<(&str, f64)>) -> Slots {
        Slots {
            category: category.map(|(value, _)| value.to_string()),
            category_confidence: category.map(|(_, confidence)| confidence),
            brand: brand.map(|(value, _)| value.to_string()),
            brand_confidence: brand.map(|(_, confidence)| confidence),
            ..Slots::default()
        }
    }

    #[test]
    fn sure_guesses_filter_unless_that_empties_the_answer() {
        let mug = product("mug", &["Kitchen", "Coffee Mugs"], Some("Shopmania"));
        let bra = product("bra", &["Clothing", "Bras"], Some("Coffee"));
        let necklace = product("necklace", &["Jewellery", "Necklaces & Chains"], None);
        let pendant = product(
            "pendant",
            &["Jewellery", "Necklaces & Chains", "Necklaces"],
            None,
        );
        let cover = product("cover", &["Mobiles & Accessories", "Cases & Covers"], None);
        let phone = product("phone", &["手机"], Some("Xiaomi"));
        let all = [&mug, &bra, &necklace, &pendant, &cover, &phone];
        let candidates: Vec<Candidate> = all
            .iter()
            .enumerate()
            .map(|(rank, product)| hit((*product).clone(), 1.0 - rank as f32 * 0.1))
            .collect();
        // (guesses, ids kept, resolved category, notices); what a kept category leaves out
        // is kept aside, not dropped
        type Case<'a> = (Slots, Vec<&'a str>, Option<&'a str>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                guesses(Some(("Coffee Mugs", 0.9)), Some(("Coffee", 0.9))),
                vec!["mug"],
                Some("Coffee Mugs"),
                vec!["no Coffee Mugs from Coffee; showing all Coffee Mugs"],
            ),
            (
                guesses(Some(("Necklaces", 0.9)), None),
                vec!["necklace", "pendant"],
                Some("Necklaces & Chains"),
                vec![],
            ),
            // A modifier only boosts: nothing is filtered.
            (
                guesses(Some(("手机", 0.4)), None),
                vec!["mug", "bra", "necklace", "pendant", "cover", "phone"],
                Some("手机"),
                vec![],
            ),
            (
                guesses(Some(("Watches", 0.9)), None),
                vec!["mug", "bra", "necklace", "pendant", "cover", "phone"],
                Some("Watches"),
                vec!["nothing in Watches matches; showing everything that matches"],
            ),
            (
                guesses(Some(("手机", 1.0)), Some(("Xiaomi", 0.9))),
                vec!["phone"],
                Some("手机"),
                vec![],
            ),
        ];
        for (slots, kept, category, notices) in cases {
            let settled = settle(candidates.clone(), &slots, &Filters::default());
            let ids: Vec<&str> = settled
                .candidates
                .iter()
                .map(|candidate| candidate.product.id.as_str())
                .collect();
            let resolved = settled.evidence.category.as_ref().map(|g| g.value.as_str());
            let kept_by_brand = candidates
                .iter()
                .filter(|c| {
                    settled.kept.brand.is_empty()
                        || c.product.brand.as_ref() == settled.kept.brand.first()
                })
                .count();
            assert_eq!(
                settled.candidates.len() + settled.outside_category.len(),
                kept_by_brand,
                "{slots:?}: a category narrows, it drops nothing"
            );
            assert_eq!(
                (ids, resolved, settled.notices.clone()),
                (
                    kept,
                    category,
                    notices.iter().map(|n| n.to_string()).collect()
                ),
                "{slots:?}"
            );
        }
    }

    #[test]
    fn a_category_s_ancestors_are_the_levels_above_it() {
        let men = product("men", &["Footwear", "Men", "Sports Shoes"], None);
        let boys = product("boys", &["Footwear", "Kids", "Boys", "Sports Shoes"], None);
        let top = product("top", &["Footwear"], None);
        let cases: [(&str, &[&[&str]]); 6] = [
            ("Sports Shoes", &[&["Men", "Boys"], &["Kids"]]),
            ("sports shoes", &[&["Men", "Boys"], &["Kids"]]),
            ("Boys", &[&["Kids"]]),
            ("Men", &[]),
            ("Footwear", &[]),
            ("Watches", &[]),
        ];
        for (category, ancestors) in cases {
            assert_eq!(
                ancestors_of(category, [&top, &men, &boys]),
                ancestors,
                "{category}"
            );
        }
    }
}
