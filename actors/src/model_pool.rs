//! The model-worker pool: one pool actor per model that batches, queues and caches, and a
//! set of worker actors that each own an encoder and run one batch at a time.
//!
//! * **Dynamic batching:** requests wait until `max_batch` texts are queued or the oldest has
//!   waited `max_wait`, whichever comes first, then go to an idle worker as one batch.
//! * **Bounded queue:** past `queue_capacity` waiting texts a request is refused at once with
//!   [`ActorError::Overloaded`]; memory never grows with load.
//! * **Cache:** an LRU of query vectors keyed by (kind, a 128-bit hash of the text); a pool
//!   serves one model, so the key is in effect (model, kind, text). The text itself is not
//!   kept: a shopper's query stays in no cache after their erasure. Passages are not
//!   cached.
//! * **Supervision:** the pool supervises its workers. A panic while encoding costs only
//!   that batch (the worker catches it and keeps its encoder); a worker that dies anyway is
//!   replaced by a new one that loads the encoder again, while requests wait in the queue.
//! * **One thread per encoder:** each worker runs its encoder on an OS thread of its own,
//!   never on the async workers and never on a different thread per batch: libtorch keeps
//!   per-thread scratch memory and an OpenMP team per calling thread, and a batch sent to
//!   whichever `spawn_blocking` thread was free ran about 4 ms slower (docs/benchmarks.md).
//!
//! Why not `ractor::factory`: a factory worker takes one job at a time and its queue is
//! bounded in jobs, so batches would have to be sealed in front of it and would stop
//! growing with the backlog; and a replacement worker that fails to load stops the whole
//! factory instead of being retried. ARCHITECTURE.md has the details.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inkling_models::encoder::{self, EncoderError, ModelName, Precision, TextEncoder, TextKind};
use inkling_ops::trace::TraceContext;
use lru::LruCache;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::{RactorClusterMessage, RactorMessage};
use serde::{Deserialize, Serialize};

use crate::node_supervisor::ended_child;
use crate::{ActorError, fail_point};

/// A text as the cache knows it: a 128-bit hash (collisions are negligible at any cache
/// size), never the text.
fn cache_key(text: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

#[cfg(test)]
mod tests;

/// Wait before trying again to start a worker whose encoder failed to load.
const WORKER_RETRY: Duration = Duration::from_secs(1);

/// How a worker gets its encoder. Each worker calls it on its own start (and again when it
/// is replaced), so every worker owns a fresh encoder: they are `Send` but not `Sync`.
pub(crate) type LoadEncoder = Arc<
    dyn Fn(ModelName, &Path, Precision) -> Result<Box<dyn TextEncoder>, EncoderError> + Send + Sync,
>;

/// The encoder from the model files, on this node's device.
fn encoder_from_files() -> LoadEncoder {
    Arc::new(|model, models_dir, precision| {
        encoder::load(model, models_dir, encoder::default_device(), precision)
    })
}

#[derive(Debug, Clone)]
pub struct ModelPoolConfig {
    pub model: ModelName,
    /// Folder holding the model files (`.deps/models` after set-up).
    pub models_dir: PathBuf,
    pub workers: usize,
    /// The number format the encoders compute in.
    pub precision: Precision,
    pub max_batch: usize,
    /// How long a request waits for others to share its batch while some workers are busy.
    /// A pool whose workers are all idle sends it at once: waiting would only add latency,
    /// and requests that arrive while it runs form the next batch.
    pub max_wait: Duration,
    pub queue_capacity: usize,
    pub cache_capacity: usize,
}

impl ModelPoolConfig {
    pub fn new(model: ModelName, models_dir: PathBuf) -> Self {
        Self {
            model,
            models_dir,
            workers: 1,
            precision: Precision::Auto,
            max_batch: 32,
            max_wait: Duration::from_micros(2_000),
            queue_capacity: 1_024,
            cache_capacity: 50_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub model: ModelName,
    pub kind: TextKind,
    pub texts: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Where the pool's encoders run: `cpu` or `cuda`.
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub workers: u64,
    pub queued_texts: u64,
    pub batches: u64,
    pub texts_encoded: u64,
    pub cache_hits: u64,
    pub rejected: u64,
}

/// Where a pool runs its encoders; pools join a process group per model and device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    /// The device this node's encoders load on.
    pub fn local() -> Self {
        if encoder::default_device().is_cuda() {
            Device::Cuda
        } else {
            Device::Cpu
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

/// The process group of every pool serving `model` on `device`, on any node.
pub fn pool_group(model: ModelName, device: Device) -> String {
    format!("inkling.models.{}.{}", model.as_str(), device.as_str())
}

/// Messages that may come from another node: only `Embed` and `Stats` are sent by others.
#[derive(RactorClusterMessage)]
pub enum ModelPoolMsg {
    /// Embeds texts; answers with one unit vector per text, in order.
    #[rpc]
    Embed(
        EmbedRequest,
        TraceContext,
        RpcReplyPort<Result<Vec<Vec<f32>>, ActorError>>,
    ),
    #[rpc]
    Stats(RpcReplyPort<PoolStats>),
    /// Timer tick: the oldest queued request may have waited long enough.
    FlushDue,
    /// A worker finished a batch: it is idle again, and its vectors can be cached.
    BatchDone(u64, Vec<(TextKind, String, Vec<f32>)>),
    /// Tries again to start the worker with this index.
    RestartWorker(u64),
}

/// One request waiting in the queue, with the vectors the cache already had.
pub struct Pending {
    kind: TextKind,
    texts: Vec<String>,
    vectors: Vec<Option<Vec<f32>>>,
    reply: RpcReplyPort<Result<Vec<Vec<f32>>, ActorError>>,
    queued_at: Instant,
    /// The request's stage in its trace, open from arrival until answered.
    _span: tracing::Span,
}

impl Pending {
    fn missing(&self) -> usize {
        self.vectors
            .iter()
            .filter(|vector| vector.is_none())
            .count()
    }
}

#[derive(RactorMessage)]
pub enum ModelWorkerMsg {
    /// Encodes the missing texts of every request (all of one kind) and answers each.
    Run(Vec<Pending>),
}

/// The pool actor. `ModelPool::default()` loads each worker's encoder from the model files
/// on this node's device; the unit tests give it fake encoders instead.
#[derive(Clone)]
pub struct ModelPool {
    load: LoadEncoder,
}

impl Default for ModelPool {
    fn default() -> Self {
        Self {
            load: encoder_from_files(),
        }
    }
}

pub struct ModelPoolState {
    config: ModelPoolConfig,
    /// `None` while a worker is being replaced.
    workers: Vec<Option<ActorRef<ModelWorkerMsg>>>,
    worker_of: HashMap<ActorId, usize>,
    idle: Vec<usize>,
    queue: VecDeque<Pending>,
    queued_texts: usize,
    cache: LruCache<(TextKind, u128), Vec<f32>>,
    flush_scheduled: bool,
    stats: PoolStats,
    /// Where the workers' encoders run: the label of the pool's metrics.
    device: Device,
    load: LoadEncoder,
}

impl Actor for ModelPool {
    type Msg = ModelPoolMsg;
    type State = ModelPoolState;
    type Arguments = ModelPoolConfig;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        config: ModelPoolConfig,
    ) -> Result<Self::State, ActorProcessingErr> {
        ModelPoolState::start(myself, config, self.load.clone()).await
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.handle(&myself, message).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.worker_ended(&myself, event).await;
        Ok(())
    }
}

impl ModelPoolState {
    /// Starts every worker (each loads its encoder with `load`) and joins the pool's
    /// process group.
    async fn start(
        myself: ActorRef<ModelPoolMsg>,
        config: ModelPoolConfig,
        load: LoadEncoder,
    ) -> Result<Self, ActorProcessingErr> {
        let count = config.workers.max(1);
        let cache_capacity = NonZeroUsize::new(config.cache_capacity.max(1)).expect("non-zero");
        let mut state = ModelPoolState {
            idle: Vec::new(),
            workers: vec![None; count],
            worker_of: HashMap::new(),
            queue: VecDeque::new(),
            queued_texts: 0,
            cache: LruCache::new(cache_capacity),
            flush_scheduled: false,
            stats: PoolStats::default(),
            device: Device::local(),
            config,
            load,
        };
        state.publish_queue_depth();
        // Shown at zero from the start, so a dashboard has a line before the first batch.
        let device = [state.device.as_str()];
        inkling_ops::metrics::MODEL_REJECTED.with_label_values(&device);
        inkling_ops::metrics::MODEL_BATCH_TEXTS.with_label_values(&device);
        inkling_ops::metrics::MODEL_INFERENCE_SECONDS.with_label_values(&device);
        for index in 0..count {
            state.start_worker(&myself, index).await?;
        }
        // Other nodes find the pool here; a restarted pool joins again, and a stopped one
        // leaves by itself.
        let group = pool_group(state.config.model, Device::local());
        ractor::pg::join(group, vec![myself.get_cell()]);
        Ok(state)
    }

    async fn handle(&mut self, myself: &ActorRef<ModelPoolMsg>, message: ModelPoolMsg) {
        fail_point!("model-pool-handle");
        match message {
            ModelPoolMsg::Embed(request, trace, reply) => {
                let span = trace.span(format_args!("model_pool.embed.{}", self.device.as_str()));
                self.enqueue(request, span, reply)
            }
            ModelPoolMsg::Stats(reply) => {
                let _ = reply.send(self.current_stats());
            }
            ModelPoolMsg::FlushDue => self.flush_scheduled = false,
            ModelPoolMsg::BatchDone(worker, vectors) => {
                // Passages are embedded once per catalog write: caching them would only
                // evict the queries that repeat.
                for (kind, text, vector) in vectors {
                    if kind == TextKind::Query {
                        self.cache.put((kind, cache_key(&text)), vector);
                    }
                }
                self.idle.push(worker as usize);
            }
            ModelPoolMsg::RestartWorker(index) => self.replace_worker(myself, index as usize).await,
        }
        self.dispatch(myself);
    }

    fn current_stats(&self) -> PoolStats {
        PoolStats {
            device: self.device.as_str().to_string(),
            workers: self.workers.len() as u64,
            queued_texts: self.queued_texts as u64,
            ..self.stats.clone()
        }
    }

    /// A worker that died is replaced by a new one with a fresh encoder.
    async fn worker_ended(&mut self, myself: &ActorRef<ModelPoolMsg>, event: SupervisionEvent) {
        let Some((worker, failure)) = ended_child(event) else {
            return;
        };
        let failure = failure.unwrap_or_else(|| "stopped".into());
        let Some(index) = self.worker_of.remove(&worker) else {
            return;
        };
        // Its batch's callers already got an error (their reply ports died with it).
        tracing::warn!(worker = index, failure, "model worker died; replacing it");
        self.workers[index] = None;
        self.idle.retain(|idle| *idle != index);
        inkling_ops::metrics::ACTOR_RESTARTS
            .with_label_values(&["model_worker"])
            .inc();
        self.replace_worker(myself, index).await;
        self.dispatch(myself);
    }

    /// Starts worker `index`, which loads its own encoder, and marks it idle.
    async fn start_worker(
        &mut self,
        myself: &ActorRef<ModelPoolMsg>,
        index: usize,
    ) -> Result<(), ActorProcessingErr> {
        let args = WorkerArgs {
            index: index as u64,
            model: self.config.model,
            models_dir: self.config.models_dir.clone(),
            precision: self.config.precision,
            load: self.load.clone(),
            pool: myself.clone(),
        };
        let (worker, _) = Actor::spawn_linked(None, ModelWorker, args, myself.get_cell()).await?;
        self.worker_of.insert(worker.get_id(), index);
        self.workers[index] = Some(worker);
        self.idle.push(index);
        Ok(())
    }

    /// Replaces a dead worker; requests keep queueing meanwhile, and a failed start is
    /// tried again later rather than failing the pool.
    async fn replace_worker(&mut self, myself: &ActorRef<ModelPoolMsg>, index: usize) {
        if self.workers.get(index).is_none_or(Option::is_some) {
            return;
        }
        if let Err(error) = self.start_worker(myself, index).await {
            tracing::error!(%error, worker = index, "could not restart model worker; retrying");
            myself.send_after(WORKER_RETRY, move || {
                ModelPoolMsg::RestartWorker(index as u64)
            });
        }
    }

    fn enqueue(
        &mut self,
        request: EmbedRequest,
        span: tracing::Span,
        reply: RpcReplyPort<Result<Vec<Vec<f32>>, ActorError>>,
    ) {
        if request.model != self.config.model {
            let message = format!(
                "this pool serves {}, not {}",
                self.config.model.as_str(),
                request.model.as_str()
            );
            let _ = reply.send(Err(ActorError::Unavailable(message)));
            return;
        }
        let vectors: Vec<Option<Vec<f32>>> = request
            .texts
            .iter()
            .map(|text| self.cache.get(&(request.kind, cache_key(text))).cloned())
            .collect();
        let pending = Pending {
            kind: request.kind,
            texts: request.texts,
            vectors,
            reply,
            queued_at: Instant::now(),
            _span: span,
        };
        let missing = pending.missing();
        let hits = pending.texts.len() - missing;
        self.stats.cache_hits += hits as u64;
        if request.kind == TextKind::Query {
            let lookups = &inkling_ops::metrics::EMBEDDING_CACHE_LOOKUPS;
            lookups.with_label_values(&["hit"]).inc_by(hits as u64);
            lookups.with_label_values(&["miss"]).inc_by(missing as u64);
        }
        if missing == 0 {
            let vectors = pending.vectors.into_iter().flatten().collect();
            let _ = pending.reply.send(Ok(vectors));
            return;
        }
        if self.queued_texts + missing > self.config.queue_capacity {
            self.stats.rejected += 1;
            inkling_ops::metrics::MODEL_REJECTED
                .with_label_values(&[self.device.as_str()])
                .inc();
            let message = format!(
                "{} has {} texts queued (capacity {}); retry later",
                self.config.model.as_str(),
                self.queued_texts,
                self.config.queue_capacity
            );
            let _ = pending.reply.send(Err(ActorError::Overloaded(message)));
            return;
        }
        self.queued_texts += missing;
        self.queue.push_back(pending);
        self.publish_queue_depth();
    }

    fn publish_queue_depth(&self) {
        inkling_ops::metrics::MODEL_QUEUE_TEXTS
            .with_label_values(&[self.device.as_str()])
            .set(self.queued_texts as i64);
    }

    /// Hands batches to idle workers while a batch is full, its oldest request is due, or
    /// every worker is idle.
    fn dispatch(&mut self, myself: &ActorRef<ModelPoolMsg>) {
        while let Some(oldest) = self.queue.front() {
            let due = oldest.queued_at + self.config.max_wait;
            let all_idle = self.idle.len() == self.workers.len();
            let ready =
                all_idle || self.queued_texts >= self.config.max_batch || Instant::now() >= due;
            if !ready {
                self.schedule_flush(myself, due);
                return;
            }
            let Some(worker) = self.idle.pop() else {
                return;
            };
            let Some(actor) = self.workers[worker].clone() else {
                continue;
            };
            let batch = self.take_batch();
            self.stats.batches += 1;
            self.stats.texts_encoded += batch.iter().map(Pending::missing).sum::<usize>() as u64;
            if let Err(error) = actor.send_message(ModelWorkerMsg::Run(batch)) {
                tracing::error!(%error, worker, "model worker is gone");
            }
        }
    }

    /// Up to `max_batch` missing texts, whole requests only, all of the oldest request's kind.
    fn take_batch(&mut self) -> Vec<Pending> {
        let mut batch: Vec<Pending> = Vec::new();
        let mut texts = 0;
        while let Some(next) = self.queue.front() {
            let fits = batch.is_empty() || texts + next.missing() <= self.config.max_batch;
            if !fits || batch.first().is_some_and(|first| first.kind != next.kind) {
                break;
            }
            let next = self.queue.pop_front().expect("front exists");
            texts += next.missing();
            batch.push(next);
        }
        self.queued_texts -= texts;
        self.publish_queue_depth();
        batch
    }

    fn schedule_flush(&mut self, myself: &ActorRef<ModelPoolMsg>, due: Instant) {
        if self.flush_scheduled {
            return;
        }
        self.flush_scheduled = true;
        myself.send_after(due.saturating_duration_since(Instant::now()), || {
            ModelPoolMsg::FlushDue
        });
    }
}

struct ModelWorker;

struct WorkerArgs {
    index: u64,
    model: ModelName,
    models_dir: PathBuf,
    precision: Precision,
    load: LoadEncoder,
    pool: ActorRef<ModelPoolMsg>,
}

/// A batch for the encoder thread, and where its vectors (or why there are none) go.
struct EncodeJob {
    texts: Vec<String>,
    kind: TextKind,
    done: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
}

struct WorkerState {
    index: u64,
    /// The encoder thread's queue; dropping it ends the thread, which drops the encoder.
    jobs: std::sync::mpsc::Sender<EncodeJob>,
    pool: ActorRef<ModelPoolMsg>,
    /// Where the encoder runs, for the metrics' label.
    device: Device,
}

/// Starts the thread that loads the encoder and then encodes every batch the worker sends,
/// one at a time; answers once the encoder has loaded, or why it could not.
async fn start_encoder_thread(
    args: &WorkerArgs,
) -> Result<std::sync::mpsc::Sender<EncodeJob>, ActorProcessingErr> {
    let (jobs, queue) = std::sync::mpsc::channel::<EncodeJob>();
    let (loaded, load_outcome) = tokio::sync::oneshot::channel();
    let (model, dir, precision, load) = (
        args.model,
        args.models_dir.clone(),
        args.precision,
        args.load.clone(),
    );
    std::thread::Builder::new()
        .name(format!("inkling-encoder-{}", args.index))
        .spawn(move || {
            let encoder = match load(model, &dir, precision) {
                Ok(encoder) => encoder,
                Err(error) => {
                    let _ = loaded.send(Err(error));
                    return;
                }
            };
            let _ = loaded.send(Ok(()));
            for job in queue {
                let outcome = encode_catching_panics(encoder.as_ref(), &job.texts, job.kind);
                let _ = job.done.send(outcome);
            }
        })?;
    load_outcome.await??;
    Ok(jobs)
}

/// A panic inside tch fails this batch only: inference does not change the weights, so the
/// encoder is still sound and the thread keeps it.
fn encode_catching_panics(
    encoder: &dyn TextEncoder,
    texts: &[String],
    kind: TextKind,
) -> Result<Vec<Vec<f32>>, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        encoder
            .encode(texts, kind)
            .map_err(|error| error.to_string())
    }))
    .unwrap_or_else(|panic| Err(panic_message(panic.as_ref())))
}

impl Actor for ModelWorker {
    type Msg = ModelWorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: WorkerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let jobs = start_encoder_thread(&args).await?;
        Ok(WorkerState {
            index: args.index,
            jobs,
            pool: args.pool,
            device: Device::local(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        ModelWorkerMsg::Run(batch): Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        fail_point!("model-worker-handle");
        let kind = batch[0].kind;
        let texts: Vec<String> = batch
            .iter()
            .flat_map(|pending| {
                pending
                    .texts
                    .iter()
                    .zip(&pending.vectors)
                    .filter(|(_, vector)| vector.is_none())
                    .map(|(text, _)| text.clone())
            })
            .collect();
        let device = [state.device.as_str()];
        inkling_ops::metrics::MODEL_BATCH_TEXTS
            .with_label_values(&device)
            .observe(texts.len() as f64);
        let started = Instant::now();
        let (done, outcome) = tokio::sync::oneshot::channel();
        let job = EncodeJob {
            texts: texts.clone(),
            kind,
            done,
        };
        state
            .jobs
            .send(job)
            .map_err(|_| "the encoder thread has ended")?;
        let outcome = outcome.await.map_err(|_| "the encoder thread has ended")?;
        inkling_ops::metrics::MODEL_INFERENCE_SECONDS
            .with_label_values(&device)
            .observe(started.elapsed().as_secs_f64());
        let vectors = match outcome {
            Ok(vectors) => vectors,
            Err(error) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(ActorError::Unavailable(format!(
                        "encoder failed: {error}"
                    ))));
                }
                let _ = state
                    .pool
                    .send_message(ModelPoolMsg::BatchDone(state.index, Vec::new()));
                return Ok(());
            }
        };
        let fresh: Vec<(TextKind, String, Vec<f32>)> = texts
            .into_iter()
            .zip(vectors)
            .map(|(text, vector)| (kind, text, vector))
            .collect();
        // The pool caches the vectors before any caller hears back, so a caller that repeats
        // its query as soon as it is answered finds it in the cache.
        let _ = state
            .pool
            .send_message(ModelPoolMsg::BatchDone(state.index, fresh.clone()));
        answer(batch, &fresh);
        Ok(())
    }
}

/// Answers each request with its cached and fresh vectors, in order.
fn answer(batch: Vec<Pending>, fresh: &[(TextKind, String, Vec<f32>)]) {
    let mut next = fresh.iter().map(|(_, _, vector)| vector);
    for pending in batch {
        let filled: Vec<Vec<f32>> = pending
            .vectors
            .into_iter()
            .map(|cached| cached.or_else(|| next.next().cloned()).unwrap_or_default())
            .collect();
        let _ = pending.reply.send(Ok(filled));
    }
}

/// The text of a caught panic, for the error its batch's callers receive.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("panicked: {text}")
}
