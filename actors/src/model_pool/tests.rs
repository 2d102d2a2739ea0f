//! The pool with fake encoders: batching, the queue bound, the cache and replacing workers,
//! without model weights. A fake encoder records every batch it runs and holds it at a
//! gate until the test opens it, so requests queue behind a busy worker exactly as they do
//! under load.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use ractor::concurrency::OneshotReceiver;

use super::*;

/// A fake encoder asked to encode a text containing this panics.
const PANIC: &str = "panic please";
/// Texts that start with this are probes: encoded, but not recorded among the batches.
const PROBE: &str = "probe:";
/// No test waits longer than this for anything.
const DEADLINE: Duration = Duration::from_secs(15);

type Answer = Result<Vec<Vec<f32>>, ActorError>;

/// What the fake encoders of one pool share.
#[derive(Default)]
struct FakeModel {
    /// The size of every batch encoded, in order, probes left out.
    batches: Mutex<Vec<usize>>,
    /// Every attempt to load an encoder, failed ones included.
    loads: AtomicUsize,
    /// The next this many loads fail.
    failing_loads: AtomicUsize,
    gate_open: Mutex<bool>,
    gate_opened: Condvar,
}

impl FakeModel {
    fn closed() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn open(&self) {
        *self.gate_open.lock().unwrap() = true;
        self.gate_opened.notify_all();
    }

    /// Holds the calling encoder until the gate opens (or the test's deadline passes).
    fn wait_for_gate(&self) {
        let open = self.gate_open.lock().unwrap();
        let _open = self
            .gate_opened
            .wait_timeout_while(open, DEADLINE, |open| !*open)
            .unwrap();
    }

    fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    fn loader(self: &Arc<Self>) -> LoadEncoder {
        let model = self.clone();
        Arc::new(move |_, models_dir, _| {
            model.loads.fetch_add(1, Ordering::SeqCst);
            let fail = model
                .failing_loads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
            if fail {
                return Err(EncoderError::Load {
                    path: models_dir.display().to_string(),
                    message: "the fake was told to fail".into(),
                });
            }
            Ok(Box::new(FakeEncoder {
                model: model.clone(),
            }))
        })
    }
}

struct FakeEncoder {
    model: Arc<FakeModel>,
}

impl TextEncoder for FakeEncoder {
    fn model(&self) -> ModelName {
        ModelName::AllMiniLmL6V2
    }

    fn encode(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, EncoderError> {
        if !texts.iter().all(|text| text.starts_with(PROBE)) {
            self.model.batches.lock().unwrap().push(texts.len());
        }
        self.model.wait_for_gate();
        if texts.iter().any(|text| text.contains(PANIC)) {
            panic!("the fake encoder was asked to panic");
        }
        Ok(texts.iter().map(|text| fake_vector(text, kind)).collect())
    }
}

/// The fake's vector: the text's bytes, then its kind, so a test can tell which text and
/// which side each answer belongs to.
fn fake_vector(text: &str, kind: TextKind) -> Vec<f32> {
    let side = match kind {
        TextKind::Query => 1.0,
        TextKind::Passage => 2.0,
    };
    text.bytes().map(f32::from).chain([side]).collect()
}

/// Fail-points are process-wide: every pool test holds the fail scenario, so the one that
/// arms a worker's panic never reaches another test's worker.
#[cfg(feature = "failpoints")]
fn exclusive() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

#[cfg(not(feature = "failpoints"))]
fn exclusive() -> impl Sized {}

/// One worker, batches dispatched as soon as a worker is idle (no `max_wait`), so what
/// coalesces is exactly what queued behind the busy worker.
fn config(max_batch: usize, queue_capacity: usize) -> ModelPoolConfig {
    ModelPoolConfig {
        workers: 1,
        max_batch,
        max_wait: Duration::ZERO,
        queue_capacity,
        cache_capacity: 1_000,
        ..ModelPoolConfig::new(ModelName::AllMiniLmL6V2, PathBuf::from("no-model-files"))
    }
}

async fn start_pool(model: &Arc<FakeModel>, config: ModelPoolConfig) -> ActorRef<ModelPoolMsg> {
    let (pool, _) = Actor::spawn(
        None,
        ModelPool {
            load: model.loader(),
        },
        config,
    )
    .await
    .expect("the pool starts");
    pool
}

/// Sends a request without waiting for its answer, so that several can queue in order.
fn submit(
    pool: &ActorRef<ModelPoolMsg>,
    kind: TextKind,
    texts: &[String],
) -> OneshotReceiver<Answer> {
    let (reply, answer) = ractor::concurrency::oneshot();
    let request = EmbedRequest {
        model: ModelName::AllMiniLmL6V2,
        kind,
        texts: texts.to_vec(),
    };
    let message = ModelPoolMsg::Embed(request, TraceContext::default(), reply.into());
    pool.send_message(message).expect("the pool is running");
    answer
}

/// The answer, or `None` when the request's reply port was dropped unanswered (its worker
/// died with it).
async fn answer_of(answer: OneshotReceiver<Answer>) -> Option<Answer> {
    tokio::time::timeout(DEADLINE, answer)
        .await
        .expect("answered before the deadline")
        .ok()
}

async fn stats(pool: &ActorRef<ModelPoolMsg>) -> PoolStats {
    crate::ask(pool, ModelPoolMsg::Stats, DEADLINE, "model pool")
        .await
        .expect("stats")
}

/// Polls `check` until it holds, failing the test at the deadline.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Occupies the pool's only worker: a one-text request whose encoder waits at the gate.
async fn occupy_the_worker(
    pool: &ActorRef<ModelPoolMsg>,
    model: &FakeModel,
) -> OneshotReceiver<Answer> {
    let blocker = submit(pool, TextKind::Query, &["blocker".to_string()]);
    wait_until("the worker is encoding", || async move {
        model.batches().len() == 1
    })
    .await;
    blocker
}

async fn wait_for_queued(pool: &ActorRef<ModelPoolMsg>, texts: usize) {
    wait_until(&format!("{texts} texts are queued"), || async move {
        stats(pool).await.queued_texts == texts as u64
    })
    .await;
}

/// Waits until the pool has taken its worker's last batch back and cached its vectors
/// (the worker answers the callers first). The pool hands a batch only to an idle worker,
/// and a worker is idle again only once the pool has handled its `BatchDone`: a probe
/// that is served proves it. A probe is a passage, so it never touches the query cache.
async fn settle(pool: &ActorRef<ModelPoolMsg>, probe: usize) {
    let texts = vec![format!("{PROBE} {probe}")];
    assert_served(submit(pool, P, &texts), P, &texts).await;
}

fn texts(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix} {index}"))
        .collect()
}

async fn assert_served(answer: OneshotReceiver<Answer>, kind: TextKind, texts: &[String]) {
    let vectors = answer_of(answer).await.expect("answered").expect("served");
    let expected: Vec<Vec<f32>> = texts.iter().map(|text| fake_vector(text, kind)).collect();
    assert_eq!(
        vectors, expected,
        "one vector per text, in order: {texts:?}"
    );
}

struct BatchCase {
    name: &'static str,
    max_batch: usize,
    /// Requests queued behind the busy worker, in order: their kind and number of texts.
    requests: &'static [(TextKind, usize)],
    /// The batches they are encoded in, in order.
    batches: &'static [usize],
}

const Q: TextKind = TextKind::Query;
const P: TextKind = TextKind::Passage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_coalesce_into_batches_no_larger_than_the_cap() {
    let _exclusive = exclusive();
    let cases = [
        BatchCase {
            name: "single texts fill batches up to the cap",
            max_batch: 4,
            requests: &[(Q, 1); 10],
            batches: &[4, 4, 2],
        },
        BatchCase {
            name: "under the cap, everything queued goes in one batch",
            max_batch: 8,
            requests: &[(Q, 1); 5],
            batches: &[5],
        },
        BatchCase {
            name: "requests are never split across batches",
            max_batch: 4,
            requests: &[(Q, 3), (Q, 3), (Q, 1), (Q, 2)],
            batches: &[3, 4, 2],
        },
        BatchCase {
            name: "a request larger than the cap runs alone",
            max_batch: 4,
            requests: &[(Q, 6), (Q, 1)],
            batches: &[6, 1],
        },
        BatchCase {
            name: "queries and passages never share a batch",
            max_batch: 4,
            requests: &[(Q, 1), (P, 1), (P, 1), (Q, 1)],
            batches: &[1, 2, 1],
        },
    ];
    for case in cases {
        check_batching(case).await;
    }
}

async fn check_batching(case: BatchCase) {
    let model = FakeModel::closed();
    let pool = start_pool(&model, config(case.max_batch, 1_000)).await;
    let blocker = occupy_the_worker(&pool, &model).await;
    let mut queued = Vec::new();
    for (index, (kind, count)) in case.requests.iter().enumerate() {
        let texts = texts(&format!("{} request {index}", case.name), *count);
        queued.push((submit(&pool, *kind, &texts), *kind, texts));
    }
    let total = case.requests.iter().map(|(_, count)| count).sum();
    wait_for_queued(&pool, total).await;
    model.open();
    assert_served(blocker, Q, &["blocker".to_string()]).await;
    for (answer, kind, texts) in queued {
        assert_served(answer, kind, &texts).await;
    }
    assert_eq!(model.batches()[1..], *case.batches, "{}", case.name);
    let stats = stats(&pool).await;
    assert_eq!(
        stats.batches as usize,
        case.batches.len() + 1,
        "{}",
        case.name
    );
    assert_eq!(stats.texts_encoded as usize, total + 1, "{}", case.name);
    pool.stop(None);
}

struct OverloadCase {
    name: &'static str,
    queue_capacity: usize,
    /// Requests queued behind the busy worker first, by number of texts.
    queued: &'static [usize],
    /// The number of texts of the request that follows them.
    next: usize,
    refused: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_overloaded_at_once() {
    let _exclusive = exclusive();
    let cases = [
        OverloadCase {
            name: "a request that fills the queue exactly is accepted",
            queue_capacity: 4,
            queued: &[2, 1],
            next: 1,
            refused: false,
        },
        OverloadCase {
            name: "one text over the capacity is refused",
            queue_capacity: 4,
            queued: &[2, 2],
            next: 1,
            refused: true,
        },
        OverloadCase {
            name: "a request that does not fit what is left is refused whole",
            queue_capacity: 4,
            queued: &[3],
            next: 2,
            refused: true,
        },
        OverloadCase {
            name: "a request larger than the whole queue is refused",
            queue_capacity: 4,
            queued: &[],
            next: 5,
            refused: true,
        },
    ];
    for case in cases {
        check_overload(case).await;
    }
}

async fn check_overload(case: OverloadCase) {
    let name = case.name;
    let model = FakeModel::closed();
    let pool = start_pool(&model, config(2, case.queue_capacity)).await;
    let blocker = occupy_the_worker(&pool, &model).await;
    let mut queued = Vec::new();
    for (index, count) in case.queued.iter().enumerate() {
        let texts = texts(&format!("{name} queued {index}"), *count);
        queued.push((submit(&pool, Q, &texts), texts));
    }
    let waiting: usize = case.queued.iter().sum();
    wait_for_queued(&pool, waiting).await;
    let next_texts = texts(&format!("{name} next"), case.next);
    let next = submit(&pool, Q, &next_texts);
    let accepted = if case.refused {
        // Answered while the worker is still busy: the caller never waits for a full queue.
        match answer_of(next).await {
            Some(Err(ActorError::Overloaded(message))) => {
                assert!(message.contains("retry later"), "{name}: {message}")
            }
            other => panic!("{name}: expected an overload refusal, got {other:?}"),
        }
        let stats = stats(&pool).await;
        assert_eq!(stats.rejected, 1, "{name}");
        assert_eq!(
            stats.queued_texts as usize, waiting,
            "{name}: the queue is unchanged"
        );
        None
    } else {
        wait_for_queued(&pool, waiting + case.next).await;
        Some(next)
    };
    model.open();
    assert_served(blocker, Q, &["blocker".to_string()]).await;
    for (answer, texts) in queued {
        assert_served(answer, Q, &texts).await;
    }
    if let Some(next) = accepted {
        assert_served(next, Q, &next_texts).await;
        assert_eq!(stats(&pool).await.rejected, 0, "{name}");
    }
    pool.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_queries_come_from_the_cache_and_passages_never_do() {
    let _exclusive = exclusive();
    let model = FakeModel::closed();
    model.open();
    let pool = start_pool(&model, config(8, 100)).await;
    let strings = |texts: &[&str]| -> Vec<String> { texts.iter().map(|t| t.to_string()).collect() };
    // (kind, texts, the size of the batch it costs, if any)
    let steps: [(TextKind, Vec<String>, Option<usize>); 5] = [
        (Q, strings(&["x", "y"]), Some(2)),
        (Q, strings(&["y", "z"]), Some(1)),
        (Q, strings(&["z", "x"]), None),
        (P, strings(&["x"]), Some(1)),
        (P, strings(&["x"]), Some(1)),
    ];
    let mut expected_batches = Vec::new();
    for (probe, (kind, texts, batch)) in steps.into_iter().enumerate() {
        assert_served(submit(&pool, kind, &texts), kind, &texts).await;
        settle(&pool, probe).await;
        expected_batches.extend(batch);
        assert_eq!(
            model.batches(),
            expected_batches,
            "after {kind:?} {texts:?}"
        );
    }
    let stats = stats(&pool).await;
    assert_eq!(stats.cache_hits, 3, "{stats:?}");
    assert_eq!(
        stats.texts_encoded,
        5 + 5,
        "five texts and five probes: {stats:?}"
    );
    pool.stop(None);
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The worker actor is killed while it encodes.
    Killed,
    /// The worker's handler panics (the `model-worker-handle` fail-point).
    PanicInHandler,
    /// The encoder panics: caught, it fails only its batch.
    PanicInEncoder,
}

struct ReplacementCase {
    name: &'static str,
    ending: Ending,
    /// Loads that fail after the first worker started.
    failing_reloads: usize,
    /// Encoder loads once a later request has been served, failed ones included.
    loads: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_worker_is_replaced_and_later_requests_are_served() {
    let _exclusive = exclusive();
    let mut cases = vec![
        ReplacementCase {
            name: "a killed worker is replaced with a fresh encoder",
            ending: Ending::Killed,
            failing_reloads: 0,
            loads: 2,
        },
        ReplacementCase {
            name: "a replacement whose encoder fails to load is tried again",
            ending: Ending::Killed,
            failing_reloads: 1,
            loads: 3,
        },
        ReplacementCase {
            name: "a panic inside the encoder costs only its batch",
            ending: Ending::PanicInEncoder,
            failing_reloads: 0,
            loads: 1,
        },
    ];
    if cfg!(feature = "failpoints") {
        cases.push(ReplacementCase {
            name: "a worker whose handler panics is replaced",
            ending: Ending::PanicInHandler,
            failing_reloads: 0,
            loads: 2,
        });
    }
    for case in cases {
        check_replacement(case).await;
    }
}

async fn check_replacement(case: ReplacementCase) {
    let name = case.name;
    let model = FakeModel::closed();
    let pool = start_pool(&model, config(4, 100)).await;
    model
        .failing_loads
        .store(case.failing_reloads, Ordering::SeqCst);
    let in_flight_text = match case.ending {
        Ending::PanicInEncoder => format!("{name}: {PANIC}"),
        _ => format!("{name}: in flight"),
    };
    let in_flight = match case.ending {
        Ending::Killed => {
            let in_flight = submit(&pool, Q, std::slice::from_ref(&in_flight_text));
            let fake: &FakeModel = &model;
            wait_until("the worker is encoding", || async move {
                fake.batches().len() == 1
            })
            .await;
            let workers = pool.get_children();
            assert_eq!(workers.len(), 1, "{name}");
            workers[0].kill();
            in_flight
        }
        Ending::PanicInHandler => {
            #[cfg(feature = "failpoints")]
            fail::cfg("model-worker-handle", "1*panic").unwrap();
            model.open();
            submit(&pool, Q, std::slice::from_ref(&in_flight_text))
        }
        Ending::PanicInEncoder => {
            model.open();
            submit(&pool, Q, std::slice::from_ref(&in_flight_text))
        }
    };
    match (case.ending, answer_of(in_flight).await) {
        (Ending::PanicInEncoder, Some(Err(ActorError::Unavailable(message)))) => {
            assert!(message.contains("panicked"), "{name}: {message}")
        }
        (Ending::Killed | Ending::PanicInHandler, None) => {}
        (_, other) => panic!("{name}: the in-flight request got {other:?}"),
    }
    model.open();
    // Queued while the worker is replaced (and, for a failed load, retried) and served by
    // the new worker.
    let later = vec![format!("{name}: later")];
    assert_served(submit(&pool, Q, &later), Q, &later).await;
    assert_eq!(model.loads(), case.loads, "{name}");
    assert_eq!(stats(&pool).await.workers, 1, "{name}");
    assert_eq!(
        pool.get_children().len(),
        1,
        "{name}: one worker, no leftovers"
    );
    #[cfg(feature = "failpoints")]
    fail::remove("model-worker-handle");
    pool.stop(None);
}
