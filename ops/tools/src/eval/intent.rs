//! `inkling eval intent`: how often the intent classifier names the intent a person would,
//! on a labelled set written apart from its examples (`models/data/intent_eval.tsv`).
//!
//! The classifier is built exactly as a node builds it: the shipped example phrasings are
//! embedded with the query encoder, and each labelled query is embedded and classified. The
//! report gives accuracy overall, per class and per language, the confusion matrix, and how
//! confident the classifier was when right and when wrong.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use inkling_models::encoder::{ModelName, Precision, TextKind, load};
use inkling_models::intent::classifier::examples;
use inkling_models::intent::{IntentClass, IntentClassifier};
use serde::Serialize;

/// Texts embedded per encoder call.
const BATCH: usize = 32;

/// One labelled query.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledQuery {
    pub intent: IntentClass,
    pub text: String,
}

/// Reads `intent<TAB>text` lines; `#` starts a comment.
pub fn read(path: &Path) -> Result<Vec<LabelledQuery>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut queries = Vec::new();
    for (number, line) in content.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((label, text)) = line.split_once('\t') else {
            bail!(
                "{} line {}: expected `intent<TAB>text`",
                path.display(),
                number + 1
            );
        };
        let intent = label.parse().map_err(|error: String| {
            anyhow::anyhow!("{} line {}: {error}", path.display(), number + 1)
        })?;
        queries.push(LabelledQuery {
            intent,
            text: text.trim().to_string(),
        });
    }
    if queries.is_empty() {
        bail!("{}: no labelled queries", path.display());
    }
    Ok(queries)
}

/// What the classifier answered for one query.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub text: String,
    pub expected: IntentClass,
    pub actual: IntentClass,
    pub confidence: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct IntentReport {
    pub queries: usize,
    pub accuracy: f64,
    /// Class → (right, total).
    pub by_class: BTreeMap<String, (usize, usize)>,
    /// `zh`, `en` or `mixed` → (right, total).
    pub by_language: BTreeMap<String, (usize, usize)>,
    /// Expected class → answered class → count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub mean_confidence_right: f64,
    pub mean_confidence_wrong: f64,
    pub wrong: Vec<Outcome>,
}

/// Classifies every query with the classifier a node would build from `model`.
pub fn evaluate(
    queries: &[LabelledQuery],
    model: ModelName,
    models_dir: &Path,
) -> Result<IntentReport> {
    let encoder = load(model, models_dir, tch::Device::Cpu, Precision::Auto)?;
    let embed = |texts: Vec<String>| -> Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            vectors.extend(encoder.encode(chunk, TextKind::Query)?);
        }
        Ok(vectors)
    };
    let (labels, texts): (Vec<IntentClass>, Vec<String>) = examples().into_iter().unzip();
    let classifier = IntentClassifier::new(labels.into_iter().zip(embed(texts)?).collect());
    let vectors = embed(queries.iter().map(|query| query.text.clone()).collect())?;
    let outcomes = queries
        .iter()
        .zip(vectors)
        .map(|(query, vector)| {
            let (actual, confidence) = classifier.classify(&vector);
            Outcome {
                text: query.text.clone(),
                expected: query.intent,
                actual,
                confidence,
            }
        })
        .collect::<Vec<_>>();
    Ok(summarise(outcomes))
}

fn summarise(outcomes: Vec<Outcome>) -> IntentReport {
    let mut by_class: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_language: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let (mut right_confidence, mut wrong_confidence) = (Vec::new(), Vec::new());
    for outcome in &outcomes {
        let right = outcome.expected == outcome.actual;
        for (tally, key) in [
            (&mut by_class, outcome.expected.as_str()),
            (&mut by_language, language(&outcome.text)),
        ] {
            let entry = tally.entry(key.to_string()).or_default();
            entry.0 += usize::from(right);
            entry.1 += 1;
        }
        *confusion
            .entry(outcome.expected.as_str().to_string())
            .or_default()
            .entry(outcome.actual.as_str().to_string())
            .or_default() += 1;
        let confidences = if right {
            &mut right_confidence
        } else {
            &mut wrong_confidence
        };
        confidences.push(f64::from(outcome.confidence));
    }
    let mean = |values: &[f64]| {
        if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    };
    IntentReport {
        queries: outcomes.len(),
        accuracy: right_confidence.len() as f64 / outcomes.len().max(1) as f64,
        by_class,
        by_language,
        confusion,
        mean_confidence_right: mean(&right_confidence),
        mean_confidence_wrong: mean(&wrong_confidence),
        wrong: outcomes
            .into_iter()
            .filter(|outcome| outcome.expected != outcome.actual)
            .collect(),
    }
}

/// `zh` for text with Chinese characters only among letters, `en` for Latin only, else
/// `mixed`.
fn language(text: &str) -> &'static str {
    let han = text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    let latin = text.chars().any(|c| c.is_ascii_alphabetic());
    match (han, latin) {
        (true, false) => "zh",
        (false, _) => "en",
        (true, true) => "mixed",
    }
}

pub fn print_report(report: &IntentReport) {
    let share = |(right, total): (usize, usize)| {
        format!(
            "{:>5.1}% ({right}/{total})",
            100.0 * right as f64 / total.max(1) as f64
        )
    };
    println!(
        "accuracy {:.1}% over {} queries; mean confidence {:.2} when right, {:.2} when wrong",
        100.0 * report.accuracy,
        report.queries,
        report.mean_confidence_right,
        report.mean_confidence_wrong
    );
    println!("\n| class | accuracy |\n|---|---:|");
    for (class, tally) in &report.by_class {
        println!("| {class} | {} |", share(*tally));
    }
    println!("\n| language | accuracy |\n|---|---:|");
    for (language, tally) in &report.by_language {
        println!("| {language} | {} |", share(*tally));
    }
    let classes: Vec<&str> = IntentClass::ALL
        .iter()
        .map(|class| class.as_str())
        .collect();
    println!("\nconfusion (rows: labelled, columns: answered)");
    println!("| | {} |", classes.join(" | "));
    println!("|---|{}", "---:|".repeat(classes.len()));
    for expected in &classes {
        let row = report.confusion.get(*expected);
        let cells: Vec<String> = classes
            .iter()
            .map(|actual| {
                row.and_then(|row| row.get(*actual))
                    .copied()
                    .unwrap_or(0)
                    .to_string()
            })
            .collect();
        println!("| {expected} | {} |", cells.join(" | "));
    }
    println!("\nmisclassified:");
    for outcome in &report.wrong {
        println!(
            "  {:<12} → {:<12} {:.2}  {}",
            outcome.expected.as_str(),
            outcome.actual.as_str(),
            outcome.confidence,
            outcome.text
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_of_a_query() {
        for (text, expected) in [
            ("我想找手机", "zh"),
            ("show me phones", "en"),
            ("iPhone 14多少钱", "mixed"),
            ("8000以内的呢", "zh"),
        ] {
            assert_eq!(language(text), expected, "{text}");
        }
    }

    #[test]
    fn the_shipped_set_parses_and_covers_every_class() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/data/intent_eval.tsv");
        let queries = read(&path).unwrap();
        for class in IntentClass::ALL {
            let count = queries.iter().filter(|query| query.intent == class).count();
            assert!(count >= 40, "{class:?}: {count} labelled queries");
        }
        let shipped: std::collections::HashSet<String> =
            examples().into_iter().map(|(_, text)| text).collect();
        let copies: Vec<&str> = queries
            .iter()
            .map(|query| query.text.as_str())
            .filter(|text| shipped.contains(*text))
            .collect();
        assert!(
            copies.is_empty(),
            "examples reused as test queries: {copies:?}"
        );
    }
}
