//! `inkling profile build`: fits the long-term profile models on a stopped node's data.
//!
//! - **Segments:** k-means over every profile's vector (category, brand and price-band
//!   affinities). Each profile stores its segment; the centroids are stored too, so a node
//!   places new and changed profiles online, and popularity is also counted per segment.
//! - **Association rules:** pairs mined from cart and purchase baskets (one basket per
//!   shopper and session, from the recent history each profile keeps). They feed the
//!   "often bought together" candidate source, next to the node's online basket counts.
//!
//! A node loads both when it starts. sled allows one process per database, so the node must
//! be stopped while this runs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use inkling_actors::inkling::{RULES_MODEL, SEGMENTS_MODEL};
use inkling_domain::{Profile, ProfileConfig, now_ms};
use inkling_models::baskets::{RuleThresholds, mine_rules};
use inkling_models::segments::{Segments, profile_vector};
use inkling_storage::{KvEngine, ModelStore, ProfileStore, SledEngine};
use serde::Serialize;

pub struct ProfileBuild {
    pub data_dir: PathBuf,
    pub segments: usize,
    pub iterations: usize,
    pub thresholds: RuleThresholds,
}

#[derive(Debug, Serialize)]
pub struct BuildReport {
    pub profiles: usize,
    /// Profiles with enough evidence for a vector, and so a segment.
    pub segmented: usize,
    /// Profiles per segment.
    pub segment_sizes: Vec<usize>,
    pub baskets: usize,
    pub rules: usize,
}

pub fn build(options: &ProfileBuild) -> Result<BuildReport> {
    if options.segments == 0 {
        bail!("--segments must be at least 1");
    }
    let sled_dir = options.data_dir.join("sled");
    if !sled_dir.is_dir() {
        bail!(
            "{} holds no node data (expected a sled database in {})",
            options.data_dir.display(),
            sled_dir.display()
        );
    }
    let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(&sled_dir).with_context(|| {
        format!(
            "cannot open {}: is a node still running on it? Stop it first",
            sled_dir.display()
        )
    })?);
    let store = ProfileStore::new(engine.clone());
    let started = Instant::now();
    let mut profiles = store.all()?;
    say(started, &format!("read {} profiles", profiles.len()));
    let models = ModelStore::new(engine.clone());

    let segment_sizes = match fit_segments(&mut profiles, options)? {
        Some((segments, sizes)) => {
            let segmented: Vec<&Profile> =
                profiles.iter().filter(|p| p.segment.is_some()).collect();
            say(
                started,
                &format!(
                    "fitted {} segments; storing the segment of {} profiles",
                    segments.len(),
                    segmented.len()
                ),
            );
            let bar = crate::eval::progress(segmented.len(), "profiles");
            for profile in segmented {
                store.save(profile)?;
                bar.inc(1);
            }
            bar.finish_and_clear();
            models.save(SEGMENTS_MODEL, &segments)?;
            sizes
        }
        None => Vec::new(),
    };
    let baskets = baskets_of(&profiles);
    say(
        started,
        &format!("mining association rules from {} baskets", baskets.len()),
    );
    let rules = mine_rules(baskets.iter().map(Vec::as_slice), &options.thresholds);
    // Each model save syncs, which also makes the profiles' new segments durable.
    models.save(RULES_MODEL, &rules)?;
    say(started, &format!("stored {} rules", rules.len()));
    Ok(BuildReport {
        profiles: profiles.len(),
        segmented: segment_sizes.iter().sum(),
        segment_sizes,
        baskets: baskets.len(),
        rules: rules.len(),
    })
}

/// One line of progress on stderr, with the seconds since the build started: the table or
/// JSON on stdout stays clean.
fn say(started: Instant, what: &str) {
    eprintln!(
        "profile build: {what} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// Clusters the profiles that have a vector and records each one's segment; None when no
/// profile has any evidence yet.
fn fit_segments(
    profiles: &mut [Profile],
    options: &ProfileBuild,
) -> Result<Option<(Segments, Vec<usize>)>> {
    let (now, half_life) = (now_ms(), ProfileConfig::default().half_life_ms);
    let vectors: Vec<(usize, Vec<f32>)> = profiles
        .iter()
        .enumerate()
        .filter_map(|(index, profile)| Some((index, profile_vector(profile, now, half_life)?)))
        .collect();
    if vectors.is_empty() {
        return Ok(None);
    }
    let points: Vec<Vec<f32>> = vectors.iter().map(|(_, vector)| vector.clone()).collect();
    eprintln!(
        "profile build: k-means over {} profile vectors, at most {} iterations",
        points.len(),
        options.iterations
    );
    let segments = Segments::fit(&points, options.segments, options.iterations, 7)?;
    let mut sizes = vec![0; segments.len()];
    for (index, vector) in &vectors {
        let segment = segments.assign(vector);
        if let Some(segment) = segment {
            sizes[segment as usize] += 1;
        }
        profiles[*index].segment = segment;
    }
    Ok(Some((segments, sizes)))
}

/// One basket per shopper and session: the distinct items carted or bought in it.
fn baskets_of(profiles: &[Profile]) -> Vec<Vec<String>> {
    let mut baskets = Vec::new();
    for profile in profiles {
        let sessions: BTreeSet<Option<&str>> = profile
            .recent_items
            .iter()
            .map(|item| item.session_id.as_deref())
            .collect();
        let filled = sessions
            .into_iter()
            .map(|session| profile.basket_in(session));
        baskets.extend(filled.filter(|basket| !basket.is_empty()));
    }
    baskets
}

pub fn print_table(report: &BuildReport) {
    println!("| profiles | segmented | segments | largest segment | baskets | rules |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} |",
        report.profiles,
        report.segmented,
        report.segment_sizes.len(),
        report.segment_sizes.iter().max().copied().unwrap_or(0),
        report.baskets,
        report.rules
    );
}
