//! Fusion of ranked candidate lists (BM25 hits and embedding hits) into one.
//!
//! BM25 scores and cosine similarities live on unrelated scales, so each list is first
//! brought to `[0, 1]`. Two methods:
//!
//! * [`Fusion::Convex`]: min-max normalise each list's scores, then add them up with the
//!   lists' weights; a product missing from a list gets 0 from it. Bruch, Gai & Ingber
//!   ("An Analysis of Fusion Functions for Hybrid Retrieval", TOIS 2023) found this beats
//!   RRF once the weight is tuned; Inkling's weight is chosen on a validation split (see
//!   docs/benchmarks.md).
//! * [`Fusion::ReciprocalRank`] (Cormack, Clarke & Büttcher, SIGIR 2009): each list
//!   contributes `weight / (k + rank)`, rank counted from 1; it needs no tuning at all.

use std::collections::HashMap;

use crate::candidate::{Candidate, CandidateSource, Matched};

/// The rank constant of the original paper; it flattens the head of each list, so one list's
/// first hit cannot outvote agreement between lists.
pub const RRF_K: f64 = 60.0;

/// One ranked list to fuse: its hits best first, what a hit in it means, and its weight.
pub struct RankedHits {
    pub hits: Vec<Candidate>,
    pub matched: Matched,
    pub weight: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    Convex,
    ReciprocalRank { k: f64 },
}

/// Each hit's share of the fused score, in the list's order.
fn contributions(list: &RankedHits, fusion: Fusion) -> Vec<f64> {
    match fusion {
        Fusion::ReciprocalRank { k } => (0..list.hits.len())
            .map(|index| list.weight / (k + index as f64 + 1.0))
            .collect(),
        Fusion::Convex => {
            let scores = list.hits.iter().map(|hit| f64::from(hit.retrieval_score));
            let (low, high) = scores.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), s| {
                (l.min(s), h.max(s))
            });
            let span = high - low;
            list.hits
                .iter()
                .map(|hit| {
                    let score = f64::from(hit.retrieval_score);
                    // A list whose hits all score alike gives each of them full weight.
                    let normalised = if span > 0.0 {
                        (score - low) / span
                    } else {
                        1.0
                    };
                    list.weight * normalised
                })
                .collect()
        }
    }
}

/// Fuses `lists` into search candidates for `query`, best first, each scored by `fusion`
/// and marked with how it matched (words, meaning, or both).
pub fn fuse(query: &str, lists: Vec<RankedHits>, fusion: Fusion) -> Vec<Candidate> {
    let mut fused: HashMap<String, (Candidate, f64, Option<Matched>)> = HashMap::new();
    for list in lists {
        let shares = contributions(&list, fusion);
        for (hit, contribution) in list.hits.into_iter().zip(shares) {
            let entry = fused
                .entry(hit.product.id.clone())
                .or_insert((hit, 0.0, None));
            entry.1 += contribution;
            entry.2 = Some(match entry.2 {
                Some(previous) if previous != list.matched => Matched::Both,
                _ => list.matched,
            });
        }
    }
    let mut candidates: Vec<Candidate> = fused
        .into_values()
        .map(|(mut candidate, score, matched)| {
            candidate.retrieval_score = score as f32;
            candidate.source = CandidateSource::Search {
                query: query.to_string(),
                matched: matched.unwrap_or(Matched::Words),
            };
            candidate
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.retrieval_score
            .total_cmp(&a.retrieval_score)
            .then_with(|| a.product.id.cmp(&b.product.id))
    });
    candidates
}

/// Sorts one list's hits best first by their retrieval score, as gathered from many shards.
pub fn by_score(mut hits: Vec<Candidate>) -> Vec<Candidate> {
    hits.sort_by(|a, b| {
        b.retrieval_score
            .total_cmp(&a.retrieval_score)
            .then_with(|| a.product.id.cmp(&b.product.id))
    });
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkling_domain::Product;

    fn hit(id: &str) -> Candidate {
        Candidate {
            product: std::sync::Arc::new(Product {
                id: id.into(),
                title: id.into(),
                category_path: Vec::new(),
                brand: None,
                price: 1.0,
                currency: "USD".into(),
                rating: None,
                in_stock: true,
                attributes: Default::default(),
                listed_at_ms: None,
            }),
            retrieval_score: 0.0,
            source: CandidateSource::Requested,
        }
    }

    fn list(ids: &[&str], matched: Matched, weight: f64) -> RankedHits {
        RankedHits {
            hits: ids.iter().map(|id| hit(id)).collect(),
            matched,
            weight,
        }
    }

    /// Fuses words and meaning lists and checks the order and how each product matched.
    fn check(words: &[&str], meaning: &[&str], meaning_weight: f64, expected: &[(&str, Matched)]) {
        let lists = vec![
            list(words, Matched::Words, 1.0),
            list(meaning, Matched::Meaning, meaning_weight),
        ];
        let fused: Vec<(String, Matched)> = fuse("q", lists, Fusion::ReciprocalRank { k: RRF_K })
            .into_iter()
            .map(|candidate| match candidate.source {
                CandidateSource::Search { matched, .. } => (candidate.product.id.clone(), matched),
                other => panic!("unexpected source {other:?}"),
            })
            .collect();
        let expected: Vec<(String, Matched)> = expected
            .iter()
            .map(|(id, m)| (id.to_string(), *m))
            .collect();
        assert_eq!(fused, expected, "words {words:?} meaning {meaning:?}");
    }

    /// (BM25 list, embedding list, embedding weight, expected order with how each matched)
    type RankCase = (
        &'static [&'static str],
        &'static [&'static str],
        f64,
        &'static [(&'static str, Matched)],
    );

    /// (BM25 hits, embedding hits, embedding weight, expected (id, fused score))
    type ScoreCase = (
        &'static [(&'static str, f32)],
        &'static [(&'static str, f32)],
        f64,
        &'static [(&'static str, f64)],
    );

    #[test]
    fn fusion_cases() {
        use Matched::{Both, Meaning, Words};
        let cases: &[RankCase] = &[
            // Agreement beats a single first place.
            (
                &["a", "b"],
                &["c", "b"],
                1.0,
                &[("b", Both), ("a", Words), ("c", Meaning)],
            ),
            // Equal contributions tie; ids break the tie so answers are stable.
            (&["a"], &["c"], 1.0, &[("a", Words), ("c", Meaning)]),
            // A heavier list wins ties of rank.
            (&["a"], &["c"], 2.0, &[("c", Meaning), ("a", Words)]),
            (&[], &["c"], 1.0, &[("c", Meaning)]),
            (&[], &[], 1.0, &[]),
        ];
        for (words, meaning, weight, expected) in cases {
            check(words, meaning, *weight, expected);
        }
    }

    fn scored(hits: &[(&str, f32)], matched: Matched, weight: f64) -> RankedHits {
        RankedHits {
            hits: hits
                .iter()
                .map(|(id, score)| Candidate {
                    retrieval_score: *score,
                    ..hit(id)
                })
                .collect(),
            matched,
            weight,
        }
    }

    #[test]
    fn convex_fusion_cases() {
        let cases: &[ScoreCase] = &[
            // Min-max: the best of each list gets its weight, the worst gets 0.
            (
                &[("a", 12.0), ("b", 6.0), ("c", 2.0)],
                &[("c", 0.9), ("a", 0.7), ("d", 0.5)],
                0.5,
                &[("a", 1.25), ("b", 0.4), ("c", 0.5), ("d", 0.0)],
            ),
            // One hit, or hits scoring alike: full weight each.
            (&[("a", 3.0)], &[], 1.0, &[("a", 1.0)]),
            (
                &[],
                &[("x", 0.8), ("y", 0.8)],
                2.0,
                &[("x", 2.0), ("y", 2.0)],
            ),
        ];
        for (words, meaning, weight, expected) in cases {
            let lists = vec![
                scored(words, Matched::Words, 1.0),
                scored(meaning, Matched::Meaning, *weight),
            ];
            let mut fused: Vec<(String, f64)> = fuse("q", lists, Fusion::Convex)
                .into_iter()
                .map(|c| (c.product.id.clone(), f64::from(c.retrieval_score)))
                .collect();
            fused.sort_by(|a, b| a.0.cmp(&b.0));
            let mut expected: Vec<(String, f64)> = expected
                .iter()
                .map(|(id, s)| (id.to_string(), *s))
                .collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            let close = fused.len() == expected.len()
                && fused
                    .iter()
                    .zip(&expected)
                    .all(|(f, e)| f.0 == e.0 && (f.1 - e.1).abs() < 1e-6);
            assert!(close, "{words:?} {meaning:?}: {fused:?} != {expected:?}");
        }
    }
}
