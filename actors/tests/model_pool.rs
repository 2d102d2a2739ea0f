//! The model-worker pool with a real encoder (all-MiniLM-L6-v2 through tch on CPU).

use std::path::PathBuf;
use std::time::Duration;

use inkling_actors::model_pool::{EmbedRequest, ModelPool, ModelPoolConfig, ModelPoolMsg};
use inkling_actors::{ActorError, ask};
use inkling_models::encoder::{ModelName, TextKind, cosine};
use ractor::{Actor, ActorRef};

fn config() -> ModelPoolConfig {
    let models_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.deps/models");
    ModelPoolConfig::new(ModelName::AllMiniLmL6V2, models_dir)
}

async fn embed(
    pool: &ActorRef<ModelPoolMsg>,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, ActorError> {
    let request = EmbedRequest {
        model: ModelName::AllMiniLmL6V2,
        kind: TextKind::Query,
        texts,
    };
    ask(
        pool,
        |reply| ModelPoolMsg::Embed(request, Default::default(), reply),
        Duration::from_secs(30),
        "model pool",
    )
    .await?
}

async fn stats(pool: &ActorRef<ModelPoolMsg>) -> inkling_actors::model_pool::PoolStats {
    ask(
        pool,
        ModelPoolMsg::Stats,
        Duration::from_secs(5),
        "model pool",
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_repeats_are_cached() {
    let (pool, _) = Actor::spawn(None, ModelPool::default(), config())
        .await
        .unwrap();
    let texts: Vec<String> = (0..40)
        .map(|index| format!("a phone with {index} GB of storage"))
        .collect();
    let answers =
        futures::future::join_all(texts.iter().map(|text| embed(&pool, vec![text.clone()]))).await;
    let single = embed(
        &pool,
        vec![
            "a phone with 7 GB of storage".into(),
            "something new".into(),
        ],
    )
    .await
    .unwrap();
    for answer in &answers {
        assert_eq!(answer.as_ref().unwrap()[0].len(), 384);
    }
    assert!(cosine(&answers[7].as_ref().unwrap()[0], &single[0]) > 0.9999);
    let stats = stats(&pool).await;
    assert_eq!(stats.texts_encoded, 41, "{stats:?}");
    assert_eq!(stats.cache_hits, 1, "{stats:?}");
    assert!(
        stats.batches <= 5,
        "40 concurrent texts took {} batches",
        stats.batches
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_and_stays_bounded() {
    let config = ModelPoolConfig {
        queue_capacity: 8,
        max_batch: 4,
        max_wait: Duration::from_millis(50),
        ..config()
    };
    let (pool, _) = Actor::spawn(None, ModelPool::default(), config)
        .await
        .unwrap();
    let texts: Vec<String> = (0..200)
        .map(|index| format!("query number {index}"))
        .collect();
    let started = std::time::Instant::now();
    let answers =
        futures::future::join_all(texts.iter().map(|text| embed(&pool, vec![text.clone()]))).await;
    let overloaded = answers
        .iter()
        .filter(|answer| matches!(answer, Err(ActorError::Overloaded(_))))
        .count();
    let served = answers.iter().filter(|answer| answer.is_ok()).count();
    assert_eq!(
        overloaded + served,
        200,
        "only successes and overload refusals"
    );
    assert!(overloaded >= 150, "{overloaded} refused, {served} served");
    let stats = stats(&pool).await;
    assert_eq!(stats.rejected as usize, overloaded);
    assert!(stats.queued_texts <= 8);
    println!(
        "{served} served, {overloaded} refused in {:?}",
        started.elapsed()
    );
}
