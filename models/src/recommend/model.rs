//! The recommendation model's file: linear weights by feature name, the optional layer of
//! learned interactions, loading and checking a weights file, and the untrained prior and
//! cold-start policy used without one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::{FEATURES, Feature, FeatureVector, vector_of};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
