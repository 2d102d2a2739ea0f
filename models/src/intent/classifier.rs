//! Intent classification by nearest examples in embedding space.
//!
//! A shipped set of labelled phrasings (`models/data/intent_examples.tsv`, Chinese and
//! English) is embedded once with the query encoder; a query takes the class whose `K`
//! nearest examples are most similar on average. Paraphrases and the other language land
//! near the right examples without any keyword list.

use super::IntentClass;

const EXAMPLES: &str = include_str!("../../data/intent_examples.tsv");
/// How many nearest examples of each class vote.
const K: usize = 3;
/// Softmax temperature turning cosine gaps into a confidence, when the examples are too few
/// to calibrate one.
const DEFAULT_TEMPERATURE: f32 = 0.05;
/// Temperatures tried when calibrating on the examples.
const TEMPERATURES: [f32; 10] = [
    0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1,
];

/// The labelled example phrasings the classifier is built from.
pub fn examples() -> Vec<(IntentClass, String)> {
    EXAMPLES
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (label, text) = line.split_once('\t')?;
            Some((label.parse().ok()?, text.to_string()))
        })
        .collect()
}

pub struct IntentClassifier {
    examples: Vec<(IntentClass, Vec<f32>)>,
    temperature: f32,
}

impl IntentClassifier {
    /// Builds the classifier from example embeddings, in the order of [`examples`], and
    /// calibrates its confidence on them.
    pub fn new(examples: Vec<(IntentClass, Vec<f32>)>) -> Self {
        let mut classifier = Self {
            examples,
            temperature: DEFAULT_TEMPERATURE,
        };
        classifier.temperature = classifier.calibrated_temperature();
        classifier
    }

    /// The most likely intent and a confidence between 0 and 1.
    pub fn classify(&self, query: &[f32]) -> (IntentClass, f32) {
        let scores = self.class_scores(query, None);
        let Some(&(best, _)) = scores.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            return (IntentClass::Other, 0.0);
        };
        (best, probability(&scores, best, self.temperature))
    }

    /// The temperature under which each example, classified by all the others, gets the
    /// highest likelihood for its own class: a confidence of 0.9 then means about nine in
    /// ten right, where a fixed temperature gave about 0.3 to right and wrong answers alike.
    fn calibrated_temperature(&self) -> f32 {
        let held_out: Vec<(IntentClass, Vec<(IntentClass, f32)>)> = self
            .examples
            .iter()
            .enumerate()
            .map(|(index, (label, vector))| (*label, self.class_scores(vector, Some(index))))
            .filter(|(label, scores)| scores.iter().any(|(class, _)| class == label))
            .collect();
        if held_out.len() < 2 * IntentClass::ALL.len() {
            return DEFAULT_TEMPERATURE;
        }
        let log_likelihood = |temperature: f32| -> f32 {
            held_out
                .iter()
                .map(|(label, scores)| probability(scores, *label, temperature).max(1e-9).ln())
                .sum()
        };
        TEMPERATURES
            .into_iter()
            .max_by(|a, b| log_likelihood(*a).total_cmp(&log_likelihood(*b)))
            .unwrap_or(DEFAULT_TEMPERATURE)
    }

    /// Each class's score for `query`, leaving out the example at `skip`.
    fn class_scores(&self, query: &[f32], skip: Option<usize>) -> Vec<(IntentClass, f32)> {
        IntentClass::ALL
            .into_iter()
            .filter_map(|class| {
                self.class_score(class, query, skip)
                    .map(|score| (class, score))
            })
            .collect()
    }

    fn class_score(&self, class: IntentClass, query: &[f32], skip: Option<usize>) -> Option<f32> {
        let mut similarities: Vec<f32> = self
            .examples
            .iter()
            .enumerate()
            .filter(|(index, (label, _))| *label == class && Some(*index) != skip)
            .map(|(_, (_, example))| crate::encoder::cosine(query, example))
            .collect();
        if similarities.is_empty() {
            return None;
        }
        similarities.sort_by(|a, b| b.total_cmp(a));
        let top = &similarities[..similarities.len().min(K)];
        Some(top.iter().sum::<f32>() / top.len() as f32)
    }
}

/// The softmax probability of `class` among `scores` at `temperature`.
fn probability(scores: &[(IntentClass, f32)], class: IntentClass, temperature: f32) -> f32 {
    let Some(&(_, own)) = scores.iter().find(|(label, _)| *label == class) else {
        return 0.0;
    };
    let partition: f32 = scores
        .iter()
        .map(|(_, score)| ((score - own) / temperature).exp())
        .sum();
    1.0 / partition
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_examples_in_both_languages() {
        let examples = examples();
        for class in IntentClass::ALL {
            let texts: Vec<&String> = examples
                .iter()
                .filter(|(c, _)| *c == class)
                .map(|(_, t)| t)
                .collect();
            assert!(
                texts.iter().any(|t| t.is_ascii()),
                "{class:?} lacks English examples"
            );
            assert!(
                texts.iter().any(|t| !t.is_ascii()),
                "{class:?} lacks Chinese examples"
            );
        }
    }

    #[test]
    fn nearest_examples_decide_and_confidence_reflects_the_margin() {
        let classifier = IntentClassifier::new(vec![
            (IntentClass::Browse, vec![1.0, 0.0]),
            (IntentClass::Refine, vec![0.0, 1.0]),
        ]);
        let (class, confident) = classifier.classify(&[0.9, 0.1]);
        assert_eq!(class, IntentClass::Browse);
        let (_, unsure) = classifier.classify(&[0.7, 0.7]);
        assert!(confident > 0.99 && unsure < 0.6, "{confident} {unsure}");
    }
}
