//! `inkling eval slots`: brand and product-type extraction on character-tagged text
//! (BIEOS, as in the Taobao NER data of Ding et al., ACL 2019).
//!
//! Dictionaries are built from the tagged entities of the training file only, pruned of
//! surfaces that are more often plain text than an entity there, and matched with the
//! product's own dictionary matcher (leftmost-longest). Scores are entity-level: a
//! prediction counts only with the exact span and type.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use inkling_models::intent::slots::DictionaryMatcher;
use serde::Serialize;

/// One tagged text: its characters and its entities as (start, end, type) in characters.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedText {
    pub chars: Vec<char>,
    pub entities: Vec<(usize, usize, String)>,
}

impl TaggedText {
    fn text(&self) -> String {
        self.chars.iter().collect()
    }
}

/// Reads a BIEOS file: `char<TAB>tag` per line, a blank line between texts.
pub fn read_bieos(path: &Path) -> Result<Vec<TaggedText>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_bieos(&content).with_context(|| format!("in {}", path.display()))
}

pub fn parse_bieos(content: &str) -> Result<Vec<TaggedText>> {
    let mut texts = Vec::new();
    let mut current = TaggedText {
        chars: Vec::new(),
        entities: Vec::new(),
    };
    let mut open: Option<(usize, String)> = None;
    for (number, line) in content.lines().enumerate() {
        if line.is_empty() {
            if !current.chars.is_empty() {
                texts.push(std::mem::replace(
                    &mut current,
                    TaggedText {
                        chars: Vec::new(),
                        entities: Vec::new(),
                    },
                ));
            }
            open = None;
            continue;
        }
        let Some((char_text, tag)) = line.rsplit_once('\t') else {
            bail!("line {}: expected `char<TAB>tag`, got {line:?}", number + 1);
        };
        let mut chars = char_text.chars();
        let (Some(character), None) = (chars.next(), chars.next()) else {
            bail!(
                "line {}: expected one character before the tab, got {char_text:?}",
                number + 1
            );
        };
        let position = current.chars.len();
        current.chars.push(character);
        let (prefix, kind) = tag.split_once('-').unwrap_or((tag, ""));
        match prefix {
            "O" => open = None,
            "S" => current
                .entities
                .push((position, position + 1, kind.to_string())),
            "B" => open = Some((position, kind.to_string())),
            "I" => {}
            "E" => {
                if let Some((start, open_kind)) = open.take()
                    && open_kind == kind
                {
                    current
                        .entities
                        .push((start, position + 1, kind.to_string()));
                }
            }
            other => bail!("line {}: unknown tag prefix {other:?}", number + 1),
        }
    }
    if !current.chars.is_empty() {
        texts.push(current);
    }
    Ok(texts)
}

/// Builds the typed dictionary from training texts: every tagged surface, with the type it
/// most often has, kept only if it is tagged at least as often as it occurs untagged.
pub fn build_dictionary(train: &[TaggedText]) -> Vec<(String, String)> {
    let mut tagged: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    for text in train {
        for (start, end, kind) in &text.entities {
            let surface: String = text.chars[*start..*end].iter().collect();
            *tagged
                .entry(surface.to_lowercase())
                .or_default()
                .entry(kind.clone())
                .or_default() += 1;
        }
    }
    let surfaces: Vec<(String, String)> = tagged.keys().map(|s| (s.clone(), s.clone())).collect();
    let matcher = DictionaryMatcher::new(surfaces);
    let mut occurrences: HashMap<String, usize> = HashMap::new();
    for text in train {
        let lowered = text.text().to_lowercase();
        for hit in matcher.find_all(&lowered) {
            *occurrences.entry(hit.value.to_string()).or_default() += 1;
        }
    }
    let mut dictionary: Vec<(String, String)> = tagged
        .into_iter()
        .filter_map(|(surface, kinds)| {
            let (kind, count) = kinds.iter().max_by_key(|(_, count)| **count)?;
            let total = kinds.values().sum::<usize>();
            let seen = occurrences
                .get(&surface)
                .copied()
                .unwrap_or(total)
                .max(total);
            (2 * total >= seen && *count * 2 > total).then(|| (surface, kind.clone()))
        })
        .collect();
    dictionary.sort();
    dictionary
}

/// Entities found in `text` by the dictionary, as character spans.
fn predict(matcher: &DictionaryMatcher, text: &TaggedText) -> Vec<(usize, usize, String)> {
    let lowered: String = text
        .chars
        .iter()
        .flat_map(|c| c.to_lowercase().next())
        .collect();
    // Byte offsets of the lowered text back to character positions.
    let char_at: HashMap<usize, usize> = lowered
        .char_indices()
        .enumerate()
        .map(|(index, (byte, _))| (byte, index))
        .collect();
    matcher
        .find_all(&lowered)
        .into_iter()
        .filter_map(|hit| {
            let start = *char_at.get(&hit.start)?;
            let end = char_at.get(&hit.end).copied().unwrap_or(text.chars.len());
            Some((start, end, hit.value.to_string()))
        })
        .collect()
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Score {
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Score {
    fn finish(mut self) -> Self {
        self.precision = ratio(self.correct, self.predicted);
        self.recall = ratio(self.correct, self.gold);
        let sum = self.precision + self.recall;
        self.f1 = if sum > 0.0 {
            2.0 * self.precision * self.recall / sum
        } else {
            0.0
        };
        self
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[derive(Debug, Serialize)]
pub struct SlotReport {
    pub dictionary_entries: usize,
    pub test_texts: usize,
    pub by_type: BTreeMap<String, Score>,
    pub overall: Score,
}

pub fn evaluate(train: &[TaggedText], test: &[TaggedText]) -> SlotReport {
    let dictionary = build_dictionary(train);
    let matcher = DictionaryMatcher::new(dictionary.clone());
    let mut by_type: BTreeMap<String, Score> = BTreeMap::new();
    let mut overall = Score::default();
    for text in test {
        let gold: HashSet<(usize, usize, String)> = text.entities.iter().cloned().collect();
        let predicted: HashSet<(usize, usize, String)> =
            predict(&matcher, text).into_iter().collect();
        for (_, _, kind) in &gold {
            by_type.entry(kind.clone()).or_default().gold += 1;
        }
        for entity in &predicted {
            let score = by_type.entry(entity.2.clone()).or_default();
            score.predicted += 1;
            if gold.contains(entity) {
                score.correct += 1;
            }
        }
        overall.gold += gold.len();
        overall.predicted += predicted.len();
        overall.correct += predicted.intersection(&gold).count();
    }
    SlotReport {
        dictionary_entries: dictionary.len(),
        test_texts: test.len(),
        by_type: by_type
            .into_iter()
            .map(|(kind, score)| (kind, score.finish()))
            .collect(),
        overall: overall.finish(),
    }
}

/// Prints the report as a table, with HP and HC named as the data set defines them.
pub fn print_table(report: &SlotReport) {
    println!(
        "dictionary entries (from train): {}, test texts: {}\n",
        report.dictionary_entries, report.test_texts
    );
    println!("| type | gold | predicted | correct | precision | recall | F1 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let name = |kind: &str| match kind {
        "HP" => "brand (HP)".to_string(),
        "HC" => "product type (HC)".to_string(),
        other => other.to_string(),
    };
    let rows = report
        .by_type
        .iter()
        .map(|(kind, score)| (name(kind), score));
    for (label, score) in rows.chain(std::iter::once((
        "overall (micro)".to_string(),
        &report.overall,
    ))) {
        println!(
            "| {label} | {} | {} | {} | {:.3} | {:.3} | {:.3} |",
            score.gold, score.predicted, score.correct, score.precision, score.recall, score.f1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAIN: &str = "苹\tB-HP\n果\tE-HP\n手\tB-HC\n机\tE-HC\n\n手\tB-HC\n机\tE-HC\n壳\tO\n\n";

    #[test]
    fn parses_tags_and_scores_exact_spans() {
        let train = parse_bieos(TRAIN).unwrap();
        assert_eq!(
            train[0].entities,
            [(0, 2, "HP".into()), (2, 4, "HC".into())]
        );
        let test = parse_bieos("苹\tB-HP\n果\tE-HP\n手\tO\n机\tO\n\n").unwrap();
        let report = evaluate(&train, &test);
        assert_eq!(
            (
                report.overall.gold,
                report.overall.predicted,
                report.overall.correct
            ),
            (1, 2, 1)
        );
        assert_eq!(report.by_type["HP"].f1, 1.0);
    }

    #[test]
    fn malformed_input_is_an_error_naming_the_line() {
        let error = parse_bieos("苹\tB-HP\nno-tab-here\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
