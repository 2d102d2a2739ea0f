//! The search pipeline: scatter the query to every shard (BM25, nearest vectors, and the
//! category or brand asked for surely), fuse the lists, settle the guessed category and
//! brand against the hits, then score and explain the candidates with the profile.

use std::collections::HashMap;
use std::sync::Arc;

use inkling_domain::{Profile, now_ms};
use inkling_models::fusion::{RankedHits, by_score, fuse};
use inkling_models::intent::{Slots, Understanding};
use inkling_models::search_ranker::{
    SEARCH_FEATURES, SearchFeatureVector, SearchRanker, fuse_learned,
};
use inkling_models::slot_evidence::{FILTER_CONFIDENCE, settle};
use inkling_models::{Budget, Candidate, CandidateSource, Matched, RankContext, rank};
use inkling_storage::Retrieval;

use super::context::{Hits, RankingContext, merge_missing};
use crate::protocol::{MissingShard, RankedItem, RankedList, SearchRequest, effective_filters};

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
    // Explaining without a learned ranker logs the features under weights that rank as
    // convex fusion does, so the answer is the one the shopper would get.
    let learned = context.search_ranker.clone().or_else(|| {
        request
            .explain
            .then(|| Arc::new(SearchRanker::convex(weights.semantic)))
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
                    weight: weights.semantic,
                },
            ];
            (fuse(&request.query, lists, weights.fusion), HashMap::new())
        }
    };
    candidates.extend(wanted.into_iter().map(|mut candidate| {
        candidate.source = CandidateSource::Requested;
        candidate.retrieval_score = 0.0;
        candidate
    }));
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
    let mut list = finish(
        context,
        settled.candidates,
        missing_shards,
        &rank_context,
        request.k,
    );
    if request.explain {
        explain_search(&mut list, &features);
    }
    list.understanding = understanding;
    list.notices = settled.notices;
    list
}

/// BM25 hits for the query's words, unless the mode leaves text out.
async fn lexical(context: &RankingContext, request: &SearchRequest, stated: &Slots) -> Hits {
    if !request.mode.uses_text() {
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
/// ("有没有8000元以内的？") often says nothing else a text index could match. Its products
/// carry no retrieval score: they fill in, they do not outrank matches.
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
    if wanted.category.is_none() && wanted.brand.is_none() {
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

fn finish(
    context: &RankingContext,
    candidates: Vec<Candidate>,
    missing_shards: Vec<MissingShard>,
    rank_context: &RankContext,
    k: usize,
) -> RankedList {
    let items = rank(candidates, rank_context, &context.config.ranking, k)
        .into_iter()
        .map(|scored| RankedItem {
            product: scored.product,
            score: scored.score,
            reasons: scored.reasons,
            features: None,
        })
        .collect();
    RankedList {
        items,
        missing_shards,
        shard_count: context.shard_count(),
        understanding: None,
        notices: Vec::new(),
    }
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
        /// The answer's products, as a set.
        expect_ids: &'static [&'static str],
        expect_first: &'static str,
        expect_asked: &'static [Asked],
        expect_missing: &'static [usize],
        expect_notices: &'static [&'static str],
    }

    fn rated(id: &str, title: &str, category: &str, rating: f32) -> Product {
        Product {
            title: title.into(),
            rating: Some(rating),
            ..product(id, category, 10.0)
        }
    }

    /// Three shards: mugs on 0, a kettle on 1, a cup on 2. The crimson cup shares no word
    /// with "red mug" but means much the same; the kettle is the best-rated.
    fn catalog() -> Vec<Vec<crate::ranker::testing::Stored>> {
        vec![
            vec![
                stored(rated("red-mug", "Red Mug", "Mugs", 4.0), Some(&[1.0, 0.0])),
                stored(
                    rated("blue-mug", "Blue Mug", "Mugs", 4.5),
                    Some(&[0.6, 0.8]),
                ),
            ],
            vec![stored(
                rated("red-kettle", "Red Kettle", "Kettles", 4.8),
                Some(&[0.0, 1.0]),
            )],
            vec![stored(
                rated("crimson-cup", "Crimson Cup", "Cups", 3.0),
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
            user_id: "shopper".into(),
            session_id: None,
            query: case.query.into(),
            k: 10,
            filters: Default::default(),
            mode: case.mode,
            explain: false,
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
                expect_ids: &["blue-mug", "red-kettle", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text, Asked::TopRated],
                expect_missing: &[],
                expect_notices: &["nothing in Teapots matches; showing everything that matches"],
            },
            Case {
                name: "a sure category guess filters, and its best-rated fill in",
                query: "red",
                mode: SearchMode::Lexical,
                query_vector: None,
                category_guess: Some(("Mugs", 0.9)),
                timed_out_shard: None,
                expect_ids: &["blue-mug", "red-mug"],
                expect_first: "red-mug",
                expect_asked: &[Asked::Text, Asked::TopRated],
                expect_missing: &[],
                expect_notices: &[],
            },
            Case {
                name: "an unsure category guess boosts instead of filtering",
                query: "red",
                mode: SearchMode::Lexical,
                query_vector: None,
                category_guess: Some(("Mugs", 0.5)),
                timed_out_shard: None,
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
