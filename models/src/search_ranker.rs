//! The learned search ranker: scores each search candidate from how it matched (its place
//! and score in the BM25 list and in the embedding list) and how its title covers the query,
//! with weights fitted by `inkling train search-ranker` on graded judgements (listwise
//! softmax, in libtorch).
//!
//! Its default weights are convex fusion's (BM25 + `semantic` × embedding, each list
//! min-max normalised), so features can be logged from a node that has no fitted file and
//! ranks exactly as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::candidate::{Candidate, CandidateSource, Matched};

/// The features, in vector order.
pub const SEARCH_FEATURES: [&str; 12] = [
    // Min-max normalised BM25 within the text list; 0 when the text did not match.
    "bm25",
    // BM25 as a share of the list's best: how far behind the best text match it is.
    "bm25_share",
    // 1 / rank in the text list.
    "bm25_rr",
    // Min-max normalised cosine within the embedding list.
    "cosine",
    // The cosine itself: lists differ in how close their best hit is.
    "cosine_raw",
    "cosine_rr",
    // Found by both lists.
    "both_lists",
    // Share of the query's words in the title.
    "coverage",
    "all_words",
    // The query's words, two or more, appear together and in order in the title.
    "phrase",
    // ln(1 + title words) / 4: long titles match many words by accident.
    "title_length",
    // The title has the query's last word, in English usually the thing wanted ("hp laptop
    // battery" wants a battery).
    "head_word",
];

pub const SEARCH_FEATURE_COUNT: usize = SEARCH_FEATURES.len();

pub type SearchFeatureVector = [f32; SEARCH_FEATURE_COUNT];

/// Linear weights over [`SEARCH_FEATURES`], stored by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRanker {
    pub weights: BTreeMap<String, f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchRankerError {
    #[error("cannot read search ranker {path}: {message}")]
    Read { path: String, message: String },
    #[error("search ranker {path}: unknown feature {feature:?}")]
    UnknownFeature { path: String, feature: String },
}

impl SearchRanker {
    /// Convex fusion: BM25 plus `semantic` times the embedding similarity.
    pub fn convex(semantic: f64) -> Self {
        let mut ranker = Self::from_vector(&[0.0; SEARCH_FEATURE_COUNT]);
        ranker.weights.insert("bm25".to_string(), 1.0);
        ranker.weights.insert("cosine".to_string(), semantic as f32);
        ranker
    }

    pub fn from_vector(vector: &SearchFeatureVector) -> Self {
        Self {
            weights: SEARCH_FEATURES
                .iter()
                .zip(vector)
                .map(|(name, weight)| (name.to_string(), *weight))
                .collect(),
        }
    }

    pub fn vector(&self) -> SearchFeatureVector {
        let mut vector = [0.0; SEARCH_FEATURE_COUNT];
        for (index, name) in SEARCH_FEATURES.iter().enumerate() {
            vector[index] = self.weights.get(*name).copied().unwrap_or(0.0);
        }
        vector
    }

    pub fn score(&self, features: &SearchFeatureVector) -> f32 {
        dot(&self.vector(), features)
    }

    pub fn load(path: &Path) -> Result<Self, SearchRankerError> {
        let read = |message: String| SearchRankerError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|error| read(error.to_string()))?;
        let ranker: Self = serde_json::from_str(&text).map_err(|error| read(error.to_string()))?;
        if let Some(feature) = ranker
            .weights
            .keys()
            .find(|name| !SEARCH_FEATURES.contains(&name.as_str()))
        {
            return Err(SearchRankerError::UnknownFeature {
                path: path.display().to_string(),
                feature: feature.clone(),
            });
        }
        Ok(ranker)
    }
}

fn dot(a: &SearchFeatureVector, b: &SearchFeatureVector) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Fuses the text and embedding hits (each best first) into candidates scored by
/// `ranker`, best first, with each candidate's features by product id. Scores are
/// min-max normalised over the candidates, so the best has 1, as fused scores are read
/// downstream (a product is relevant at a share of the best).
pub fn fuse_learned(
    query: &str,
    words: Vec<Candidate>,
    meaning: Vec<Candidate>,
    ranker: &SearchRanker,
) -> (Vec<Candidate>, HashMap<String, SearchFeatureVector>) {
    let query_words = words_of(query);
    let word_positions = positions(&words);
    let meaning_positions = positions(&meaning);
    let mut seen = HashSet::new();
    let mut candidates: Vec<(Candidate, SearchFeatureVector, f32)> = Vec::new();
    for (hit, matched) in words
        .into_iter()
        .map(|hit| (hit, Matched::Words))
        .chain(meaning.into_iter().map(|hit| (hit, Matched::Meaning)))
    {
        if !seen.insert(hit.product.id.clone()) {
            continue;
        }
        let lexical = word_positions.get(hit.product.id.as_str()).copied();
        let semantic = meaning_positions.get(hit.product.id.as_str()).copied();
        let features = features(&query_words, &hit.product.title, lexical, semantic);
        let matched = match (lexical, semantic) {
            (Some(_), Some(_)) => Matched::Both,
            _ => matched,
        };
        let score = ranker.score(&features);
        let candidate = Candidate {
            source: CandidateSource::Search {
                query: query.to_string(),
                matched,
            },
            ..hit
        };
        candidates.push((candidate, features, score));
    }
    let (low, high) = candidates.iter().fold(
        (f32::INFINITY, f32::NEG_INFINITY),
        |(low, high), (_, _, score)| (low.min(*score), high.max(*score)),
    );
    let span = high - low;
    let mut features = HashMap::with_capacity(candidates.len());
    let fused: Vec<Candidate> = candidates
        .into_iter()
        .map(|(mut candidate, vector, score)| {
            candidate.retrieval_score = if span > 0.0 {
                (score - low) / span
            } else {
                1.0
            };
            features.insert(candidate.product.id.clone(), vector);
            candidate
        })
        .collect();
    (crate::fusion::by_score(fused), features)
}

/// Where a hit stands in its list: rank from 1, raw score, min-max normalised score.
#[derive(Debug, Clone, Copy)]
struct Position {
    rank: usize,
    score: f32,
    normalised: f32,
    share_of_best: f32,
}

fn positions(hits: &[Candidate]) -> HashMap<String, Position> {
    let (low, high) = hits
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), hit| {
            (low.min(hit.retrieval_score), high.max(hit.retrieval_score))
        });
    let span = high - low;
    let best = high.max(f32::EPSILON);
    hits.iter()
        .enumerate()
        .map(|(index, hit)| {
            let normalised = if span > 0.0 {
                (hit.retrieval_score - low) / span
            } else {
                1.0
            };
            let position = Position {
                rank: index + 1,
                score: hit.retrieval_score,
                normalised,
                share_of_best: hit.retrieval_score / best,
            };
            (hit.product.id.clone(), position)
        })
        .collect()
}

fn features(
    query: &[String],
    title: &str,
    lexical: Option<Position>,
    semantic: Option<Position>,
) -> SearchFeatureVector {
    let title = words_of(title);
    let covered = query.iter().filter(|word| title.contains(word)).count();
    let coverage = if query.is_empty() {
        0.0
    } else {
        covered as f32 / query.len() as f32
    };
    let phrase = query.len() >= 2 && title.windows(query.len()).any(|window| window == query);
    let head_word = query.last().is_some_and(|word| title.contains(word));
    [
        lexical.map_or(0.0, |p| p.normalised),
        lexical.map_or(0.0, |p| p.share_of_best),
        lexical.map_or(0.0, |p| 1.0 / p.rank as f32),
        semantic.map_or(0.0, |p| p.normalised),
        semantic.map_or(0.0, |p| p.score),
        semantic.map_or(0.0, |p| 1.0 / p.rank as f32),
        f32::from(u8::from(lexical.is_some() && semantic.is_some())),
        coverage,
        f32::from(u8::from(covered == query.len() && !query.is_empty())),
        f32::from(u8::from(phrase)),
        (1.0 + title.len() as f32).ln() / 4.0,
        f32::from(u8::from(head_word)),
    ]
}

/// Lower-cased words, Chinese characters one by one, a plural `s` dropped: a crude match
/// that needs no index analyser, for features only.
fn words_of(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, words: &mut Vec<String>| {
        if current.is_empty() {
            return;
        }
        let word = std::mem::take(current);
        let stem = match word.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_string(),
            _ => word,
        };
        words.push(stem);
    };
    for character in text.chars().flat_map(char::to_lowercase) {
        if is_han(character) {
            flush(&mut current, &mut words);
            words.push(character.to_string());
        } else if character.is_alphanumeric() {
            current.push(character);
        } else {
            flush(&mut current, &mut words);
        }
    }
    flush(&mut current, &mut words);
    words
}

fn is_han(character: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&character)
}

/// One query's candidates with their judged gains, for fitting.
#[derive(Debug, Clone)]
pub struct GradedList {
    pub candidates: Vec<SearchFeatureVector>,
    pub gains: Vec<f32>,
}

#[derive(Debug, Clone, Copy)]
pub struct SearchTrainOptions {
    pub epochs: usize,
    pub learning_rate: f64,
    /// L2 penalty on the weights.
    pub l2: f64,
    pub seed: i64,
}

impl Default for SearchTrainOptions {
    fn default() -> Self {
        Self {
            epochs: 400,
            learning_rate: 0.05,
            l2: 1e-4,
            seed: 7,
        }
    }
}

/// Fits the weights listwise (ListNet): each list's softmax over scores is pulled toward
/// its gains, normalised. Lists without a positive gain or with one candidate teach nothing
/// and are skipped.
pub fn fit(
    lists: &[GradedList],
    options: &SearchTrainOptions,
) -> Result<SearchRanker, tch::TchError> {
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind, Tensor, nn};

    let learnable: Vec<&GradedList> = lists
        .iter()
        .filter(|list| list.candidates.len() > 1 && list.gains.iter().any(|gain| *gain > 0.0))
        .collect();
    let width = learnable
        .iter()
        .map(|list| list.candidates.len())
        .max()
        .unwrap_or(1);
    let (count, features) = (learnable.len(), SEARCH_FEATURE_COUNT);
    let mut inputs = vec![0.0f32; count * width * features];
    // Padding gets a large negative logit, not -inf: 0 × -inf would poison the loss.
    let mut padding = vec![-1e4f32; count * width];
    let mut targets = vec![0.0f32; count * width];
    for (row, list) in learnable.iter().enumerate() {
        let total: f32 = list.gains.iter().map(|gain| gain.max(0.0)).sum();
        for (column, (vector, gain)) in list.candidates.iter().zip(&list.gains).enumerate() {
            let at = row * width + column;
            inputs[at * features..(at + 1) * features].copy_from_slice(vector);
            padding[at] = 0.0;
            targets[at] = gain.max(0.0) / total;
        }
    }
    let shape = [count as i64, width as i64];
    let inputs = Tensor::from_slice(&inputs).reshape([count as i64, width as i64, features as i64]);
    let padding = Tensor::from_slice(&padding).reshape(shape);
    let targets = Tensor::from_slice(&targets).reshape(shape);
    tch::manual_seed(options.seed);
    let store = nn::VarStore::new(Device::Cpu);
    let initial = SearchRanker::convex(0.5).vector();
    let weights = store.root().var_copy(
        "weights",
        &Tensor::from_slice(&initial).reshape([features as i64, 1]),
    );
    let mut optimiser = nn::Adam::default().build(&store, options.learning_rate)?;
    for _ in 0..options.epochs {
        let logits = inputs.matmul(&weights).squeeze_dim(-1) + &padding;
        let cross_entropy = -(logits.log_softmax(-1, Kind::Float) * &targets).sum(Kind::Float)
            / count.max(1) as f64;
        let loss = cross_entropy + options.l2 * weights.pow_tensor_scalar(2).sum(Kind::Float);
        optimiser.backward_step(&loss);
    }
    let fitted: Vec<f32> = Vec::<f32>::try_from(weights.detach().flatten(0, -1))?;
    let mut vector = [0.0; SEARCH_FEATURE_COUNT];
    vector.copy_from_slice(&fitted);
    Ok(SearchRanker::from_vector(&vector))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkling_domain::Product;

    fn hit(id: &str, title: &str, score: f32) -> Candidate {
        Candidate {
            product: std::sync::Arc::new(Product {
                id: id.into(),
                title: title.into(),
                category_path: Vec::new(),
                brand: None,
                price: 1.0,
                currency: "USD".into(),
                rating: None,
                in_stock: true,
                attributes: Default::default(),
                listed_at_ms: None,
            }),
            retrieval_score: score,
            source: CandidateSource::Requested,
        }
    }

    #[test]
    fn words_are_lowercased_split_and_plurals_dropped() {
        for (text, expected) in [
            ("Coffee Mugs", vec!["coffee", "mug"]),
            ("咖啡杯 x2", vec!["咖", "啡", "杯", "x2"]),
            ("glass", vec!["glass"]),
            ("bus", vec!["bus"]),
        ] {
            assert_eq!(words_of(text), expected, "{text}");
        }
    }

    #[test]
    fn default_weights_rank_as_convex_fusion() {
        let words = vec![hit("a", "red mug", 9.0), hit("b", "blue mug", 3.0)];
        let meaning = vec![hit("b", "blue mug", 0.9), hit("c", "cup", 0.5)];
        let convex = crate::fusion::fuse(
            "mug",
            vec![
                crate::fusion::RankedHits {
                    hits: words.clone(),
                    matched: Matched::Words,
                    weight: 1.0,
                },
                crate::fusion::RankedHits {
                    hits: meaning.clone(),
                    matched: Matched::Meaning,
                    weight: 0.5,
                },
            ],
            crate::fusion::Fusion::Convex,
        );
        let (learned, features) = fuse_learned("mug", words, meaning, &SearchRanker::convex(0.5));
        let ids = |list: &[Candidate]| {
            list.iter()
                .map(|c| c.product.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&learned), ids(&convex));
        let index = |name: &str| SEARCH_FEATURES.iter().position(|f| *f == name).unwrap();
        assert_eq!(
            features["b"][index("both_lists")],
            1.0,
            "b is in both lists"
        );
        assert_eq!(features["c"][index("bm25")], 0.0, "c has no text match");
    }

    #[test]
    fn fitting_learns_which_feature_tells_the_relevant_product() {
        const BM25: usize = 0;
        const COVERAGE: usize = 7;
        assert_eq!(SEARCH_FEATURES[BM25], "bm25");
        assert_eq!(SEARCH_FEATURES[COVERAGE], "coverage");
        // Relevance follows coverage, not BM25: the fitted ranker must rank by coverage.
        let lists: Vec<GradedList> = (0..20)
            .map(|shift| {
                let candidates: Vec<SearchFeatureVector> = (0..5)
                    .map(|index| {
                        let mut vector = [0.0; SEARCH_FEATURE_COUNT];
                        vector[BM25] = ((index + shift) % 5) as f32 / 4.0;
                        vector[COVERAGE] = index as f32 / 4.0;
                        vector
                    })
                    .collect();
                GradedList {
                    candidates,
                    gains: vec![0.0, 0.0, 0.0, 0.0, 2.0],
                }
            })
            .collect();
        // How many lists a ranker puts the relevant candidate first in.
        let firsts = |ranker: &SearchRanker| {
            lists
                .iter()
                .filter(|list| {
                    let scores: Vec<f32> =
                        list.candidates.iter().map(|c| ranker.score(c)).collect();
                    scores[..4].iter().all(|score| *score < scores[4])
                })
                .count()
        };
        let fitted = fit(&lists, &SearchTrainOptions::default()).unwrap();
        assert_eq!(firsts(&fitted), lists.len());
        assert!(firsts(&SearchRanker::convex(0.5)) < lists.len() / 2);
    }
}
