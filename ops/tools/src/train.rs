//! `inkling train ranker`: fits the recommendation model on logged sessions, through the
//! real path.
//!
//! The training file's last sessions are held out. A real node learns online from the
//! others, exactly as in production. Each held-out prefix is then replayed by a fresh
//! shopper without learning, and `POST /v1/recommend` with `"explain": true` returns the
//! candidates with the features the ranker saw. The item the shopper really went to next is
//! the label. Most of these cases fit the weights (listwise softmax, in libtorch); the rest
//! measure the fitted weights against the untrained prior. The test file is never read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use inkling_actors::ActorConfig;
use inkling_api::{Client, ClientConfig, ItemAnswer};
use inkling_models::recommend::{
    CaseMetrics, FEATURES, Feature, FeatureVector, RankerModel, TrainOptions, TrainingCase,
    complete_with_prior, measure, train,
};
use serde_json::json;

use crate::eval::sessions::{
    prefix_cases, rank_of, read_sessions, register_items, replay_and_recommend, send_training,
};
use crate::eval::{CALL_TIMEOUT, in_parallel, progress};
use inkling_node::{CatalogSource, LocalNode};

pub struct RankerTraining {
    pub train: PathBuf,
    pub out: PathBuf,
    /// Share of the training file's sessions, from its end, held out to learn from.
    pub held_out_share: f64,
    /// Most held-out cases replayed; spread evenly over all of them.
    pub max_cases: usize,
    pub fitting: TrainOptions,
    pub concurrency: usize,
}

/// Candidates asked for per case: the widest answer the API gives.
const CANDIDATES: usize = inkling_gateway::MAX_K;
/// Every this-many-th case measures the weights instead of fitting them.
const CHECK_EVERY: usize = 5;

pub async fn train_ranker(options: RankerTraining) -> Result<()> {
    if !(options.held_out_share > 0.0 && options.held_out_share < 1.0) {
        bail!("--held-out-share must be between 0 and 1");
    }
    let sessions = read_sessions(&options.train)?;
    let cut = ((sessions.len() as f64) * (1.0 - options.held_out_share)) as usize;
    let (learned_online, held_out) = sessions.split_at(cut);
    let cases = spread(prefix_cases(held_out), options.max_cases);
    if cases.is_empty() {
        bail!(
            "{}: no held-out session has two items to learn from",
            options.train.display()
        );
    }
    eprintln!(
        "{} sessions learned online, {} held out, {} cases replayed",
        learned_online.len(),
        held_out.len(),
        cases.len()
    );

    let node = LocalNode::start(CatalogSource::Empty, ActorConfig::default()).await?;
    let base = node.base_url.clone();
    let (online, concurrency) = (learned_online.to_vec(), options.concurrency);
    let all_items: BTreeSet<String> = sessions.iter().flatten().cloned().collect();
    let logged = tokio::task::spawn_blocking(move || -> Result<Vec<TrainingCase>> {
        let client = Client::new(&base, ClientConfig::timeout(CALL_TIMEOUT))?;
        register_items(&client, &all_items.iter().collect())?;
        send_training(std::slice::from_ref(&base), &online, concurrency)?;
        log_cases(&base, &cases, concurrency)
    })
    .await??;
    node.stop().await?;

    let (fit, check): (Vec<_>, Vec<_>) = logged
        .into_iter()
        .enumerate()
        .partition(|(index, _)| index % CHECK_EVERY != 0);
    let fit: Vec<TrainingCase> = fit.into_iter().map(|(_, case)| case).collect();
    let check: Vec<TrainingCase> = check.into_iter().map(|(_, case)| case).collect();
    let k = options.fitting.k;
    let linear_options = TrainOptions {
        interaction_units: 0,
        ..options.fitting
    };
    let mut linear = train(&fit, &linear_options)?;
    let unobserved = complete_with_prior(&mut linear, &fit);
    let prior = measure(&check, &RankerModel::default(), k);
    let linear_only = measure(&check, &linear, k);
    let mut with_interactions = None;
    if options.fitting.interaction_units > 0 {
        let mut deep = train(&fit, &options.fitting)?;
        complete_with_prior(&mut deep, &fit);
        let metrics = measure(&check, &deep, k);
        with_interactions = Some((deep, metrics));
    }
    // The interactions are kept only if they rank the check cases better: on little data
    // they overfit.
    let (mut model, fitted) = match with_interactions {
        Some((deep, metrics)) if better(metrics, linear_only) => (deep, metrics),
        _ => (linear, linear_only),
    };
    let proposed = measure(&check, &model, CANDIDATES);
    print_report(
        &model,
        &unobserved,
        [prior, linear_only, fitted, proposed],
        k,
    );

    model.provenance = BTreeMap::from([
        (
            "trained_on".into(),
            json!(options.train.display().to_string()),
        ),
        (
            "sessions_learned_online".into(),
            json!(learned_online.len()),
        ),
        ("sessions_held_out".into(), json!(held_out.len())),
        ("fit_cases".into(), json!(fit.len())),
        ("check_cases".into(), json!(check.len())),
        ("check_prior".into(), json!(prior)),
        ("check_linear_only".into(), json!(linear_only)),
        ("check_fitted".into(), json!(fitted)),
        ("check_target_proposed".into(), json!(proposed.hit_rate)),
        (
            "prior_weight_features".into(),
            json!(unobserved.iter().map(|f| f.name()).collect::<Vec<_>>()),
        ),
    ]);
    write_model(&options.out, &model)
}

/// Whether `a` ranks better than `b`: more hits at k, then a higher MRR.
fn better(a: CaseMetrics, b: CaseMetrics) -> bool {
    (a.hit_rate, a.mrr) > (b.hit_rate, b.mrr)
}

/// At most `limit` cases, taken at an even stride so every part of the file is represented.
fn spread<T>(cases: Vec<T>, limit: usize) -> Vec<T> {
    let stride = cases.len().div_ceil(limit.max(1)).max(1);
    cases.into_iter().step_by(stride).collect()
}

/// Replays each case and records the candidates' features and where the target was.
fn log_cases(
    base: &str,
    cases: &[(Vec<String>, String)],
    concurrency: usize,
) -> Result<Vec<TrainingCase>> {
    let bar = progress(cases.len(), "cases");
    let bases = [base.to_string()];
    let logged = in_parallel(cases.len(), concurrency, &bar, &bases, |client, index| {
        let (prefix, target) = &cases[index];
        let shopper = format!("held-out-{index}");
        let asked = replay_and_recommend(client, &shopper, prefix, CANDIDATES, true)?;
        let candidates = asked
            .items
            .iter()
            .map(features_of)
            .collect::<Result<Vec<_>>>()?;
        Ok(TrainingCase {
            candidates,
            target: rank_of(&asked.items, target).map(|rank| rank - 1),
        })
    })?;
    bar.finish();
    Ok(logged)
}

fn features_of(item: &ItemAnswer) -> Result<FeatureVector> {
    let mut vector = [0.0; FEATURES];
    for (index, feature) in Feature::ALL.iter().enumerate() {
        vector[index] = item
            .features
            .as_ref()
            .and_then(|features| features.get(feature.name()))
            .copied()
            .with_context(|| format!("recommendation lacks feature `{}`", feature.name()))?;
    }
    Ok(vector)
}

/// The chosen model's linear weights, and on the check cases: the HR and MRR of the prior,
/// of the linear model and of the chosen one, and how often the target was a candidate.
fn print_report(
    model: &RankerModel,
    unobserved: &[Feature],
    [prior, linear, chosen, proposed]: [CaseMetrics; 4],
    k: usize,
) {
    let weights = model.vector();
    println!("| feature | weight |");
    println!("|---|---:|");
    for (index, feature) in Feature::ALL.iter().enumerate() {
        let note = if unobserved.contains(feature) {
            " (never observed: scaled prior)"
        } else {
            ""
        };
        println!("| {} | {:.4}{note} |", feature.name(), weights[index]);
    }
    println!();
    println!(
        "target among the {CANDIDATES} candidates: {:.2}%",
        proposed.hit_rate * 100.0
    );
    let chosen_name = match &model.interactions {
        Some(layer) => format!("chosen: linear + {} interaction units", layer.output.len()),
        None => "chosen: linear".to_string(),
    };
    println!(
        "| held-out check ({} cases) | HR@{k} (%) | MRR@{k} (%) |",
        prior.cases
    );
    println!("|---|---:|---:|");
    let rows = [
        ("untrained prior".to_string(), prior),
        ("linear".to_string(), linear),
        (chosen_name, chosen),
    ];
    for (name, metrics) in rows {
        println!(
            "| {name} | {:.2} | {:.2} |",
            metrics.hit_rate * 100.0,
            metrics.mrr * 100.0
        );
    }
}

fn write_model(path: &Path, model: &RankerModel) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(model)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("\nweights written to {}", path.display());
    Ok(())
}
