//! Recommendation scoring with a learned model.
//!
//! Every candidate source (session-kNN, transitions, bought-together, popularity, content
//! similarity, the profile's affinities) leaves [`Evidence`] about an item. The evidence
//! becomes a fixed vector of [`Feature`]s, scaled to `[0, 1]` or log-compressed counts, and
//! a linear model whose
//! weights were fitted on logged sessions by [`train`] scores it. The features that carried
//! most of an item's score become its reasons, so a reason is never given for a signal that
//! did not move the ranking.
//!
//! The module is split along its seams: `features` (the feature schema and the evidence
//! turned into a feature vector), `model` (the weights file, the prior and the cold-start
//! policy), `scoring` ([`recommend`], its business rules and reasons) and `training`
//! ([`train`] and its metrics).

mod features;
mod model;
mod scoring;
mod training;

pub use features::{Evidence, FEATURES, Feature, FeatureVector, Proposal};
pub use model::{Interactions, RankerModel, RankerModelError};
pub use scoring::{RecommendContext, Recommendation, recommend};
pub use training::{
    CaseMetrics, TrainError, TrainOptions, TrainingCase, complete_with_prior, measure, train,
};
