//! `train search-ranker` end to end on a small judged set, lexical mode: the features come
//! back through `POST /v1/search` with `"explain": true` from a real node, the fitted file
//! loads, and a node started with it answers the held-out queries.

use std::collections::HashMap;

use inkling_actors::ActorConfig;
use inkling_actors::protocol::SearchMode;
use inkling_models::search_ranker::{SEARCH_FEATURE_COUNT, SEARCH_FEATURES, SearchRanker};
use inkling_tools::eval::search::{SearchData, SearchEval, Split, evaluate};
use inkling_tools::train_search::{SearchRankerTraining, train_search_ranker};

/// Titles where the query's words are spread over long titles for the irrelevant products
/// and all present in short ones for the relevant.
fn data() -> SearchData {
    let mut corpus = Vec::new();
    let mut queries = Vec::new();
    let mut qrels: HashMap<String, HashMap<String, f64>> = HashMap::new();
    let things = [
        "mug", "lamp", "kettle", "towel", "pillow", "blanket", "vase", "clock",
    ];
    let colours = ["red", "blue", "green", "black"];
    for (t, thing) in things.iter().enumerate() {
        for (c, colour) in colours.iter().enumerate() {
            let relevant = format!("d{t}-{c}");
            corpus.push((relevant.clone(), format!("{colour} {thing}")));
            let decoy = format!("x{t}-{c}");
            corpus.push((
                decoy,
                format!(
                    "{thing} {thing} stand for a {} {thing} shelf",
                    colours[(c + 1) % 4]
                ),
            ));
            let query = format!("q{t}-{c}");
            queries.push((query.clone(), format!("{colour} {thing}")));
            qrels.entry(query).or_default().insert(relevant, 2.0);
        }
    }
    SearchData {
        corpus,
        queries,
        qrels,
    }
}

fn eval(actors: ActorConfig, split: Split) -> SearchEval {
    SearchEval {
        k: 10,
        mode: SearchMode::Lexical,
        actors,
        concurrency: 2,
        run_file: None,
        split,
        explain: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ranker_is_fitted_on_logged_features_and_served() {
    let folder = tempfile::tempdir().unwrap();
    let (out, features) = (folder.path().join("sr.json"), folder.path().join("f.jsonl"));

    // Logged through the node: every item carries every feature.
    let logging = SearchEval {
        explain: true,
        ..eval(ActorConfig::default(), Split::All)
    };
    let (_, logged) = evaluate(data(), logging).await.unwrap();
    assert_eq!(logged.len(), data().queries.len());
    for answer in &logged {
        let (_, first) = &answer.items[0];
        assert_eq!(first.len(), SEARCH_FEATURE_COUNT, "{}", answer.query);
        let coverage = SEARCH_FEATURES
            .iter()
            .position(|f| *f == "coverage")
            .unwrap();
        assert!(first[0] > 0.0 && first[coverage] > 0.0, "{answer:?}");
    }

    let training = SearchRankerTraining {
        data: data(),
        eval: eval(ActorConfig::default(), Split::All),
        out: out.clone(),
        features: Some(features.clone()),
        fitting: Default::default(),
        prior: SearchRanker::convex(0.5),
    };
    train_search_ranker(training).await.unwrap();
    assert!(features.exists(), "the logged answers are kept for a refit");
    let fitted = SearchRanker::load(&out).unwrap();
    assert_ne!(fitted, SearchRanker::convex(0.5));

    let served = ActorConfig {
        search_ranker: Some(fitted),
        ..Default::default()
    };
    let (report, _) = evaluate(data(), eval(served, Split::HeldOut))
        .await
        .unwrap();
    println!(
        "held-out nDCG@10 with the fitted ranker: {:.3}",
        report.ndcg_at_k
    );
    assert!(report.queries > 0 && report.queries < data().queries.len());
    assert!(report.ndcg_at_k > 0.9, "{report:?}");
}
