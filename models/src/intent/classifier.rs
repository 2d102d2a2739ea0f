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
/// Softmax temperature turning cosine gaps into a confidence.
const TEMPERATURE: f32 = 0.05;

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
}

impl IntentClassifier {
    /// Builds the classifier from example embeddings, in the order of [`examples`].
    pub fn new(examples: Vec<(IntentClass, Vec<f32>)>) -> Self {
        Self { examples }
    }

    /// The most likely intent and a confidence between 0 and 1.
    pub fn classify(&self, query: &[f32]) -> (IntentClass, f32) {
        let scores: Vec<(IntentClass, f32)> = IntentClass::ALL
            .into_iter()
            .filter_map(|class| self.class_score(class, query).map(|score| (class, score)))
            .collect();
        let Some(&(best, best_score)) = scores.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            return (IntentClass::Other, 0.0);
        };
        let partition: f32 = scores
            .iter()
            .map(|(_, score)| ((score - best_score) / TEMPERATURE).exp())
            .sum();
        (best, 1.0 / partition)
    }

    fn class_score(&self, class: IntentClass, query: &[f32]) -> Option<f32> {
        let mut similarities: Vec<f32> = self
            .examples
            .iter()
            .filter(|(label, _)| *label == class)
            .map(|(_, example)| crate::encoder::cosine(query, example))
            .collect();
        if similarities.is_empty() {
            return None;
        }
        similarities.sort_by(|a, b| b.total_cmp(a));
        let top = &similarities[..similarities.len().min(K)];
        Some(top.iter().sum::<f32>() / top.len() as f32)
    }
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
