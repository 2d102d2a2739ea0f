//! Recommendation scoring with a learned model.
//!
//! Every candidate source (session-kNN, transitions, bought-together, popularity, content
//! similarity, the profile's affinities) leaves [`Evidence`] about an item. The evidence
//! becomes a fixed vector of [`Feature`]s, scaled to `[0, 1]` or log-compressed counts, and
//! a linear model whose
//! weights were fitted on logged sessions by [`train`] scores it. The features that carried
//! most of an item's score become its reasons, so a reason is never given for a signal that
//! did not move the ranking.

use std::collections::BTreeMap;
use std::sync::Arc;

use inkling_storage::Product;
use inkling_storage::profile::Profile;
use serde::{Deserialize, Serialize};

use crate::ranking::{Budget, ProfileSignals, diversify, explain_budget};

/// One input of the recommendation model. The order is the model's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Session-kNN score, relative to the best item of the list.
    Neighbours,
    /// STAN-weighted session-kNN score, relative to the best item of the list.
    NeighboursNear,
    /// Sequence-aware session-kNN score: what neighbours went to next, relative.
    NeighboursNext,
    /// 1 / rank in session-kNN's own order.
    NeighboursRank,
    /// ln(1 + session-kNN score): how much evidence, where the relative score says only
    /// how it compares.
    NeighboursSupport,
    /// Share of the transitions out of the shopper's newest item that went to this one.
    AfterNewest,
    AfterSecond,
    AfterThird,
    /// ln(1 + how often shoppers went from the newest item to this one).
    AfterNewestCount,
    /// Confidence of "bought together" with one of the shopper's latest items.
    Together,
    Popular,
    PopularInCategory,
    PopularInSegment,
    /// Cosine similarity of product embeddings to the shopper's newest item.
    Similar,
    /// The item is in the current session already.
    InSession,
    /// 1 for the newest item of the session, 1/2 for the one before, ...
    SessionRecency,
    CategoryAffinity,
    BrandAffinity,
    PriceFit,
    Rating,
    /// ln(1 + all-time interest in the item): how established it is.
    Interest,
    /// Best-rated retrieval score, relative to the best of the list.
    TopRated,
    /// Retrieval score for the shopper's liked categories and brands, relative.
    Liked,
}

impl Feature {
    pub const ALL: [Feature; 23] = [
        Feature::Neighbours,
        Feature::NeighboursNear,
        Feature::NeighboursNext,
        Feature::NeighboursRank,
        Feature::NeighboursSupport,
        Feature::AfterNewest,
        Feature::AfterSecond,
        Feature::AfterThird,
        Feature::AfterNewestCount,
        Feature::Together,
        Feature::Popular,
        Feature::PopularInCategory,
        Feature::PopularInSegment,
        Feature::Similar,
        Feature::InSession,
        Feature::SessionRecency,
        Feature::CategoryAffinity,
        Feature::BrandAffinity,
        Feature::PriceFit,
        Feature::Rating,
        Feature::Interest,
        Feature::TopRated,
        Feature::Liked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Neighbours => "neighbours",
            Feature::NeighboursNear => "neighbours_near",
            Feature::NeighboursNext => "neighbours_next",
            Feature::NeighboursRank => "neighbours_rank",
            Feature::NeighboursSupport => "neighbours_support",
            Feature::AfterNewest => "after_newest",
            Feature::AfterSecond => "after_second",
            Feature::AfterThird => "after_third",
            Feature::AfterNewestCount => "after_newest_count",
            Feature::Together => "together",
            Feature::Popular => "popular",
            Feature::PopularInCategory => "popular_in_category",
            Feature::PopularInSegment => "popular_in_segment",
            Feature::Similar => "similar",
            Feature::InSession => "in_session",
            Feature::SessionRecency => "session_recency",
            Feature::CategoryAffinity => "category_affinity",
            Feature::BrandAffinity => "brand_affinity",
            Feature::PriceFit => "price_fit",
            Feature::Rating => "rating",
            Feature::Interest => "interest",
            Feature::TopRated => "top_rated",
            Feature::Liked => "liked",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub const FEATURES: usize = Feature::ALL.len();

pub type FeatureVector = [f32; FEATURES];

/// What the sources said about one item, before scaling. Scores are each source's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub neighbours: f32,
    pub neighbours_near: f32,
    pub neighbours_next: f32,
    /// 1-based position in session-kNN's list.
    pub neighbours_rank: Option<usize>,
    /// Transition share from the newest, second and third newest item of the shopper.
    pub after: [f32; 3],
    /// How often it followed the newest item.
    pub after_newest_count: f32,
    /// Title of the item this one followed most strongly.
    pub after_title: Option<String>,
    pub together: f32,
    pub together_title: Option<String>,
    pub popular: f32,
    pub popular_in_category: f32,
    pub popular_category: Option<String>,
    pub popular_in_segment: f32,
    pub similar: f32,
    pub similar_title: Option<String>,
    pub top_rated: f32,
    pub liked: f32,
    /// All-time interest weight of the item's events.
    pub interest: f32,
}

/// The recommendation model: linear weights over [`Feature`]s, stored by feature name so a
/// file outlives a change in column order, optionally with learned [`Interactions`] on top
/// (wide and deep).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerModel {
    pub weights: BTreeMap<String, f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactions: Option<Interactions>,
    /// Where the weights came from: the training file, the cases and the validation
    /// figures, or "prior" for the untrained default.
    #[serde(default)]
    pub provenance: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum RankerModelError {
    #[error("cannot read ranker weights {path}: {message}")]
    Read { path: String, message: String },
    #[error("ranker weights {path}: unknown feature `{feature}` (known: {known})")]
    UnknownFeature {
        path: String,
        feature: String,
        known: String,
    },
    #[error("ranker weights {path}: weight of `{feature}` is not finite")]
    NotFinite { path: String, feature: String },
    #[error("ranker weights {path}: {problem}; retrain with `inkling train ranker`")]
    BadInteractions { path: String, problem: String },
}

/// A small ReLU layer whose output adds to the linear score, so the model can learn how
/// features combine (a strong transition matters less for an item seen moments ago, ...).
/// Reasons come from the linear part alone, which a person can read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    /// The feature names in the column order the layer was trained with.
    pub features: Vec<String>,
    /// One row of weights over the features per hidden unit.
    pub hidden: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    /// The weight of each hidden unit in the score.
    pub output: Vec<f32>,
}

impl Interactions {
    pub fn score(&self, features: &FeatureVector) -> f32 {
        self.hidden
            .iter()
            .zip(&self.bias)
            .zip(&self.output)
            .map(|((row, bias), output)| {
                let activation: f32 = row.iter().zip(features).map(|(w, x)| w * x).sum();
                output * (activation + bias).max(0.0)
            })
            .sum()
    }

    /// Why the layer cannot be used with this build's features, if it cannot.
    fn problem(&self) -> Option<String> {
        let names: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
        if self.features != names {
            return Some("interactions were trained on another feature set".into());
        }
        let units = self.hidden.len();
        if self.bias.len() != units || self.output.len() != units {
            return Some("interaction layer sizes disagree".into());
        }
        let values = self
            .hidden
            .iter()
            .flatten()
            .chain(&self.bias)
            .chain(&self.output);
        if self.hidden.iter().any(|row| row.len() != FEATURES) {
            return Some("an interaction row has the wrong width".into());
        }
        values
            .into_iter()
            .any(|value| !value.is_finite())
            .then(|| "an interaction weight is not finite".into())
    }
}

impl Default for RankerModel {
    /// An untrained prior, used until `inkling train ranker` has fitted weights: every
    /// behavioural signal counts, what followed the shopper's own items most. Best-rated
    /// filler is for newcomers only (see [`RankerModel::cold_start`]).
    fn default() -> Self {
        let prior = [
            (Feature::Neighbours, 0.4),
            (Feature::NeighboursNear, 0.3),
            (Feature::NeighboursNext, 0.3),
            (Feature::AfterNewest, 0.5),
            (Feature::Together, 0.5),
            (Feature::Similar, 0.3),
            (Feature::PopularInCategory, 0.2),
            (Feature::PopularInSegment, 0.1),
            (Feature::Popular, 0.1),
            (Feature::CategoryAffinity, 0.3),
            (Feature::BrandAffinity, 0.15),
            (Feature::PriceFit, 0.1),
            (Feature::Rating, 0.05),
            (Feature::Liked, 0.5),
        ];
        let mut ranker = Self::from_vector(&vector_of(&prior));
        ranker
            .provenance
            .insert("source".into(), "untrained prior".into());
        ranker
    }
}

fn vector_of(entries: &[(Feature, f32)]) -> FeatureVector {
    let mut vector = [0.0; FEATURES];
    for (feature, value) in entries {
        vector[feature.index()] = *value;
    }
    vector
}

impl RankerModel {
    pub fn from_vector(weights: &FeatureVector) -> Self {
        Self {
            weights: Feature::ALL
                .iter()
                .map(|feature| (feature.name().to_string(), weights[feature.index()]))
                .collect(),
            interactions: None,
            provenance: BTreeMap::new(),
        }
    }

    /// The score of one candidate: the linear part plus the learned interactions.
    pub fn score(&self, weights: &FeatureVector, features: &FeatureVector) -> f32 {
        let linear: f32 = weights.iter().zip(features).map(|(w, x)| w * x).sum();
        linear
            + self
                .interactions
                .as_ref()
                .map_or(0.0, |i| i.score(features))
    }

    /// Reads weights written by `inkling train ranker`; features it does not name weigh 0.
    pub fn load(path: &std::path::Path) -> Result<Self, RankerModelError> {
        let shown = path.display().to_string();
        let read_error = |message: String| RankerModelError::Read {
            path: shown.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        let ranker: Self = serde_json::from_str(&text).map_err(|e| read_error(e.to_string()))?;
        if let Some(problem) = ranker.interactions.as_ref().and_then(Interactions::problem) {
            return Err(RankerModelError::BadInteractions {
                path: shown,
                problem,
            });
        }
        for (feature, weight) in &ranker.weights {
            if !Feature::ALL.iter().any(|known| known.name() == feature) {
                let known: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
                return Err(RankerModelError::UnknownFeature {
                    path: shown,
                    feature: feature.clone(),
                    known: known.join(", "),
                });
            }
            if !weight.is_finite() {
                return Err(RankerModelError::NotFinite {
                    path: shown,
                    feature: feature.clone(),
                });
            }
        }
        Ok(ranker)
    }

    pub fn vector(&self) -> FeatureVector {
        std::array::from_fn(|index| self.weight(Feature::ALL[index]))
    }

    pub fn weight(&self, feature: Feature) -> f32 {
        self.weights.get(feature.name()).copied().unwrap_or(0.0)
    }

    /// The policy for a shopper with no history yet, whom no behavioural feature describes:
    /// what is trending, in a category they asked for or like first, then overall, then the
    /// best-rated.
    pub fn cold_start() -> Self {
        let policy = [
            (Feature::PopularInCategory, 1.0),
            (Feature::PopularInSegment, 0.5),
            (Feature::Popular, 0.5),
            (Feature::TopRated, 0.3),
            (Feature::Liked, 0.3),
            (Feature::CategoryAffinity, 0.3),
            (Feature::Rating, 0.1),
        ];
        Self::from_vector(&vector_of(&policy))
    }
}

/// Gives every feature that never took a value in `cases` its prior weight, scaled to the
/// size of the learned weights, and no part in the interactions: training cannot tell what
/// such a feature is worth (session logs without categories say nothing of category
/// affinity), and zero would switch it off for catalogs that have it. Returns the features
/// so completed.
pub fn complete_with_prior(model: &mut RankerModel, cases: &[TrainingCase]) -> Vec<Feature> {
    let observed: Vec<bool> = Feature::ALL
        .iter()
        .map(|feature| {
            cases
                .iter()
                .flat_map(|case| &case.candidates)
                .any(|candidate| candidate[feature.index()] != 0.0)
        })
        .collect();
    let prior = RankerModel::default().vector();
    let mut weights = model.vector();
    let magnitude = |vector: &FeatureVector| -> f32 {
        (0..FEATURES)
            .filter(|index| observed[*index])
            .map(|index| vector[index].abs())
            .sum()
    };
    let scale = magnitude(&weights) / magnitude(&prior).max(f32::EPSILON);
    let mut completed = Vec::new();
    for (index, feature) in Feature::ALL.iter().enumerate() {
        if observed[index] {
            continue;
        }
        weights[index] = prior[index] * scale;
        for row in model
            .interactions
            .iter_mut()
            .flat_map(|i| i.hidden.iter_mut())
        {
            row[index] = 0.0;
        }
        completed.push(*feature);
    }
    model.weights = RankerModel::from_vector(&weights).weights;
    completed
}

/// One candidate with what the sources said about it.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub product: Arc<Product>,
    pub evidence: Evidence,
}

/// What scoring knows about the request beyond the candidates.
pub struct RecommendContext<'a> {
    pub profile: &'a Profile,
    /// The items of the current session, newest first.
    pub session_items: &'a [String],
    pub now_ms: u64,
    pub half_life_ms: u64,
    /// A price ceiling the shopper stated in the conversation.
    pub budget: Option<Budget>,
    /// Off when the shopper asked for one category.
    pub diversify: bool,
    /// At most this share of the answer from one leaf category.
    pub max_category_share: f64,
    /// Return each item's features with it, for training and debugging.
    pub explain: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub product: Arc<Product>,
    pub score: f64,
    pub reasons: Vec<String>,
    pub features: Option<FeatureVector>,
}

/// Scores every proposal with `model`, drops what must never be shown (unavailable or
/// purchased items), explains and orders the rest, and diversifies by category.
pub fn recommend(
    proposals: Vec<Proposal>,
    context: &RecommendContext,
    model: &RankerModel,
    k: usize,
) -> Vec<Recommendation> {
    let signals = ProfileSignals::new(context.profile, context.now_ms, context.half_life_ms);
    let eligible: Vec<Proposal> = proposals
        .into_iter()
        .filter(|proposal| proposal.product.in_stock)
        .filter(|proposal| !context.profile.purchased.contains(&proposal.product.id))
        .collect();
    let scale = Scale::of(&eligible);
    let weights = model.vector();
    let mut scored: Vec<Recommendation> = eligible
        .into_iter()
        .map(|proposal| {
            let features = features(&proposal, &scale, &signals, context.session_items);
            let contributions: FeatureVector =
                std::array::from_fn(|index| weights[index] * features[index]);
            let score = model.score(&weights, &features);
            let mut reasons = reasons(&proposal, &contributions, &signals);
            if let Some(budget) = &context.budget {
                explain_budget(&proposal.product, &mut reasons, budget);
            }
            Recommendation {
                product: proposal.product,
                score: f64::from(score),
                reasons,
                features: context.explain.then_some(features),
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.product.id.cmp(&b.product.id))
    });
    let max_share = context.diversify.then_some(context.max_category_share);
    diversify(scored, |item| item.product.as_ref(), max_share, k)
}

/// The largest raw score of each relative source among the candidates.
struct Scale {
    neighbours: f32,
    neighbours_near: f32,
    neighbours_next: f32,
    popular: f32,
    popular_in_category: f32,
    popular_in_segment: f32,
    top_rated: f32,
    liked: f32,
}

impl Scale {
    fn of(proposals: &[Proposal]) -> Self {
        let best = |score: fn(&Evidence) -> f32| {
            proposals
                .iter()
                .map(|proposal| score(&proposal.evidence))
                .fold(f32::EPSILON, f32::max)
        };
        Self {
            neighbours: best(|e| e.neighbours),
            neighbours_near: best(|e| e.neighbours_near),
            neighbours_next: best(|e| e.neighbours_next),
            popular: best(|e| e.popular),
            popular_in_category: best(|e| e.popular_in_category),
            popular_in_segment: best(|e| e.popular_in_segment),
            top_rated: best(|e| e.top_rated),
            liked: best(|e| e.liked),
        }
    }
}

fn features(
    proposal: &Proposal,
    scale: &Scale,
    signals: &ProfileSignals,
    session_items: &[String],
) -> FeatureVector {
    let evidence = &proposal.evidence;
    let product = &proposal.product;
    let steps_back = session_items.iter().position(|item| *item == product.id);
    let mut vector = [0.0; FEATURES];
    let mut set = |feature: Feature, value: f32| vector[feature.index()] = value;
    set(Feature::Neighbours, evidence.neighbours / scale.neighbours);
    set(
        Feature::NeighboursNear,
        evidence.neighbours_near / scale.neighbours_near,
    );
    set(
        Feature::NeighboursNext,
        evidence.neighbours_next / scale.neighbours_next,
    );
    set(
        Feature::NeighboursRank,
        evidence
            .neighbours_rank
            .map_or(0.0, |rank| 1.0 / rank as f32),
    );
    set(Feature::NeighboursSupport, evidence.neighbours.ln_1p());
    set(Feature::AfterNewest, evidence.after[0]);
    set(
        Feature::AfterNewestCount,
        evidence.after_newest_count.ln_1p(),
    );
    set(Feature::Interest, evidence.interest.ln_1p());
    set(Feature::AfterSecond, evidence.after[1]);
    set(Feature::AfterThird, evidence.after[2]);
    set(Feature::Together, evidence.together);
    set(Feature::Popular, evidence.popular / scale.popular);
    set(
        Feature::PopularInCategory,
        evidence.popular_in_category / scale.popular_in_category,
    );
    set(
        Feature::PopularInSegment,
        evidence.popular_in_segment / scale.popular_in_segment,
    );
    set(Feature::Similar, evidence.similar.max(0.0));
    set(
        Feature::InSession,
        f32::from(u8::from(steps_back.is_some())),
    );
    set(
        Feature::SessionRecency,
        steps_back.map_or(0.0, |steps| 1.0 / (steps + 1) as f32),
    );
    let category = signals.category(product).map_or(0.0, |(_, value)| value);
    set(Feature::CategoryAffinity, category as f32);
    set(
        Feature::BrandAffinity,
        signals.brand(product).unwrap_or(0.0) as f32,
    );
    set(
        Feature::PriceFit,
        signals.price_fit(product).unwrap_or(0.0) as f32,
    );
    set(Feature::Rating, product.rating.unwrap_or(0.0) / 5.0);
    set(Feature::TopRated, evidence.top_rated / scale.top_rated);
    set(Feature::Liked, evidence.liked / scale.liked);
    vector
}

/// A reason is given for a feature that carried at least this share of the item's
/// strongest contribution.
const REASON_SHARE: f32 = 0.25;
const MAX_REASONS: usize = 3;

fn reasons(
    proposal: &Proposal,
    contributions: &FeatureVector,
    signals: &ProfileSignals,
) -> Vec<String> {
    let mut carried: Vec<(Feature, f32)> = Feature::ALL
        .iter()
        .map(|feature| (*feature, contributions[feature.index()]))
        .filter(|(_, contribution)| *contribution > 0.0)
        .collect();
    carried.sort_by(|a, b| b.1.total_cmp(&a.1));
    let strongest = carried.first().map_or(0.0, |(_, value)| *value);
    let mut reasons: Vec<String> = Vec::new();
    for (feature, contribution) in carried {
        if contribution < REASON_SHARE * strongest || reasons.len() == MAX_REASONS {
            break;
        }
        if let Some(reason) = reason(feature, proposal, signals)
            && !reasons.contains(&reason)
        {
            reasons.push(reason);
        }
    }
    reasons
}

fn reason(feature: Feature, proposal: &Proposal, signals: &ProfileSignals) -> Option<String> {
    let evidence = &proposal.evidence;
    let product = &proposal.product;
    let text = match feature {
        Feature::Neighbours
        | Feature::NeighboursNear
        | Feature::NeighboursNext
        | Feature::NeighboursRank
        | Feature::NeighboursSupport => "shoppers with sessions like yours viewed this".to_string(),
        Feature::AfterNewest
        | Feature::AfterSecond
        | Feature::AfterThird
        | Feature::AfterNewestCount => format!(
            "viewed after {} by many shoppers",
            evidence.after_title.as_deref()?
        ),
        Feature::Together => format!(
            "often bought together with {}",
            evidence.together_title.as_deref()?
        ),
        Feature::Popular | Feature::Interest => "popular right now".to_string(),
        Feature::PopularInCategory => {
            format!("popular in {} today", evidence.popular_category.as_deref()?)
        }
        Feature::PopularInSegment => "popular with shoppers like you".to_string(),
        Feature::Similar => format!(
            "similar to {}, which you viewed",
            evidence.similar_title.as_deref()?
        ),
        Feature::InSession | Feature::SessionRecency => "you looked at this recently".to_string(),
        Feature::CategoryAffinity | Feature::Liked => {
            format!("you have been browsing {}", signals.category(product)?.0)
        }
        Feature::BrandAffinity => format!("you showed interest in {}", product.brand.as_deref()?),
        Feature::PriceFit => "in your usual price range".to_string(),
        Feature::Rating => format!("rated {:.1}/5", product.rating?),
        Feature::TopRated => "among the best-rated products".to_string(),
    };
    Some(text)
}

/// One logged decision to learn from: the candidates' features and which of them the
/// shopper went to next, if any was proposed.
#[derive(Debug, Clone)]
pub struct TrainingCase {
    pub candidates: Vec<FeatureVector>,
    pub target: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f64,
    /// L2 penalty on the weights.
    pub l2: f64,
    /// Cut-off of the hit rate and MRR reported after fitting.
    pub k: usize,
    /// Hidden units of the interaction layer; 0 fits the linear part alone.
    pub interaction_units: usize,
    pub seed: i64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 300,
            learning_rate: 0.05,
            l2: 1e-4,
            k: 20,
            interaction_units: 32,
            seed: 7,
        }
    }
}

/// Hit rate and MRR at `k` of a scorer on some cases; cases without the target among the
/// candidates count as misses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CaseMetrics {
    pub cases: usize,
    pub hit_rate: f64,
    pub mrr: f64,
}

pub fn measure(cases: &[TrainingCase], model: &RankerModel, k: usize) -> CaseMetrics {
    let weights = model.vector();
    let (mut hits, mut reciprocal) = (0usize, 0.0);
    for case in cases {
        let Some(target) = case.target else { continue };
        let score = |features: &FeatureVector| model.score(&weights, features);
        let target_score = score(&case.candidates[target]);
        // Ties count against the target, so a constant model earns nothing.
        let rank = 1 + case
            .candidates
            .iter()
            .enumerate()
            .filter(|(index, features)| *index != target && score(features) >= target_score)
            .count();
        if rank <= k {
            hits += 1;
            reciprocal += 1.0 / rank as f64;
        }
    }
    let total = cases.len().max(1) as f64;
    CaseMetrics {
        cases: cases.len(),
        hit_rate: hits as f64 / total,
        mrr: reciprocal / total,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training case has its target among the candidates: nothing to learn from")]
    NothingToLearn,
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Fits the model by listwise softmax cross-entropy (the target should be the most likely
/// next item among its case's candidates), with Adam in libtorch.
pub fn train(cases: &[TrainingCase], options: &TrainOptions) -> Result<RankerModel, TrainError> {
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind, nn};

    let batch = CaseBatch::of(cases)?;
    tch::manual_seed(options.seed);
    let store = nn::VarStore::new(Device::Cpu);
    let root = store.root();
    let features = FEATURES as i64;
    let units = options.interaction_units as i64;
    let weights = root.var("weights", &[features, 1], nn::Init::Const(0.0));
    let hidden = root.var(
        "hidden",
        &[features, units],
        nn::Init::Randn {
            mean: 0.0,
            stdev: 0.1,
        },
    );
    let bias = root.var("bias", &[units], nn::Init::Const(0.0));
    let output = root.var("output", &[units, 1], nn::Init::Const(0.0));
    let mut optimiser = nn::Adam::default().build(&store, options.learning_rate)?;
    for _ in 0..options.epochs {
        let mut logits = batch.features.matmul(&weights);
        if units > 0 {
            logits += (batch.features.matmul(&hidden) + &bias)
                .relu()
                .matmul(&output);
        }
        let logits = logits.squeeze_dim(-1) + &batch.padding;
        let penalty = weights.pow_tensor_scalar(2).sum(Kind::Float)
            + hidden.pow_tensor_scalar(2).sum(Kind::Float)
            + output.pow_tensor_scalar(2).sum(Kind::Float);
        let loss =
            logits.log_softmax(-1, Kind::Float).nll_loss(&batch.targets) + options.l2 * penalty;
        optimiser.backward_step(&loss);
    }
    let linear: Vec<f32> = Vec::<f32>::try_from(weights.detach().flatten(0, -1))?;
    let mut vector = [0.0; FEATURES];
    vector.copy_from_slice(&linear);
    let mut model = RankerModel::from_vector(&vector);
    if units > 0 {
        model.interactions = Some(Interactions {
            features: Feature::ALL.iter().map(|f| f.name().to_string()).collect(),
            hidden: Vec::<Vec<f32>>::try_from(hidden.detach().transpose(0, 1).contiguous())?,
            bias: Vec::<f32>::try_from(bias.detach())?,
            output: Vec::<f32>::try_from(output.detach().flatten(0, -1))?,
        });
    }
    Ok(model)
}

/// The learnable cases as padded tensors: features `[cases, width, FEATURES]`, a padding
/// mask of `-inf` for missing candidates, and the target positions.
struct CaseBatch {
    features: tch::Tensor,
    padding: tch::Tensor,
    targets: tch::Tensor,
}

impl CaseBatch {
    fn of(cases: &[TrainingCase]) -> Result<Self, TrainError> {
        use tch::Tensor;
        let learnable: Vec<(&TrainingCase, usize)> = cases
            .iter()
            .filter(|case| case.candidates.len() > 1)
            .filter_map(|case| Some((case, case.target?)))
            .collect();
        if learnable.is_empty() {
            return Err(TrainError::NothingToLearn);
        }
        let width = learnable
            .iter()
            .map(|(case, _)| case.candidates.len())
            .max()
            .unwrap_or(1);
        let mut features = vec![0f32; learnable.len() * width * FEATURES];
        let mut padding = vec![f32::NEG_INFINITY; learnable.len() * width];
        for (row, (case, _)) in learnable.iter().enumerate() {
            for (column, candidate) in case.candidates.iter().enumerate() {
                let start = (row * width + column) * FEATURES;
                features[start..start + FEATURES].copy_from_slice(candidate);
                padding[row * width + column] = 0.0;
            }
        }
        let targets: Vec<i64> = learnable.iter().map(|(_, target)| *target as i64).collect();
        let rows = learnable.len() as i64;
        Ok(Self {
            features: Tensor::from_slice(&features).view([rows, width as i64, FEATURES as i64]),
            padding: Tensor::from_slice(&padding).view([rows, width as i64]),
            targets: Tensor::from_slice(&targets),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkling_storage::profile::ProfileConfig;
    use inkling_storage::{Event, EventKind};

    fn product(id: &str, category: &str) -> Arc<Product> {
        Arc::new(Product {
            id: id.into(),
            title: format!("title of {id}"),
            category_path: vec![category.into()],
            brand: None,
            price: 100.0,
            currency: "CNY".into(),
            rating: None,
            in_stock: true,
            attributes: Default::default(),
        })
    }

    fn context<'a>(profile: &'a Profile, session: &'a [String]) -> RecommendContext<'a> {
        RecommendContext {
            profile,
            session_items: session,
            now_ms: 0,
            half_life_ms: 1000,
            budget: None,
            diversify: false,
            max_category_share: 0.5,
            explain: true,
        }
    }

    /// Scores `proposals` with `weights` for a shopper whose session is `session` (newest
    /// first) and who bought `purchased`; checks the order of ids and the first reasons.
    fn check(
        weights: &[(Feature, f32)],
        proposals: Vec<(&str, Evidence)>,
        session: &[&str],
        purchased: &[&str],
        expected: &[(&str, &str)],
    ) {
        let mut profile = Profile::new("u");
        for item in purchased {
            let event = Event {
                user_id: "u".into(),
                session_id: None,
                kind: EventKind::Purchase,
                item_id: Some(item.to_string()),
                query: None,
                timestamp: Some(0),
                learn: true,
            };
            profile.apply(&event, None, 0, &ProfileConfig::default());
        }
        let session: Vec<String> = session.iter().map(|s| s.to_string()).collect();
        let proposals = proposals
            .into_iter()
            .map(|(id, evidence)| Proposal {
                product: product(id, "c"),
                evidence,
            })
            .collect();
        let model = RankerModel::from_vector(&vector_of(weights));
        let ranked = recommend(proposals, &context(&profile, &session), &model, 10);
        let got: Vec<(&str, &str)> = ranked
            .iter()
            .map(|item| {
                let reason = item.reasons.first().map_or("", String::as_str);
                (item.product.id.as_str(), reason)
            })
            .collect();
        assert_eq!(got, expected);
    }

    fn neighbours(score: f32) -> Evidence {
        Evidence {
            neighbours: score,
            ..Default::default()
        }
    }

    fn after(share: f32, title: &str) -> Evidence {
        Evidence {
            after: [share, 0.0, 0.0],
            after_title: Some(title.into()),
            ..Default::default()
        }
    }

    #[test]
    fn learned_weights_order_and_explain() {
        let like_sessions = "shoppers with sessions like yours viewed this";
        check(
            &[(Feature::Neighbours, 1.0)],
            vec![("a", neighbours(1.0)), ("b", neighbours(3.0))],
            &[],
            &[],
            &[("b", like_sessions), ("a", like_sessions)],
        );
        // Transitions outweigh neighbours under these weights.
        check(
            &[(Feature::Neighbours, 0.1), (Feature::AfterNewest, 1.0)],
            vec![("a", neighbours(1.0)), ("b", after(0.5, "iPhone 14"))],
            &[],
            &[],
            &[
                ("b", "viewed after iPhone 14 by many shoppers"),
                ("a", like_sessions),
            ],
        );
        // A negative weight on items already in the session pushes them down.
        check(
            &[(Feature::Neighbours, 1.0), (Feature::InSession, -2.0)],
            vec![("seen", neighbours(3.0)), ("new", neighbours(1.0))],
            &["seen"],
            &[],
            &[("new", like_sessions), ("seen", like_sessions)],
        );
        // Purchased items are never shown again.
        check(
            &[(Feature::Neighbours, 1.0)],
            vec![("bought", neighbours(3.0)), ("other", neighbours(1.0))],
            &[],
            &["bought"],
            &[("other", like_sessions)],
        );
    }

    #[test]
    fn weights_file_round_trips_and_rejects_unknown_features() {
        let dir = std::env::temp_dir().join(format!("inkling-ranker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ranker.json");
        let model = RankerModel::default();
        std::fs::write(&path, serde_json::to_string(&model).unwrap()).unwrap();
        assert_eq!(RankerModel::load(&path).unwrap(), model);
        std::fs::write(&path, r#"{"weights": {"shoe_size": 1.0}}"#).unwrap();
        let error = RankerModel::load(&path).unwrap_err().to_string();
        assert!(error.contains("unknown feature `shoe_size`"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn training_finds_the_signal_that_predicts_the_target() {
        // The target always has the higher transition share, while session-kNN is noise.
        let cases: Vec<TrainingCase> = (0..200)
            .map(|index| {
                let noise = (index % 7) as f32 / 7.0;
                let target =
                    vector_of(&[(Feature::AfterNewest, 0.6), (Feature::Neighbours, noise)]);
                let other = vector_of(&[
                    (Feature::AfterNewest, 0.2),
                    (Feature::Neighbours, 1.0 - noise),
                ]);
                TrainingCase {
                    candidates: vec![other, target],
                    target: Some(1),
                }
            })
            .collect();
        let linear = TrainOptions {
            interaction_units: 0,
            ..Default::default()
        };
        let model = train(&cases, &linear).unwrap();
        assert!(model.weight(Feature::AfterNewest) > model.weight(Feature::Neighbours));
        assert_eq!(measure(&cases, &model, 1).hit_rate, 1.0);
        let untrained = RankerModel::from_vector(&[0.0; FEATURES]);
        assert_eq!(measure(&cases, &untrained, 1).hit_rate, 0.0);
        let deep = train(&cases, &TrainOptions::default()).unwrap();
        assert_eq!(measure(&cases, &deep, 1).hit_rate, 1.0);
        let nothing = [TrainingCase {
            candidates: vec![other_vector()],
            target: None,
        }];
        assert!(matches!(
            train(&nothing, &TrainOptions::default()),
            Err(TrainError::NothingToLearn)
        ));
    }

    fn other_vector() -> FeatureVector {
        [0.0; FEATURES]
    }
}
