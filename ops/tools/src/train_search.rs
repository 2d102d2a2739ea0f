//! `inkling train search-ranker`: fits the search ranker on graded judgements, through the
//! real path.
//!
//! A real node serves the corpus, and every judged query goes through `POST /v1/search`
//! with `"explain": true`; the answer's items carry the features they were ranked by (under
//! the node's fusion, so the candidates are what a shopper would be shown). Queries of the
//! training half (`eval search --split train`) fit the weights listwise; the held-out half
//! is only measured, by re-ranking its logged candidates. `eval search --search-ranker FILE
//! --split held-out` then measures the fitted file through the node.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use inkling_models::search_ranker::{
    GradedList, SEARCH_FEATURE_COUNT, SEARCH_FEATURES, SearchFeatureVector, SearchRanker,
    SearchTrainOptions, fit,
};

use crate::eval::search::{
    LoggedAnswer, SearchData, SearchEval, Split, evaluate, is_held_out, score_ranking,
};

/// Query id → document id → grade.
type Qrels = HashMap<String, HashMap<String, f64>>;

pub struct SearchRankerTraining {
    pub data: SearchData,
    pub eval: SearchEval,
    pub out: PathBuf,
    /// Logged answers: read from here when the file exists, else logged and written here.
    pub features: Option<PathBuf>,
    pub fitting: SearchTrainOptions,
    /// The weights the node ranked with while logging, for comparison.
    pub prior: SearchRanker,
}

/// nDCG is reported at this cut-off, as `eval search` does by default.
const K: usize = 10;

pub async fn train_search_ranker(options: SearchRankerTraining) -> Result<()> {
    let SearchRankerTraining {
        data,
        eval,
        out,
        features,
        fitting,
        prior,
    } = options;
    let qrels = data.qrels.clone();
    let logged = match &features {
        Some(path) if path.exists() => read_logged(path)?,
        _ => {
            let eval = SearchEval {
                split: Split::All,
                explain: true,
                ..eval
            };
            let (report, logged) = evaluate(data, eval).await?;
            eprintln!(
                "logged {} queries (nDCG@{} {:.4} as served)",
                report.queries, report.k, report.ndcg_at_k
            );
            if let Some(path) = &features {
                write_logged(path, &logged)?;
            }
            logged
        }
    };
    let (train, held_out): (Vec<&LoggedAnswer>, Vec<&LoggedAnswer>) = logged
        .iter()
        .partition(|answer| !is_held_out(&answer.query));
    let training: Vec<GradedList> = train.iter().map(|a| graded(a, &qrels)).collect();
    let fitted = fit(&training, &fitting)?;
    std::fs::write(&out, serde_json::to_string_pretty(&fitted)?)
        .with_context(|| format!("cannot write {}", out.display()))?;

    println!(
        "{} training queries, {} held out; re-ranking each query's logged candidates:",
        train.len(),
        held_out.len()
    );
    println!("\n| weights | train nDCG@{K} | held-out nDCG@{K} |\n|---|---:|---:|");
    for (name, ranker) in [("as served", &prior), ("fitted", &fitted)] {
        println!(
            "| {name} | {:.4} | {:.4} |",
            mean_ndcg(&train, &qrels, ranker),
            mean_ndcg(&held_out, &qrels, ranker)
        );
    }
    println!("\n| feature | weight |\n|---|---:|");
    for (name, weight) in SEARCH_FEATURES.iter().zip(fitted.vector()) {
        println!("| {name} | {weight:.4} |");
    }
    println!("\nwrote {}", out.display());
    Ok(())
}

fn graded(answer: &LoggedAnswer, qrels: &Qrels) -> GradedList {
    let judged = qrels.get(&answer.query);
    let (candidates, gains) = answer
        .items
        .iter()
        .map(|(id, features)| {
            let gain = judged
                .and_then(|grades| grades.get(id))
                .copied()
                .unwrap_or(0.0);
            (vector_of(features), gain.max(0.0) as f32)
        })
        .unzip();
    GradedList { candidates, gains }
}

/// Mean nDCG@K of the answers re-ranked by `ranker`, counted as `eval search` counts it.
fn mean_ndcg(answers: &[&LoggedAnswer], qrels: &Qrels, ranker: &SearchRanker) -> f64 {
    if answers.is_empty() {
        return 0.0;
    }
    let total: f64 = answers
        .iter()
        .map(|answer| {
            let mut scored: Vec<(f32, &String)> = answer
                .items
                .iter()
                .map(|(id, features)| (ranker.score(&vector_of(features)), id))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            let ranked: Vec<String> = scored.into_iter().map(|(_, id)| id.clone()).collect();
            let judged = qrels.get(&answer.query).cloned().unwrap_or_default();
            score_ranking(&ranked, &judged, K).0
        })
        .sum();
    total / answers.len() as f64
}

fn vector_of(features: &[f32]) -> SearchFeatureVector {
    let mut vector: SearchFeatureVector = [0.0; SEARCH_FEATURE_COUNT];
    for (slot, value) in vector.iter_mut().zip(features) {
        *slot = *value;
    }
    vector
}

fn write_logged(path: &Path, logged: &[LoggedAnswer]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for answer in logged {
        serde_json::to_writer(&mut out, answer)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read_logged(path: &Path) -> Result<Vec<LoggedAnswer>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(number, line)| {
            let line = line?;
            serde_json::from_str(&line)
                .with_context(|| format!("{} line {}", path.display(), number + 1))
        })
        .collect()
}
