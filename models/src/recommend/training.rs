//! Training the recommendation model on logged cases: listwise softmax cross-entropy with
//! Adam in libtorch, the hit rate and MRR of a model, and completing features the cases
//! never showed with the prior.

use serde::Serialize;

use super::features::{FEATURES, Feature, FeatureVector};
use super::model::{Interactions, RankerModel};

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
    use crate::recommend::features::vector_of;

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
