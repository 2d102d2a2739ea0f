//! The feature schema of the recommendation model: the [`Feature`] columns and their names,
//! what the sources say about an item ([`Evidence`]), and how that evidence becomes a
//! [`FeatureVector`].

use std::sync::Arc;

use inkling_domain::Product;

use crate::ranking::ProfileSignals;

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

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

pub const FEATURES: usize = Feature::ALL.len();

pub type FeatureVector = [f32; FEATURES];

/// A feature vector with the given features set and every other one at zero.
pub(super) fn vector_of(entries: &[(Feature, f32)]) -> FeatureVector {
    let mut vector = [0.0; FEATURES];
    for (feature, value) in entries {
        vector[feature.index()] = *value;
    }
    vector
}

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
    /// The item it resembles is the product page's own, which the shopper is looking at,
    /// rather than one from their history.
    pub similar_to_page: bool,
    pub top_rated: f32,
    pub liked: f32,
    /// All-time interest weight of the item's events.
    pub interest: f32,
}

/// One candidate with what the sources said about it.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub product: Arc<Product>,
    pub evidence: Evidence,
}

/// The largest raw score of each relative source among the candidates.
pub(super) struct Scale {
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
    pub(super) fn of(proposals: &[Proposal]) -> Self {
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

pub(super) fn features(
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
