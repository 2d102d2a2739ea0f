//! Scoring recommendations with the model: the business rules (nothing unavailable or
//! purchased, diversity by category), the order, and reasons from the features that carried
//! each item's linear score.

use std::sync::Arc;

use inkling_domain::Product;
use inkling_domain::Profile;
use inkling_domain::Reason;

use super::features::{Feature, FeatureVector, Proposal, Scale, features};
use super::model::RankerModel;
use crate::ranking::{Budget, ProfileSignals, diversify, explain_budget};

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
    /// Items not to show: what the shopper has in the cart and the item being viewed
    /// (empty when the request asks to buy again).
    pub not_again: &'a [String],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub product: Arc<Product>,
    pub score: f64,
    pub reasons: Vec<Reason>,
    pub features: Option<FeatureVector>,
}

/// Scores every proposal with `model`, drops what must never be shown (unavailable or
/// purchased items, and what the shopper has in the cart or is viewing), explains and orders the rest, and diversifies by category.
pub fn recommend(
    proposals: Vec<Proposal>,
    context: &RecommendContext,
    model: &RankerModel,
    k: usize,
) -> Vec<Recommendation> {
    let signals = ProfileSignals::new(context.profile, context.now_ms, context.half_life_ms);
    let eligible: Vec<Proposal> = proposals
        .into_iter()
        .filter(|proposal| !context.profile.purchased.contains(&proposal.product.id))
        .filter(|proposal| !context.not_again.contains(&proposal.product.id))
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

/// A reason is given for a feature that carried at least this share of the item's
/// strongest contribution.
const REASON_SHARE: f32 = 0.25;
const MAX_REASONS: usize = 3;

fn reasons(
    proposal: &Proposal,
    contributions: &FeatureVector,
    signals: &ProfileSignals,
) -> Vec<Reason> {
    let mut carried: Vec<(Feature, f32)> = Feature::ALL
        .iter()
        .map(|feature| (*feature, contributions[feature.index()]))
        .filter(|(_, contribution)| *contribution > 0.0)
        .collect();
    carried.sort_by(|a, b| b.1.total_cmp(&a.1));
    let strongest = carried.first().map_or(0.0, |(_, value)| *value);
    let mut reasons: Vec<Reason> = Vec::new();
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

fn reason(feature: Feature, proposal: &Proposal, signals: &ProfileSignals) -> Option<Reason> {
    let evidence = &proposal.evidence;
    let product = &proposal.product;
    let reason = match feature {
        Feature::Neighbours
        | Feature::NeighboursNear
        | Feature::NeighboursNext
        | Feature::NeighboursRank
        | Feature::NeighboursSupport => Reason::SimilarSessions,
        Feature::AfterNewest
        | Feature::AfterSecond
        | Feature::AfterThird
        | Feature::AfterNewestCount => Reason::ViewedAfter {
            title: evidence.after_title.clone()?,
        },
        Feature::Together => Reason::BoughtTogether {
            title: evidence.together_title.clone()?,
        },
        Feature::Popular | Feature::Interest => Reason::PopularNow,
        Feature::PopularInCategory => Reason::PopularInCategory {
            category: evidence.popular_category.clone()?,
        },
        Feature::PopularInSegment => Reason::PopularInSegment,
        Feature::Similar if evidence.similar_to_page => Reason::SimilarToPage {
            title: evidence.similar_title.clone()?,
        },
        Feature::Similar => Reason::SimilarToViewed {
            title: evidence.similar_title.clone()?,
        },
        Feature::InSession | Feature::SessionRecency => Reason::SeenRecently,
        Feature::CategoryAffinity | Feature::Liked => Reason::BrowsingCategory {
            category: signals.category(product)?.0.to_string(),
        },
        Feature::BrandAffinity => Reason::InterestInBrand {
            brand: product.brand.clone()?,
        },
        Feature::PriceFit => Reason::UsualPriceRange,
        Feature::Rating => Reason::Rated {
            rating: product.rating?,
        },
        Feature::TopRated => Reason::AmongBestRated,
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::features::{Evidence, vector_of};
    use inkling_domain::ProfileConfig;
    use inkling_domain::{Event, EventKind};

    fn product(id: &str, category: &str) -> Arc<Product> {
        Arc::new(Product {
            title: format!("title of {id}"),
            ..inkling_domain::testing::product(id, category, 100.0)
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
            not_again: &[],
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
                event_id: None,
                attribution: None,
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
        let got: Vec<(&str, String)> = ranked
            .iter()
            .map(|item| {
                let reason = item.reasons.first().map_or(String::new(), |reason| {
                    reason.text(inkling_domain::Language::En)
                });
                (item.product.id.as_str(), reason)
            })
            .collect();
        let expected: Vec<(&str, String)> = expected
            .iter()
            .map(|(id, reason)| (*id, reason.to_string()))
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
}
