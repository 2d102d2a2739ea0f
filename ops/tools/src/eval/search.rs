//! `inkling eval search`: retrieval quality and speed on BEIR/TREC-style TSV files, through
//! the real path.
//!
//! A real node starts on a temporary data folder (with the encoder only when the mode uses
//! vectors). The corpus goes in through `PUT /v1/products`, each document becoming a product
//! whose title is its text, and every query goes through `POST /v1/search` as a fresh
//! shopper. Metrics follow the usual definitions: nDCG@10 with gain = grade and unjudged
//! documents counted as 0, MRR@10 and Recall@100 over documents with a positive grade.
//! Queries without judgements are skipped, and counted as skipped.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use inkling_actors::ActorConfig;
use inkling_actors::protocol::SearchMode;
use inkling_api::{Client, ClientConfig, SearchBody};
use inkling_models::search_ranker::SEARCH_FEATURES;
use serde::{Deserialize, Serialize};

use super::report::{CURVE_KS, Curve};
use super::{in_parallel, progress, put_bare_products};
use inkling_node::{CatalogSource, LocalNode};

/// Recall is measured at this depth, so every query asks for at least this many hits.
const RECALL_DEPTH: usize = 100;
const PRODUCTS_PER_REQUEST: usize = 1_000;

pub struct SearchData {
    pub corpus: Vec<(String, String)>,
    pub queries: Vec<(String, String)>,
    /// Query id → document id → grade.
    pub qrels: HashMap<String, HashMap<String, f64>>,
}

/// Reads `id<TAB>text` lines; a first line `id<TAB>...` naming columns is skipped.
fn read_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (number == 0 && line.starts_with("_id\t")) {
            continue;
        }
        let Some((id, body)) = line.split_once('\t') else {
            bail!(
                "{} line {}: expected `id<TAB>text`",
                path.display(),
                number + 1
            );
        };
        let (id, body) = (id.trim(), body.trim());
        if id.is_empty() || body.is_empty() {
            bail!("{} line {}: empty id or text", path.display(), number + 1);
        }
        pairs.push((id.to_string(), body.to_string()));
    }
    if pairs.is_empty() {
        bail!("{} holds no `id<TAB>text` lines", path.display());
    }
    Ok(pairs)
}

/// Reads `qid<TAB>0<TAB>docid<TAB>grade` lines (TREC qrels; the second column is ignored).
fn read_qrels(path: &Path) -> Result<HashMap<String, HashMap<String, f64>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut qrels: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let columns: Vec<&str> = line.split('\t').map(str::trim).collect();
        let grade = match columns.as_slice() {
            [_, _, _, grade] => grade.parse::<f64>().ok().filter(|g| g.is_finite()),
            _ => None,
        };
        let Some(grade) = grade else {
            if number == 0 && columns.len() == 4 {
                continue; // a header such as `query-id 0 corpus-id score`
            }
            bail!(
                "{} line {}: expected `qid<TAB>0<TAB>docid<TAB>grade` with a numeric grade",
                path.display(),
                number + 1
            );
        };
        qrels
            .entry(columns[0].to_string())
            .or_default()
            .insert(columns[2].to_string(), grade);
    }
    Ok(qrels)
}

pub fn read(corpus: &Path, queries: &Path, qrels: &Path) -> Result<SearchData> {
    Ok(SearchData {
        corpus: read_pairs(corpus)?,
        queries: read_pairs(queries)?,
        qrels: read_qrels(qrels)?,
    })
}

#[derive(Debug, Serialize)]
pub struct SearchReport {
    pub mode: SearchMode,
    pub split: Split,
    pub documents: usize,
    pub queries: usize,
    pub skipped_unjudged_queries: usize,
    pub k: usize,
    pub ndcg_at_k: f64,
    pub mrr_at_k: f64,
    pub recall_at_100: f64,
    pub queries_per_second: f64,
    pub concurrency: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub load_seconds: f64,
    /// nDCG, MRR and recall at each cut-off up to the depth searched.
    pub curves: Vec<Curve>,
    /// Every query's latency, for the report's histogram.
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
}

/// nDCG@k, reciprocal rank@k and recall@100 of one ranked list against its judgements.
pub fn score_ranking(
    ranked: &[String],
    judged: &HashMap<String, f64>,
    k: usize,
) -> (f64, f64, f64) {
    let (ndcg, reciprocal_rank, _) = metrics_at(ranked, judged, k);
    let (_, _, recall) = metrics_at(ranked, judged, RECALL_DEPTH);
    (ndcg, reciprocal_rank, recall)
}

/// nDCG, reciprocal rank and recall of one ranked list cut at `k`.
fn metrics_at(ranked: &[String], judged: &HashMap<String, f64>, k: usize) -> (f64, f64, f64) {
    let gain = |id: &String| judged.get(id).copied().unwrap_or(0.0).max(0.0);
    let discount = |position: usize| 1.0 / ((position + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(position, id)| gain(id) * discount(position))
        .sum();
    let mut ideal: Vec<f64> = judged.values().map(|grade| grade.max(0.0)).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(position, grade)| grade * discount(position))
        .sum();
    let ndcg = if idcg > 0.0 { dcg / idcg } else { 0.0 };
    let reciprocal_rank = ranked
        .iter()
        .take(k)
        .position(|id| gain(id) > 0.0)
        .map_or(0.0, |position| 1.0 / (position + 1) as f64);
    let relevant = judged.values().filter(|grade| **grade > 0.0).count();
    let found = ranked.iter().take(k).filter(|id| gain(id) > 0.0).count();
    let recall = if relevant > 0 {
        found as f64 / relevant as f64
    } else {
        0.0
    };
    (ndcg, reciprocal_rank, recall)
}

/// Mean nDCG, MRR and recall at each of [`CURVE_KS`] up to `depth`.
fn curves(rankings: &[(Vec<String>, &HashMap<String, f64>)], depth: usize) -> Vec<Curve> {
    let names = ["nDCG", "MRR", "Recall"];
    let mut curves: Vec<Curve> = names
        .iter()
        .map(|metric| Curve {
            metric: metric.to_string(),
            points: Vec::new(),
        })
        .collect();
    let count = rankings.len().max(1) as f64;
    for k in CURVE_KS.into_iter().filter(|k| *k <= depth) {
        let mut sums = [0.0; 3];
        for (ranked, judged) in rankings {
            let (ndcg, reciprocal_rank, recall) = metrics_at(ranked, judged, k);
            for (sum, value) in sums.iter_mut().zip([ndcg, reciprocal_rank, recall]) {
                *sum += value;
            }
        }
        for (curve, sum) in curves.iter_mut().zip(sums) {
            curve.points.push((k, sum / count));
        }
    }
    curves
}

/// Which judged queries an evaluation asks: the search ranker is fitted on the training
/// half and measured on the held-out half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    All,
    Train,
    HeldOut,
}

impl Split {
    /// Whether the query belongs to this split: half the queries, by a hash of their id, are
    /// held out.
    pub fn contains(self, query_id: &str) -> bool {
        match self {
            Split::All => true,
            Split::Train => !is_held_out(query_id),
            Split::HeldOut => is_held_out(query_id),
        }
    }
}

/// FNV-1a of the query id, odd = held out: stable across runs, machines and versions.
pub fn is_held_out(query_id: &str) -> bool {
    let hash = query_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    hash % 2 == 1
}

/// How to run an evaluation, beyond the data.
pub struct SearchEval {
    pub k: usize,
    pub mode: SearchMode,
    pub actors: ActorConfig,
    pub concurrency: usize,
    /// Where to write the ranked lists as a TREC run, if anywhere.
    pub run_file: Option<std::path::PathBuf>,
    pub split: Split,
    /// Ask for each answer's ranking features and keep them, for fitting the search ranker.
    pub explain: bool,
}

/// One query's answer with the features each item was ranked by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedAnswer {
    pub query: String,
    /// (document id, features in `SEARCH_FEATURES` order), in the order answered.
    pub items: Vec<(String, Vec<f32>)>,
}

/// Runs the evaluation; with `explain`, also answers every query's logged features.
pub async fn evaluate(
    data: SearchData,
    eval: SearchEval,
) -> Result<(SearchReport, Vec<LoggedAnswer>)> {
    let actors = eval.actors.clone();
    let node = LocalNode::start(CatalogSource::Empty, actors).await?;
    let base = node.base_url.clone();
    let report = tokio::task::spawn_blocking(move || run(&base, &data, &eval)).await?;
    node.stop().await?;
    report
}

fn run(
    base: &str,
    data: &SearchData,
    eval: &SearchEval,
) -> Result<(SearchReport, Vec<LoggedAnswer>)> {
    let (k, mode, concurrency) = (eval.k, eval.mode, eval.concurrency);
    let loading = Instant::now();
    load_corpus(base, &data.corpus)?;
    let load_seconds = loading.elapsed().as_secs_f64();

    let judged: Vec<&(String, String)> = data
        .queries
        .iter()
        .filter(|(id, _)| data.qrels.contains_key(id) && eval.split.contains(id))
        .collect();
    if judged.is_empty() {
        bail!("no query has judgements in the qrels file");
    }
    let bar = progress(judged.len(), "queries");
    let searching = Instant::now();
    let bases = [base.to_string()];
    let answers = in_parallel(judged.len(), concurrency, &bar, &bases, |client, index| {
        let (id, text) = judged[index];
        let asked = Instant::now();
        let answer = client
            .search(&SearchBody {
                mode: api_mode(mode),
                explain: eval.explain,
                ..SearchBody::new(format!("eval-{id}"), text.as_str(), k.max(RECALL_DEPTH))
            })
            .with_context(|| format!("search for query {id} failed"))?;
        let latency = asked.elapsed().as_secs_f64() * 1000.0;
        let logged = LoggedAnswer {
            query: id.clone(),
            items: answer
                .items
                .iter()
                .map(|item| {
                    (
                        item.product.id.clone(),
                        feature_vector(item.features.as_ref()),
                    )
                })
                .collect(),
        };
        let ranked: Vec<(String, f64)> = answer
            .items
            .into_iter()
            .map(|item| (item.product.id, item.score))
            .collect();
        Ok((ranked, latency, logged))
    })?;
    let search_seconds = searching.elapsed().as_secs_f64();
    bar.finish();

    let (answers, logged): (Vec<_>, Vec<_>) = answers
        .into_iter()
        .map(|(ranked, latency, logged)| ((ranked, latency), logged))
        .unzip();
    if let Some(path) = &eval.run_file {
        write_run(path, &judged, &answers, mode)?;
    }
    let rankings: Vec<(Vec<String>, &HashMap<String, f64>)> = judged
        .iter()
        .zip(&answers)
        .map(|((id, _), (ranked, _))| {
            let ids = ranked.iter().map(|(id, _)| id.clone()).collect();
            (ids, &data.qrels[id])
        })
        .collect();
    let (mut ndcg, mut mrr, mut recall) = (0.0, 0.0, 0.0);
    for (ids, judged) in &rankings {
        let (n, m, r) = score_ranking(ids, judged, k);
        ndcg += n;
        mrr += m;
        recall += r;
    }
    let count = judged.len() as f64;
    let mut latencies: Vec<f64> = answers.iter().map(|(_, latency)| *latency).collect();
    latencies.sort_by(f64::total_cmp);
    let report = SearchReport {
        mode,
        split: eval.split,
        documents: data.corpus.len(),
        queries: judged.len(),
        skipped_unjudged_queries: data.queries.len() - judged.len(),
        k,
        ndcg_at_k: ndcg / count,
        mrr_at_k: mrr / count,
        recall_at_100: recall / count,
        queries_per_second: count / search_seconds,
        concurrency,
        latency_p50_ms: crate::bench::percentile(&latencies, 0.50),
        latency_p99_ms: crate::bench::percentile(&latencies, 0.99),
        load_seconds,
        curves: curves(&rankings, k.max(RECALL_DEPTH)),
        latencies_ms: latencies,
    };
    let logged = if eval.explain { logged } else { Vec::new() };
    Ok((report, logged))
}

/// An answer item's features in `SEARCH_FEATURES` order (zeros when it has none).
fn feature_vector(features: Option<&BTreeMap<String, f32>>) -> Vec<f32> {
    SEARCH_FEATURES
        .iter()
        .map(|name| {
            features
                .and_then(|map| map.get(*name))
                .copied()
                .unwrap_or(0.0)
        })
        .collect()
}

/// Writes the ranked lists in TREC run format (`qid Q0 docid rank score tag`), for
/// trec_eval and for comparing or fusing runs offline.
fn write_run(
    path: &Path,
    queries: &[&(String, String)],
    answers: &[(Vec<(String, f64)>, f64)],
    mode: SearchMode,
) -> Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let tag = format!("inkling-{mode:?}").to_lowercase();
    for ((query, _), (ranked, _)) in queries.iter().zip(answers) {
        for (rank, (doc, score)) in ranked.iter().enumerate() {
            writeln!(out, "{query} Q0 {doc} {} {score:.6} {tag}", rank + 1)?;
        }
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Each document becomes an in-stock product titled with its text.
fn load_corpus(base: &str, corpus: &[(String, String)]) -> Result<()> {
    let client = Client::new(base, ClientConfig::timeout(Duration::from_secs(600)))?;
    let products: Vec<(&str, String)> = corpus
        .iter()
        .map(|(id, text)| (id.as_str(), text.clone()))
        .collect();
    put_bare_products(&client, &products, PRODUCTS_PER_REQUEST, "documents")
}

/// The API's name for a search mode.
fn api_mode(mode: SearchMode) -> inkling_api::SearchMode {
    match mode {
        SearchMode::Lexical => inkling_api::SearchMode::Lexical,
        SearchMode::Vector => inkling_api::SearchMode::Vector,
        SearchMode::Hybrid => inkling_api::SearchMode::Hybrid,
    }
}

/// The summary rows of the HTML report.
pub fn summary(report: &SearchReport) -> Vec<(String, String)> {
    let k = report.k;
    [
        ("mode", format!("{:?}", report.mode)),
        ("split", format!("{:?}", report.split)),
        ("documents", report.documents.to_string()),
        ("queries", report.queries.to_string()),
        (&format!("nDCG@{k}"), format!("{:.4}", report.ndcg_at_k)),
        (&format!("MRR@{k}"), format!("{:.4}", report.mrr_at_k)),
        ("Recall@100", format!("{:.4}", report.recall_at_100)),
        ("queries/s", format!("{:.0}", report.queries_per_second)),
        (
            "latency p50 / p99 ms",
            format!(
                "{:.2} / {:.2}",
                report.latency_p50_ms, report.latency_p99_ms
            ),
        ),
        ("load s", format!("{:.0}", report.load_seconds)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

pub fn print_table(report: &SearchReport) {
    let k = report.k;
    println!(
        "| mode | split | documents | queries | nDCG@{k} | MRR@{k} | Recall@100 | queries/s | p50 ms | p99 ms | load s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:?} | {:?} | {} | {} | {:.4} | {:.4} | {:.4} | {:.0} | {:.2} | {:.2} | {:.0} |",
        report.mode,
        report.split,
        report.documents,
        report.queries,
        report.ndcg_at_k,
        report.mrr_at_k,
        report.recall_at_100,
        report.queries_per_second,
        report.latency_p50_ms,
        report.latency_p99_ms,
        report.load_seconds
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ranked: &[&str], judged: &[(&str, f64)], expected: (f64, f64, f64)) {
        let ranked: Vec<String> = ranked.iter().map(|id| id.to_string()).collect();
        let judged: HashMap<String, f64> = judged
            .iter()
            .map(|(id, grade)| (id.to_string(), *grade))
            .collect();
        let (ndcg, mrr, recall) = score_ranking(&ranked, &judged, 10);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            close(ndcg, expected.0) && close(mrr, expected.1) && close(recall, expected.2),
            "{ranked:?} {judged:?}: got {:?}, expected {expected:?}",
            (ndcg, mrr, recall)
        );
    }

    /// (ranked ids, judgements, expected (nDCG@10, RR@10, recall@100))
    type MetricCase = (
        &'static [&'static str],
        &'static [(&'static str, f64)],
        (f64, f64, f64),
    );

    #[test]
    fn metric_cases() {
        let log3 = 3f64.log2();
        let cases: &[MetricCase] = &[
            // The ideal order.
            (&["a", "b"], &[("a", 2.0), ("b", 1.0)], (1.0, 1.0, 1.0)),
            // Swapped: DCG = 1 + 2/log2(3), IDCG = 2 + 1/log2(3).
            (
                &["b", "a"],
                &[("a", 2.0), ("b", 1.0)],
                ((1.0 + 2.0 / log3) / (2.0 + 1.0 / log3), 1.0, 1.0),
            ),
            // Unjudged and zero-grade documents gain nothing.
            (
                &["x", "z", "a"],
                &[("a", 1.0), ("z", 0.0)],
                (0.5, 1.0 / 3.0, 1.0),
            ),
            (&["x"], &[("a", 1.0), ("b", 1.0)], (0.0, 0.0, 0.0)),
            (&[], &[("a", 1.0)], (0.0, 0.0, 0.0)),
            // Nothing relevant to find.
            (&["a"], &[("a", 0.0)], (0.0, 0.0, 0.0)),
        ];
        for (ranked, judged, expected) in cases {
            check(ranked, judged, *expected);
        }
    }

    #[test]
    fn reading_rejects_malformed_lines_with_their_location() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let good = write("corpus.tsv", "d1\tcordless drill\nd2\tangle bracket\n");
        let queries = write("queries.tsv", "q1\tdrill\n");
        let qrels = write("qrels.tsv", "q1\t0\td1\t2\n");
        let data = read(&good, &queries, &qrels).unwrap();
        assert_eq!(data.corpus.len(), 2);
        assert_eq!(data.qrels["q1"]["d1"], 2.0);

        let cases = [
            (
                write("c1.tsv", "d1 no tab\n"),
                &queries,
                &qrels,
                "expected `id<TAB>text`",
            ),
            (
                good.clone(),
                &queries,
                &write("r1.tsv", "q1\t0\td1\n"),
                "numeric grade",
            ),
            (
                good.clone(),
                &queries,
                &write("r2.tsv", "q1\t0\td1\t2\nq2\t0\td2\thigh\n"),
                "line 2",
            ),
            (write("c2.tsv", ""), &queries, &qrels, "holds no"),
        ];
        for (corpus, queries, qrels, message) in cases {
            let error = read(&corpus, queries, qrels)
                .err()
                .expect("must fail")
                .to_string();
            assert!(error.contains(message), "{error}");
        }
    }
}
