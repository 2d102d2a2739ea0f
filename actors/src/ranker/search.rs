//! The search pipeline: scatter the query to every shard (BM25, nearest vectors, and the
//! category or brand asked for surely), fuse the lists, settle the guessed category and
//! brand against the hits, then score and explain the candidates with the profile. A page
//! that a guessed category leaves short of k backfills: first from categories and titles
//! that name it, then from the levels above it up to its department, and a notice says so.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use inkling_domain::{Product, Profile, now_ms};
use inkling_models::fusion::{RankedHits, by_score, fuse};
use inkling_models::intent::{Slots, Understanding};
use inkling_models::page::{Facets, sort_by};
use inkling_models::search_ranker::{
    SEARCH_FEATURES, SearchFeatureVector, SearchRanker, fuse_learned,
};
use inkling_models::slot_evidence::{
    FILTER_CONFIDENCE, Settled, ancestors_of, names_category, on_path, settle,
};
use inkling_models::{Budget, Candidate, CandidateSource, Matched, RankContext, rank};
use inkling_storage::Retrieval;

use super::context::{Hits, RankingContext, merge_missing};
use crate::protocol::{
    MissingShard, RankedItem, RankedList, SearchRequest, SortOrder, effective_filters,
};

/// How many of the best matches a search ranks at least, whatever its page: facets count
/// them and a sort reorders them.
const PAGE_POOL: usize = 100;

/// Ranks search hits for the query, personalised by the profile and shaped by what the
/// query was understood to ask. `query_vector` is the query's embedding, computed once by
/// the session for intent classification; vector and hybrid searches reuse it.
pub async fn search(
    context: &RankingContext,
    request: SearchRequest,
    profile: &Profile,
    understanding: Option<Understanding>,
    query_vector: Option<Vec<f32>>,
) -> RankedList {
    let constraints = understanding
        .as_ref()
        .map(|understanding| understanding.constraints.clone())
        .unwrap_or_default();
    // The category and brand read from words are guesses: retrieval runs without them and
    // `settle` weighs them against what it found. Explicit filters and prices always hold.
    let stated = Slots {
        category: None,
        brand: None,
        ..constraints.clone()
    };
    let ((words, words_missing), (meaning, meaning_missing), (wanted, wanted_missing)) =
        futures::future::join3(
            lexical(context, &request, &stated),
            semantic(context, &request, &stated, query_vector),
            requested(context, &request, &constraints, &stated),
        )
        .await;
    let weights = &context.config.ranking;
    let meaning_weight = request.semantic_weight.unwrap_or(weights.semantic);
    // Explaining without a learned ranker logs the features under weights that rank as
    // convex fusion does, so the answer is the one the shopper would get.
    let learned = context.search_ranker.clone().or_else(|| {
        request
            .explain
            .then(|| Arc::new(SearchRanker::convex(meaning_weight)))
    });
    let (mut candidates, features) = match learned {
        Some(ranker) => fuse_learned(&request.query, by_score(words), by_score(meaning), &ranker),
        None => {
            let lists = vec![
                RankedHits {
                    hits: by_score(words),
                    matched: Matched::Words,
                    weight: 1.0,
                },
                RankedHits {
                    hits: by_score(meaning),
                    matched: Matched::Meaning,
                    weight: meaning_weight,
                },
            ];
            (fuse(&request.query, lists, weights.fusion), HashMap::new())
        }
    };
    candidates.extend(wanted.into_iter().map(filler));
    let settled = settle(candidates, &constraints, &request.filters);
    let missing_shards = merge_missing([words_missing, meaning_missing, wanted_missing]);
    let rank_context = RankContext {
        preference: constraints.preference,
        budget: constraints.price_max.map(|max| Budget {
            max,
            currency: constraints.currency.clone(),
        }),
        // A search names what it wants; diversity is for recommendations and browsing.
        diversify: false,
        evidence: settled.evidence,
        ..RankContext::new(profile, now_ms(), context.config.profile.half_life_ms)
    };
    let Settled {
        candidates,
        kept,
        outside_category,
        notices,
        ..
    } = settled;
    let pool = request.page_end().max(PAGE_POOL);
    let (mut list, matches) = finish(context, candidates, missing_shards, &rank_context, pool);
    list.notices = notices;
    if let Some(category) = kept.single_category()
        && list.items.len() < request.page_end()
    {
        let narrowed = Narrowed {
            category,
            brand: kept.brand.first().map(String::as_str),
            stated: &stated,
        };
        let page = Page {
            list: &mut list,
            fill_to: request.page_end() + 1,
        };
        backfill(
            context,
            &request,
            &narrowed,
            outside_category,
            &rank_context,
            page,
        )
        .await;
    }
    cut_page(&mut list, &matches, &request);
    if request.explain {
        explain_search(&mut list, &features);
    }
    list.understanding = understanding;
    list
}

/// Counts the facets of the matches, orders them as asked, and cuts the page out of the
/// list. `matches` flags the ranked items that match the query (the backfilled ones after
/// them are not flagged). A product that is only somewhat close in meaning stays after
/// the sorted matches: sorting by price must not lift a cheap product that barely matched.
fn cut_page(list: &mut RankedList, matches: &[bool], request: &SearchRequest) {
    let is_match = |index: usize| matches.get(index).copied().unwrap_or(false);
    let matched = list
        .items
        .iter()
        .enumerate()
        .filter(|(index, _)| is_match(*index));
    list.facets = Some(Facets::count(matched.map(|(_, item)| &*item.product)));
    if request.sort != SortOrder::Relevance {
        let (mut matched, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut list.items)
            .into_iter()
            .enumerate()
            .partition(|(index, _)| is_match(*index));
        sort_by(&mut matched, request.sort, |(_, item)| &item.product);
        list.items = matched
            .into_iter()
            .chain(rest)
            .map(|(_, item)| item)
            .collect();
    }
    let end = request.page_end();
    list.next_offset = (list.items.len() > end).then_some(end);
    list.items.truncate(end);
    list.items.drain(..request.offset.min(list.items.len()));
}

/// The list a backfill appends to, and how long it may grow: one past the page, so that
/// a page that needed backfilling still says whether a next one exists. Each level's
/// products are appended best first, so a longer fill keeps the earlier pages as they were.
struct Page<'l> {
    list: &'l mut RankedList,
    fill_to: usize,
}

/// The category a guess narrowed a page to, and the constraints that still hold around it.
struct Narrowed<'a> {
    category: &'a str,
    brand: Option<&'a str>,
    stated: &'a Slots,
}

/// Fills a page the narrowed category left short: first with matches in categories that
/// name it ("Headphones (With Mic)" for "Headphones") or whose titles do, then from the
/// levels above it, nearest first (the matches and the best-rated under its parents, then
/// under its grandparents). The guess was a guess; a page of one product while the catalog holds
/// more of the kind is a wrong answer. Matches outside the category's department stay out:
/// they matched the query's other words ("good value"), not its need.
async fn backfill(
    context: &RankingContext,
    request: &SearchRequest,
    narrowed: &Narrowed<'_>,
    outside: Vec<Candidate>,
    rank_context: &RankContext<'_>,
    page: Page<'_>,
) {
    let Page { list, fill_to } = page;
    let category = narrowed.category;
    let shown = list.items.iter().map(|item| &*item.product);
    let ancestors = ancestors_of(category, shown.chain(outside.iter().map(|c| &*c.product)));
    // What the notice calls a product of a kindred category, or one whose title names it.
    let naming = |product: &Product| {
        let level = product
            .category_path
            .iter()
            .find(|level| names_category(level, category));
        match level {
            Some(level) => Some(level.clone()),
            None => names_category(&product.title, category)
                .then(|| format!("other products called {category}")),
        }
    };
    let (kindred, mut outside): (Vec<Candidate>, Vec<Candidate>) = outside
        .into_iter()
        .partition(|candidate| naming(&candidate.product).is_some());
    let mut widened: Vec<String> = Vec::new();
    let added = append_ranked(context, list, kindred, rank_context, fill_to);
    for item in &list.items[list.items.len() - added..] {
        if let Some(level) = naming(&item.product).filter(|level| !widened.contains(level)) {
            widened.push(level);
        }
    }
    for levels in ancestors {
        if list.items.len() >= fill_to {
            break;
        }
        let (mut under, rest): (Vec<Candidate>, Vec<Candidate>) =
            outside.into_iter().partition(|candidate| {
                levels
                    .iter()
                    .any(|level| on_path(&candidate.product, level))
            });
        outside = rest;
        for level in &levels {
            under.extend(best_rated_in(context, request, narrowed, level).await);
        }
        if append_ranked(context, list, under, rank_context, fill_to) > 0 {
            widened.push(format!("other {}", levels.join(" and ")));
        }
    }
    if !widened.is_empty() {
        let showing = widened.join(" and ");
        list.notices
            .push(format!("no more {category}; showing {showing}"));
    }
}

/// The best-rated products under `category` that the request's constraints allow.
async fn best_rated_in(
    context: &RankingContext,
    request: &SearchRequest,
    narrowed: &Narrowed<'_>,
    category: &str,
) -> Vec<Candidate> {
    let within = Slots {
        category: Some(category.to_string()),
        brand: narrowed.brand.map(str::to_string),
        ..narrowed.stated.clone()
    };
    let filters = effective_filters(&request.filters, &within);
    // Best effort: the answer's coverage is that of the retrieval the page was built from.
    let (hits, _missing) = context.scatter(Retrieval::TopRated, &filters).await;
    hits.into_iter().map(filler).collect()
}

/// A product that fills a page in rather than matching the query: it carries no retrieval
/// score, so it never outranks a match.
fn filler(mut candidate: Candidate) -> Candidate {
    candidate.source = CandidateSource::Requested;
    candidate.retrieval_score = 0.0;
    candidate
}

/// Ranks `candidates` not yet on the page and appends the best of them, up to `k` items in
/// all; answers how many were added.
fn append_ranked(
    context: &RankingContext,
    list: &mut RankedList,
    candidates: Vec<Candidate>,
    rank_context: &RankContext<'_>,
    k: usize,
) -> usize {
    let mut seen: HashSet<String> = list.items.iter().map(|i| i.product.id.clone()).collect();
    let fresh: Vec<Candidate> = candidates
        .into_iter()
        .filter(|candidate| seen.insert(candidate.product.id.clone()))
        .collect();
    let room = k.saturating_sub(list.items.len());
    let (added, _) = ranked_items(context, fresh, rank_context, room);
    let count = added.len();
    list.items.extend(added);
    count
}

/// BM25 hits for the query's words, unless the mode leaves text out.
async fn lexical(context: &RankingContext, request: &SearchRequest, stated: &Slots) -> Hits {
    if !request.mode.uses_text() || request.query.trim().is_empty() {
        return Hits::default();
    }
    let filters = effective_filters(&request.filters, stated);
    context
        .scatter(Retrieval::Text(request.query.clone()), &filters)
        .await
}

/// The products nearest the query's embedding, when there is one and the mode uses it.
async fn semantic(
    context: &RankingContext,
    request: &SearchRequest,
    stated: &Slots,
    query_vector: Option<Vec<f32>>,
) -> Hits {
    let Some(vector) = query_vector.filter(|_| request.mode.uses_vectors()) else {
        return Hits::default();
    };
    let filters = effective_filters(&request.filters, stated);
    context.scatter(Retrieval::Vector(vector), &filters).await
}

/// A category or brand asked for surely is a candidate source of its own: the query text
/// ("只看手机") often says nothing else a text index could match. Its products carry no
/// retrieval score: they fill in, they do not outrank matches. A query with no words left to
/// search for browses the products its constraints allow.
async fn requested(
    context: &RankingContext,
    request: &SearchRequest,
    constraints: &Slots,
    stated: &Slots,
) -> Hits {
    let sure = |confidence: Option<f64>| confidence.unwrap_or(1.0) >= FILTER_CONFIDENCE;
    let wanted = Slots {
        category: constraints
            .category
            .clone()
            .filter(|_| sure(constraints.category_confidence)),
        brand: constraints
            .brand
            .clone()
            .filter(|_| sure(constraints.brand_confidence)),
        ..stated.clone()
    };
    // A query of constraints alone ("有没有8000元以内的？" with nothing before it) browses
    // the best-rated that meet them.
    let browsing = request.query.trim().is_empty();
    if wanted.category.is_none() && wanted.brand.is_none() && !browsing {
        return Hits::default();
    }
    let wanted_filters = effective_filters(&request.filters, &wanted);
    context.scatter(Retrieval::TopRated, &wanted_filters).await
}

/// Attaches each item's search features, by name.
fn explain_search(list: &mut RankedList, features: &HashMap<String, SearchFeatureVector>) {
    for item in &mut list.items {
        item.features = features.get(&item.product.id).map(|vector| {
            SEARCH_FEATURES
                .iter()
                .zip(vector)
                .map(|(name, value)| (name.to_string(), *value))
                .collect()
        });
    }
}

/// The best `k` candidates as ranked items, and which of them match the query.
fn ranked_items(
    context: &RankingContext,
    candidates: Vec<Candidate>,
    rank_context: &RankContext,
    k: usize,
) -> (Vec<RankedItem>, Vec<bool>) {
    if k == 0 {
        return (Vec::new(), Vec::new());
    }
    let ranked = rank(candidates, rank_context, &context.config.ranking, k);
    let matches = ranked.iter().map(|scored| scored.matches_query).collect();
    let items = ranked
        .into_iter()
        .map(|scored| RankedItem {
            product: scored.product,
            score: scored.score,
            reasons: scored.reasons,
            features: None,
        })
        .collect();
    (items, matches)
}

/// The ranked list of `candidates`, and which of its items match the query.
fn finish(
    context: &RankingContext,
    candidates: Vec<Candidate>,
    missing_shards: Vec<MissingShard>,
    rank_context: &RankContext,
    k: usize,
) -> (RankedList, Vec<bool>) {
    let (items, matches) = ranked_items(context, candidates, rank_context, k);
    let list = RankedList {
        items,
        missing_shards,
        shard_count: context.shard_count(),
        ..RankedList::default()
    };
    (list, matches)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use inkling_domain::testing::product;
    use inkling_domain::{Product, Profile};
    use inkling_models::intent::{IntentClass, Slots, Understanding};

    use super::search;
    use crate::ActorError;
    use crate::protocol::{SearchMode, SearchRequest};
    use crate::ranker::testing::{Asked, FakeShards, FakeSignals, context, ids, stored};
    use crate::signals::SignalAnswer;

    struct Case {
        name: &'static str,
        query: &'static str,
        mode: SearchMode,
        /// The query's embedding, as the session's encoder computed it (none on a node
        /// without an encoder).
        query_vector: Option<&'static [f32]>,
        /// A category read from the query, and how sure that reading is.
        category_guess: Option<(&'static str, f64)>,
        /// A shard that answers nothing before its deadline.
        timed_out_shard: Option<usize>,
        /// The page size asked for.
        k: usize,
        /// The answer's products, as a set.
        expect_ids: &'static [&'static str],
        expect_first: &'static str,
        expect_asked: &'static [Asked],
        expect_missing: &'static [usize],
        expect_notices: &'static [&'static str],
    }

    fn rated(id: &str, title: &str, path: [&str; 3], rating: f32) -> Product {
        Product {
            title: title.into(),
            rating: Some(rating),
            category_path: path.map(str::to_string).to_vec(),
            ..product(id, path[2], 10.0)
        }
    }

    /// Three shards: mugs on 0, a kettle on 1, a cup on 2. The crimson cup shares no word
    /// with "red mug" but means much the same; the kettle is the best-rated. Mugs and
    /// kettles are both kitchen things, and everything is in the Home department.
    fn catalog() -> Vec<Vec<crate::ranker::testing::Stored>> {
        vec![
            vec![
                stored(
                    rated("red-mug", "Red Mug", ["Home", "Kitchen", "Mugs"], 4.0),
                    Some(&[1.0, 0.0]),
                ),
                stored(
                    rated("blue-mug", "Blue Mug", ["Home", "Kitchen", "Mugs"], 4.5),
                    Some(&[0.6, 0.8]),
                ),
            ],
            vec![stored(
                rated(
                    "red-kettle",
                    "Red Kettle",
                    ["Home", "Kitchen", "Kettles"],
                    4.8,
                ),
                Some(&[0.0, 1.0]),
            )],
            vec![stored(
                rated(
                    "crimson-cup",
                    "Crimson Cup",
                    ["Home", "Tableware", "Cups"],
                    3.0,
                ),
                Some(&[0.9, 0.1]),
            )],
        ]
    }

    fn understanding(category: &str, confidence: f64) -> Understanding {
        let constraints = Slots {
            category: Some(category.into()),
            category_confidence: Some(confidence),
            ..Slots::default()
        };
        Understanding {
            intent: IntentClass::Browse,
            confidence: 1.0,
            follow_up: false,
            turn: constraints.clone(),
            constraints,
            topic: String::new(),
        }
    }

    async fn check(case: Case) {
        let mut shards = FakeShards::new(catalog());
        if let Some(shard) = case.timed_out_shard {
            let late = ActorError::Timeout(format!("index shard {shard} did not answer"));
            shards = shards.failing(shard, late);
        }
        let shards = Arc::new(shards);
        let signals = Arc::new(FakeSignals::answering(Ok(SignalAnswer::default())));
        let context = context(shards.clone(), signals.clone());
        let request = SearchRequest {
            mode: case.mode,
            ..SearchRequest::new("shopper", case.query, case.k)
        };
        let guess = case
            .category_guess
            .map(|(category, confidence)| understanding(category, confidence));
        let vector = case.query_vector.map(<[f32]>::to_vec);
        let profile = Profile::new("shopper");
        let list = search(&context, request, &profile, guess.clone(), vector).await;

        let mut found = ids(&list);
        assert_eq!(
            found.first(),
            Some(&case.expect_first),
            "{}: first",
            case.name
        );
        found.sort();
        assert_eq!(found, case.expect_ids, "{}: products", case.name);
        assert_eq!(
            shards.asked(),
            case.expect_asked,
            "{}: retrievals",
            case.name
        );
        let missing: Vec<usize> = list.missing_shards.iter().map(|m| m.shard).collect();
        assert_eq!(
            missing, case.expect_missing,
            "{}: missing shards",
            case.name
        );
        assert_eq!(list.notices, case.expect_notices, "{}: notices", case.name);
        assert_eq!(list.shard_count, 3, "{}: shard count", case.name);
        assert_eq!(list.understanding, guess, "{}: understanding", case.name);
        assert!(
            signals.asked.lock().is_empty(),
            "{}: signals asked",
            case.name
        );
    }

    #[tokio::test]
    async fn search_pipeline() {
        let cases = [
            Case {
                name: "lexical search ignores the query's embedding",
                query: "red mug",
                mode: SearchMode::Lexical,
                query_vector: Some(&[1.0, 0.0]),
                category_guess: None,
                timed_out_shard: None,
                k: 10,
                expect_ids: &["blue-mug", "red-kettle", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text],
                expect_missing: &[],
                expect_notices: &[],
            },
            Case {
                name: "hybrid search fuses word and meaning hits",
                query: "red mug",
                mode: SearchMode::Hybrid,
                query_vector: Some(&[1.0, 0.0]),
                category_guess: None,
                timed_out_shard: None,
                k: 10,
                expect_ids: &["blue-mug", "crimson-cup", "red-kettle", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text, Asked::Vector],
                expect_missing: &[],
                expect_notices: &[],
            },
            Case {
                name: "vector search asks no text index",
                query: "red mug",
                mode: SearchMode::Vector,
                query_vector: Some(&[0.0, 1.0]),
                category_guess: None,
                timed_out_shard: None,
                k: 10,
                expect_ids: &["blue-mug", "crimson-cup", "red-kettle", "red-mug"],
                expect_first: "red-kettle",
                expect_asked: &[Asked::Vector],
                expect_missing: &[],
                expect_notices: &[],
            },
            Case {
                name: "hybrid search without an embedding is lexical",
                query: "red mug",
                mode: SearchMode::Hybrid,
                query_vector: None,
                category_guess: None,
                timed_out_shard: None,
                k: 10,
                expect_ids: &["blue-mug", "red-kettle", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text],
                expect_missing: &[],
                expect_notices: &[],
            },
            Case {
                name: "a shard that times out is reported, the rest still answer",
                query: "red mug",
                mode: SearchMode::Hybrid,
                query_vector: Some(&[1.0, 0.0]),
                category_guess: None,
                timed_out_shard: Some(0),
                k: 10,
                expect_ids: &["crimson-cup", "red-kettle"],
                expect_first: "red-kettle",
                expect_asked: &[Asked::Text, Asked::Vector],
                expect_missing: &[0],
                expect_notices: &[],
            },
            Case {
                name: "a sure category guess that would empty the answer is relaxed",
                query: "red mug",
                mode: SearchMode::Lexical,
                query_vector: None,
                category_guess: Some(("Teapots", 0.9)),
                timed_out_shard: None,
                k: 10,
                expect_ids: &["blue-mug", "red-kettle", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text, Asked::TopRated],
                expect_missing: &[],
                expect_notices: &["nothing in Teapots matches; showing everything that matches"],
            },
            Case {
                name: "a sure category guess narrows, and its best-rated fill in",
                query: "red",
                mode: SearchMode::Lexical,
                query_vector: None,
                category_guess: Some(("Mugs", 0.9)),
                timed_out_shard: None,
                k: 2,
                expect_ids: &["blue-mug", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text, Asked::TopRated],
                expect_missing: &[],
                expect_notices: &[],
            },
            Case {
                name: "a page the category leaves short backfills from its parent",
                query: "red",
                mode: SearchMode::Lexical,
                query_vector: None,
                category_guess: Some(("Mugs", 0.9)),
                timed_out_shard: None,
                k: 3,
                expect_ids: &["blue-mug", "red-kettle", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text, Asked::TopRated],
                expect_missing: &[],
                expect_notices: &["no more Mugs; showing other Kitchen"],
            },
            Case {
                name: "matches outside the category's department stay out of the backfill",
                query: "cup",
                mode: SearchMode::Hybrid,
                query_vector: Some(&[1.0, 0.0]),
                category_guess: Some(("Kettles", 0.9)),
                timed_out_shard: None,
                k: 10,
                expect_ids: &["blue-mug", "red-kettle", "red-mug"],
                expect_first: "red-kettle",
                expect_asked: &[Asked::Text, Asked::Vector, Asked::TopRated],
                expect_missing: &[],
                expect_notices: &["no more Kettles; showing other Kitchen"],
            },
            Case {
                name: "an unsure category guess boosts instead of filtering",
                query: "red",
                mode: SearchMode::Lexical,
                query_vector: None,
                category_guess: Some(("Mugs", 0.5)),
                timed_out_shard: None,
                k: 10,
                expect_ids: &["red-kettle", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text],
                expect_missing: &[],
                expect_notices: &[],
            },
            Case {
                name: "without a guess, the best-rated of equal matches leads",
                query: "red",
                mode: SearchMode::Lexical,
                query_vector: None,
                category_guess: None,
                timed_out_shard: None,
                k: 10,
                expect_ids: &["red-kettle", "red-mug"],
                expect_first: "red-kettle",
                expect_asked: &[Asked::Text],
                expect_missing: &[],
                expect_notices: &[],
            },
        ];
        for case in cases {
            check(case).await;
        }
    }
}
