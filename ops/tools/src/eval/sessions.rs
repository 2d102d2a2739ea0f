//! `inkling eval sessions`: next-item recommendation on session data, through the real path.
//!
//! A real node starts on a temporary data folder. Every item is registered as a bare product
//! (session data sets carry ids only), every training session is sent as view events through
//! `POST /v1/events`, and each test case then gets a fresh shopper whose prefix is sent with
//! `"learn": false` (so nothing is learned from test data) before `POST /v1/recommend` asks
//! for k items. P@k (= HR@k) and MRR@k follow the SR-GNN papers' protocol; no case is
//! filtered.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use inkling_actors::ActorConfig;
use inkling_api::{
    Client, ClientConfig, EventBatch, EventBody, EventType, ItemAnswer, RankedAnswer, RecommendBody,
};
use serde::Serialize;

use super::report::{CURVE_KS, Curve};
use super::{CALL_TIMEOUT, in_parallel, progress, put_bare_products};
use inkling_node::{CatalogSource, LocalNode};

pub struct SessionData {
    pub train: Vec<Vec<String>>,
    pub test: Vec<(Vec<String>, String)>,
}

/// Reads `train` (one session a line, space-separated ids) and `test` (`prefix<TAB>target`,
/// an optional `prefix<TAB>target` header line skipped).
pub fn read(train: &Path, test: &Path) -> Result<SessionData> {
    let train = read_sessions(train)?;
    let test_text =
        std::fs::read_to_string(test).with_context(|| format!("cannot read {}", test.display()))?;
    let mut cases = Vec::new();
    for (number, line) in test_text.lines().enumerate() {
        if line.trim().is_empty() || (number == 0 && line.trim() == "prefix\ttarget") {
            continue;
        }
        let Some((prefix, target)) = line.split_once('\t') else {
            bail!(
                "{} line {}: expected `prefix<TAB>target`",
                test.display(),
                number + 1
            );
        };
        let prefix: Vec<String> = prefix.split_whitespace().map(String::from).collect();
        let target = target.trim();
        if prefix.is_empty() || target.is_empty() {
            bail!(
                "{} line {}: empty prefix or target",
                test.display(),
                number + 1
            );
        }
        cases.push((prefix, target.to_string()));
    }
    Ok(SessionData { train, test: cases })
}

/// One session a line, space-separated item ids in click order; blank lines skipped.
pub fn read_sessions(path: &Path) -> Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|session| !session.is_empty())
        .collect())
}

/// Every prefix of every session with the item that followed it, as the papers' test files
/// are built: `[a, b, c]` gives `([a], b)` and `([a, b], c)`.
pub fn prefix_cases(sessions: &[Vec<String>]) -> Vec<(Vec<String>, String)> {
    sessions
        .iter()
        .flat_map(|session| {
            (1..session.len()).map(|end| (session[..end].to_vec(), session[end].clone()))
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct SessionReport {
    pub k: usize,
    pub cases: usize,
    pub train_sessions: usize,
    pub items: usize,
    pub precision_at_k: f64,
    pub mrr_at_k: f64,
    pub cases_per_second: f64,
    pub recommend_p50_ms: f64,
    pub recommend_p99_ms: f64,
    pub ingest_seconds: f64,
    pub total_seconds: f64,
    /// Hit rate (P@k as this report counts it) and MRR at each cut-off up to k.
    pub curves: Vec<Curve>,
    /// Every case's recommendation latency, for the report's histogram.
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
}

/// Evaluates through a fresh local node, or through the running nodes at `targets` (their
/// base URLs), spreading shoppers over them.
pub async fn evaluate(
    data: SessionData,
    k: usize,
    concurrency: usize,
    actors: ActorConfig,
    targets: Vec<String>,
) -> Result<SessionReport> {
    let started = Instant::now();
    if !targets.is_empty() {
        return tokio::task::spawn_blocking(move || run(&targets, &data, k, concurrency, started))
            .await?;
    }
    let node = LocalNode::start(CatalogSource::Empty, actors).await?;
    let bases = vec![node.base_url.clone()];
    let report =
        tokio::task::spawn_blocking(move || run(&bases, &data, k, concurrency, started)).await?;
    node.stop().await?;
    report
}

fn run(
    bases: &[String],
    data: &SessionData,
    k: usize,
    concurrency: usize,
    started: Instant,
) -> Result<SessionReport> {
    let client = Client::new(&bases[0], ClientConfig::timeout(CALL_TIMEOUT))?;
    let items: BTreeSet<&String> = data
        .train
        .iter()
        .flatten()
        .chain(
            data.test
                .iter()
                .flat_map(|(prefix, target)| prefix.iter().chain([target])),
        )
        .collect();
    register_items(&client, &items)?;
    send_training(bases, &data.train, concurrency)?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let testing = Instant::now();
    let outcomes = run_cases(bases, &data.test, k, concurrency)?;
    let test_seconds = testing.elapsed().as_secs_f64();

    let mut latencies: Vec<f64> = outcomes.iter().map(|(_, latency)| *latency).collect();
    latencies.sort_by(f64::total_cmp);
    let cases = outcomes.len();
    let hits = outcomes.iter().filter(|(rank, _)| rank.is_some()).count();
    let reciprocal: f64 = outcomes
        .iter()
        .filter_map(|(rank, _)| rank.map(|r| 1.0 / r as f64))
        .sum();
    Ok(SessionReport {
        k,
        cases,
        train_sessions: data.train.len(),
        items: items.len(),
        precision_at_k: hits as f64 / cases.max(1) as f64,
        mrr_at_k: reciprocal / cases.max(1) as f64,
        cases_per_second: cases as f64 / test_seconds,
        recommend_p50_ms: crate::bench::percentile(&latencies, 0.50),
        recommend_p99_ms: crate::bench::percentile(&latencies, 0.99),
        ingest_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        curves: curves(&outcomes, k),
        latencies_ms: latencies,
    })
}

/// The share of cases whose target is in the first k, and MRR@k, at each of
/// [`CURVE_KS`] up to `depth`, from each case's 1-based rank of its target.
fn curves(outcomes: &[(Option<usize>, f64)], depth: usize) -> Vec<Curve> {
    let cases = outcomes.len().max(1) as f64;
    let at = |k: usize| {
        let ranks = outcomes
            .iter()
            .filter_map(|(rank, _)| *rank)
            .filter(|rank| *rank <= k);
        let (hits, reciprocal) = ranks.fold((0usize, 0.0), |(hits, sum), rank| {
            (hits + 1, sum + 1.0 / rank as f64)
        });
        (hits as f64 / cases, reciprocal / cases)
    };
    let ks: Vec<usize> = CURVE_KS.into_iter().filter(|k| *k <= depth).collect();
    vec![
        Curve {
            metric: "P (hit rate)".to_string(),
            points: ks.iter().map(|k| (*k, at(*k).0)).collect(),
        },
        Curve {
            metric: "MRR".to_string(),
            points: ks.iter().map(|k| (*k, at(*k).1)).collect(),
        },
    ]
}

/// The summary rows of the HTML report.
pub fn summary(report: &SessionReport) -> Vec<(String, String)> {
    let k = report.k;
    [
        ("cases", report.cases.to_string()),
        ("training sessions", report.train_sessions.to_string()),
        ("items", report.items.to_string()),
        (
            &format!("P@{k}"),
            format!("{:.2} %", report.precision_at_k * 100.0),
        ),
        (
            &format!("MRR@{k}"),
            format!("{:.2} %", report.mrr_at_k * 100.0),
        ),
        ("cases/s", format!("{:.1}", report.cases_per_second)),
        (
            "recommend p50 / p99 ms",
            format!(
                "{:.2} / {:.2}",
                report.recommend_p50_ms, report.recommend_p99_ms
            ),
        ),
        ("ingest s", format!("{:.0}", report.ingest_seconds)),
        ("total s", format!("{:.0}", report.total_seconds)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// Session data carries ids only: each item becomes a bare, in-stock product.
pub(crate) fn register_items(client: &Client, items: &BTreeSet<&String>) -> Result<()> {
    let products: Vec<(&str, String)> = items
        .iter()
        .map(|id| (id.as_str(), format!("item {id}")))
        .collect();
    put_bare_products(client, &products, 5_000, "items")
}

/// Training sessions as view events, many sessions per request; each session is a shopper.
/// Requests go to the nodes at `bases` in turn.
pub(crate) fn send_training(
    bases: &[String],
    sessions: &[Vec<String>],
    concurrency: usize,
) -> Result<()> {
    const SESSIONS_PER_REQUEST: usize = 100;
    let batches: Vec<&[Vec<String>]> = sessions.chunks(SESSIONS_PER_REQUEST).collect();
    let bar = progress(batches.len(), "training");
    in_parallel(batches.len(), concurrency, &bar, bases, |client, index| {
        let first = index * SESSIONS_PER_REQUEST;
        let events = batches[index]
            .iter()
            .enumerate()
            .flat_map(|(offset, session)| {
                let name = format!("train-{}", first + offset);
                session.iter().map(move |item| EventBody {
                    session_id: Some(name.clone()),
                    ..EventBody::on_item(&name, EventType::View, item)
                })
            })
            .collect();
        client
            .events(&EventBatch::new(events))
            .context("sending training events failed")?;
        Ok(())
    })?;
    bar.finish();
    Ok(())
}

/// Each case: a fresh shopper replays the prefix without learning, then asks for k items.
/// Returns the target's rank (1-based) when recommended, and the recommend latency in ms.
fn run_cases(
    bases: &[String],
    cases: &[(Vec<String>, String)],
    k: usize,
    concurrency: usize,
) -> Result<Vec<(Option<usize>, f64)>> {
    let bar = progress(cases.len(), "cases");
    let outcomes = in_parallel(cases.len(), concurrency, &bar, bases, |client, index| {
        let (prefix, target) = &cases[index];
        let shopper = format!("test-{index}");
        let asked = replay_and_recommend(client, &shopper, prefix, k, false)?;
        Ok((rank_of(&asked.items, target), asked.latency_ms))
    })?;
    bar.finish();
    Ok(outcomes)
}

/// A recommend answer with how long it took.
pub(crate) struct Asked {
    pub items: Vec<ItemAnswer>,
    pub latency_ms: f64,
}

/// Sends `prefix` as a fresh shopper's held-out session (`"learn": false`), then asks for
/// `k` recommendations, with their model features when `explain`.
pub(crate) fn replay_and_recommend(
    client: &Client,
    shopper: &str,
    prefix: &[String],
    k: usize,
    explain: bool,
) -> Result<Asked> {
    let events = prefix
        .iter()
        .map(|item| EventBody {
            session_id: Some(shopper.to_string()),
            learn: false,
            ..EventBody::on_item(shopper, EventType::View, item)
        })
        .collect();
    client
        .events(&EventBatch::new(events))
        .context("sending a test prefix failed")?;
    let asked = Instant::now();
    let answer: RankedAnswer = client
        .recommend(&RecommendBody {
            session_id: Some(shopper.to_string()),
            explain,
            // The protocol counts the next item even when the session saw it before.
            buy_again: true,
            ..RecommendBody::new(shopper, k)
        })
        .context("recommend failed")?;
    let latency_ms = asked.elapsed().as_secs_f64() * 1000.0;
    Ok(Asked {
        items: answer.items,
        latency_ms,
    })
}

/// The 1-based position of `target` among recommended items.
pub(crate) fn rank_of(items: &[ItemAnswer], target: &str) -> Option<usize> {
    items
        .iter()
        .position(|item| item.product.id == target)
        .map(|position| position + 1)
}

pub fn print_table(report: &SessionReport) {
    let k = report.k;
    println!(
        "| cases | P@{k} (%) | MRR@{k} (%) | cases/s | recommend p50 ms | p99 ms | ingest s | total s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} |",
        report.cases,
        report.precision_at_k * 100.0,
        report.mrr_at_k * 100.0,
        report.cases_per_second,
        report.recommend_p50_ms,
        report.recommend_p99_ms,
        report.ingest_seconds,
        report.total_seconds
    );
}
