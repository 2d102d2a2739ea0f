//! `inkling train ranker` end to end: a real node learns from a session file, held-out
//! prefixes are replayed through HTTP, and the fitted weights must rank better than the
//! untrained prior on cases they were not fitted on.

use inkling_models::recommend::{Feature, RankerModel, TrainOptions};
use inkling_tools::train::{RankerTraining, train_ranker};

/// Shoppers walk a ring of items, mostly one step at a time and now and then skipping one,
/// so "what followed this item" predicts the next item and popularity does not.
fn ring_sessions(sessions: usize, items: usize) -> String {
    let mut lines = Vec::new();
    for session in 0..sessions {
        let mut item = (session * 7) % items;
        let mut line = vec![item.to_string()];
        for step in 0..(3 + session % 4) {
            let skip = usize::from((session + step) % 5 == 0);
            item = (item + 1 + skip) % items;
            line.push(item.to_string());
        }
        lines.push(line.join(" "));
    }
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn trained_weights_beat_the_prior_on_held_out_cases() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.txt");
    std::fs::write(&train, ring_sessions(1_500, 200)).unwrap();
    let out = dir.path().join("ranker.json");
    let options = RankerTraining {
        train,
        out: out.clone(),
        held_out_share: 0.1,
        max_cases: 1_000,
        fitting: TrainOptions::default(),
        concurrency: 2,
    };
    train_ranker(options).await.unwrap();

    let model = RankerModel::load(&out).unwrap();
    let provenance = &model.provenance;
    let metric = |key: &str, name: &str| provenance[key][name].as_f64().unwrap();
    assert!(
        metric("check_fitted", "mrr") > metric("check_prior", "mrr"),
        "{provenance:?}"
    );
    assert!(metric("check_fitted", "hit_rate") >= metric("check_prior", "hit_rate"));
    assert!(provenance["fit_cases"].as_u64().unwrap() > 100);
    // Behaviour the file never showed keeps a (scaled) prior weight rather than zero.
    assert!(model.weight(Feature::CategoryAffinity) > 0.0, "{model:?}");
}
