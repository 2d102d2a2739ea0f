//! Benchmarks that drive a real node over HTTP on loopback (or, for the index at scale, the
//! real shard indexes directly) and print a table.

mod cluster;
mod disk;
mod index;
mod load;
mod updates;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use inkling_actors::model_pool::{EmbedRequest, ModelPool, ModelPoolConfig, ModelPoolMsg};
use inkling_actors::{ActorConfig, ask};
use inkling_api::{Client, ClientConfig, EventBatch, EventBody, EventType};
use inkling_models::encoder::{self, ModelName, Precision, TextEncoder, TextKind};

use inkling_node::{CatalogSource, LocalNode};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Events/s through `POST /v1/events`, each request answered only once durable.
    Events {
        /// Events sent per batch size.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Events per request; one table row each.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        batch_sizes: Vec<usize>,
        /// Distinct shoppers the events are spread over.
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Base URLs of running nodes serving the demo catalog (a cluster's gateways),
        /// comma separated; clients are spread over them. A fresh local node when absent.
        #[arg(long, value_delimiter = ',')]
        target: Vec<String>,
    },
    /// Encoder texts/s by batch size on CPU, query latency through the model pool, and
    /// Python sentence-transformers on the same texts for a side-by-side ratio.
    Encoders {
        /// Product titles from the demo catalog to encode per batch size.
        #[arg(long, default_value_t = 512)]
        texts: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
        batch_sizes: Vec<usize>,
        #[arg(long, env = "INKLING_MODELS_DIR", default_value = ".deps/models")]
        models_dir: PathBuf,
        /// A Python with sentence-transformers (scripts/reference-venv.sh prints one); the
        /// Python column is left empty without it.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Sequential single-query requests through the pool for the latency row.
        #[arg(long, default_value_t = 200)]
        pool_queries: usize,
    },
    /// The shard index at scale: build time, memory, disk, query latency by mode and HNSW
    /// recall, on products recombined from real titles.
    Index {
        /// Catalog sizes, one table row each.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        products: Vec<usize>,
        /// Real titles to recombine, as `id<TAB>text` lines.
        #[arg(long, default_value = "../shared/data/homedepot/corpus.tsv")]
        titles: PathBuf,
        /// Real queries, as `id<TAB>text` lines.
        #[arg(long, default_value = "../shared/data/homedepot/queries.tsv")]
        queries: PathBuf,
        #[arg(long, default_value_t = 4)]
        shards: usize,
        /// Real titles embedded with the encoder and recombined.
        #[arg(long, default_value_t = 4_000)]
        base_titles: usize,
        #[arg(long, default_value_t = 500)]
        query_count: usize,
        #[arg(long, env = "INKLING_MODELS_DIR", default_value = ".deps/models")]
        models_dir: PathBuf,
    },
    /// Repeated price updates of the same products: memory, slots, dead HNSW points and
    /// recall@10 as the shard compacts and rebuilds its graph, beside a fresh build.
    Updates(updates::UpdatesArgs),
    /// Time from the loss of a partition leader (kill -9, SIGSTOP) to the first answer for
    /// one of its users, on a local cluster of real processes.
    Failover(cluster::FailoverArgs),
    /// Recommendation latency through the leader's gateway and through another node's,
    /// on a local cluster of real processes.
    Hop(cluster::HopArgs),
    /// Open-loop load at a fixed rate (free of coordinated omission): real sessions as
    /// events and recommendations, real queries as searches; latency percentiles by kind.
    Load(load::LoadArgs),
    /// A node's data folder, weighed each minute under a steady open-loop load, and at the
    /// end against the live data it holds.
    Disk(disk::DiskArgs),
    /// On a CUDA machine: GPU-versus-CPU parity of both encoders (fails below --min-cosine)
    /// and GPU throughput by batch size. Used by scripts/gpu-check.sh.
    Gpu {
        #[arg(long, env = "INKLING_MODELS_DIR", default_value = ".deps/models")]
        models_dir: PathBuf,
        #[arg(long, default_value_t = 0.999)]
        min_cosine: f32,
        #[arg(long, default_value_t = 2048)]
        texts: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64,256")]
        batch_sizes: Vec<usize>,
    },
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Index {
            products,
            titles,
            queries,
            shards,
            base_titles,
            query_count,
            models_dir,
        } => {
            if products.is_empty() || products.contains(&0) || shards == 0 {
                bail!("--products and --shards must be positive");
            }
            let options = index::IndexBench {
                sizes: products,
                titles,
                queries,
                shards,
                models_dir,
                base_titles: base_titles.max(2),
                query_count: query_count.max(1),
            };
            index::bench_index(options).await
        }
        BenchCommand::Events {
            events,
            concurrency,
            batch_sizes,
            users,
            target,
        } => bench_events(events, concurrency, &batch_sizes, users, target).await,
        BenchCommand::Encoders {
            texts,
            batch_sizes,
            models_dir,
            python,
            pool_queries,
        } => {
            let options = EncoderBench {
                texts,
                batch_sizes,
                models_dir,
                python,
                pool_queries,
            };
            bench_encoders(options).await
        }
        BenchCommand::Gpu {
            models_dir,
            min_cosine,
            texts,
            batch_sizes,
        } => bench_gpu(&models_dir, min_cosine, texts, &batch_sizes),
        BenchCommand::Updates(args) => updates::run(args),
        // They block (processes, a blocking HTTP client): off the async workers.
        BenchCommand::Failover(args) => tokio::task::spawn_blocking(|| cluster::run(args)).await?,
        BenchCommand::Hop(args) => tokio::task::spawn_blocking(|| cluster::run_hop(args)).await?,
        BenchCommand::Load(args) => load::run(args).await,
        BenchCommand::Disk(args) => disk::run(args).await,
    }
}

fn bench_gpu(
    models_dir: &Path,
    min_cosine: f32,
    count: usize,
    batch_sizes: &[usize],
) -> Result<()> {
    if !tch::Cuda::is_available() {
        bail!("tch sees no CUDA device: build against a CUDA libtorch (scripts/gpu-check.sh does)");
    }
    let gpu = tch::Device::Cuda(0);
    let texts = bench_texts(count);
    let sample = &texts[..texts.len().min(256)];
    println!("CUDA devices: {}\n", tch::Cuda::device_count());
    println!("| model | texts | min cosine GPU vs CPU | mean cosine |\n|---|---:|---:|---:|");
    let mut failures = Vec::new();
    for model in [ModelName::AllMiniLmL6V2, ModelName::MultilingualE5Small] {
        let cpu = encoder::load(model, models_dir, tch::Device::Cpu, Precision::F32)?
            .encode(sample, TextKind::Query)?;
        let on_gpu = encoder::load(model, models_dir, gpu, Precision::Auto)?
            .encode(sample, TextKind::Query)?;
        let similarities: Vec<f32> = cpu
            .iter()
            .zip(&on_gpu)
            .map(|(a, b)| encoder::cosine(a, b))
            .collect();
        let worst = similarities.iter().copied().fold(1.0f32, f32::min);
        let mean = similarities.iter().sum::<f32>() / similarities.len() as f32;
        println!(
            "| {} | {} | {worst:.5} | {mean:.5} |",
            model.as_str(),
            sample.len()
        );
        if worst < min_cosine {
            failures.push(format!("{}: {worst:.5} < {min_cosine}", model.as_str()));
        }
    }
    println!("\n| model | batch | GPU texts/s |\n|---|---:|---:|");
    for model in [ModelName::AllMiniLmL6V2, ModelName::MultilingualE5Small] {
        let loaded = encoder::load(model, models_dir, gpu, Precision::Auto)?;
        loaded.encode(sample, TextKind::Passage)?;
        for &batch in batch_sizes {
            let rate = throughput(loaded.as_ref(), &texts, batch.max(1))?;
            println!("| {} | {batch} | {rate:.0} |", model.as_str());
        }
    }
    if !failures.is_empty() {
        bail!("GPU/CPU parity below {min_cosine}: {}", failures.join("; "));
    }
    Ok(())
}

struct EncoderBench {
    texts: usize,
    batch_sizes: Vec<usize>,
    models_dir: PathBuf,
    python: Option<PathBuf>,
    pool_queries: usize,
}

/// Real product titles, shortest first, as sentence-transformers orders a batch run.
fn bench_texts(count: usize) -> Vec<String> {
    let catalog = inkling_node::demo::catalog();
    let step = (catalog.len() / count.max(1)).max(1);
    let mut texts: Vec<String> = catalog
        .into_iter()
        .step_by(step)
        .take(count)
        .map(|product| product.title)
        .collect();
    texts.sort_by_key(|text| text.chars().count());
    texts
}

/// Texts per second encoding `texts` in batches of `batch`: the best of three runs, so a
/// noisy neighbour on a small machine does not decide the figure.
fn throughput(encoder: &dyn TextEncoder, texts: &[String], batch: usize) -> Result<f64> {
    let mut best = 0.0f64;
    for _ in 0..3 {
        let started = Instant::now();
        for chunk in texts.chunks(batch) {
            encoder.encode(chunk, TextKind::Passage)?;
        }
        best = best.max(texts.len() as f64 / started.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Runs the Python side; returns texts/s by batch size, or why it could not.
fn python_throughput(
    python: &Path,
    minilm_dir: &Path,
    texts: &[String],
    batch_sizes: &[usize],
) -> Result<HashMap<String, f64>> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), texts.join("\n"))?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/reference/bench_minilm.py");
    let sizes: Vec<String> = batch_sizes.iter().map(usize::to_string).collect();
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(minilm_dir)
        .arg(file.path())
        .arg(sizes.join(","))
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "python benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn bench_encoders(options: EncoderBench) -> Result<()> {
    if options.batch_sizes.contains(&0) || options.texts == 0 {
        bail!("--texts and every batch size must be at least 1");
    }
    let texts = bench_texts(options.texts);
    let device = encoder::default_device();
    println!(
        "Encoders on {device:?}, {} threads, {} product titles from the demo catalog\n",
        tch::get_num_threads(),
        texts.len()
    );
    println!(
        "| model | computes in | batch | Inkling texts/s | Python texts/s | Inkling / Python |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    // Each precision that computes in a different format on this device.
    let mut precisions = vec![Precision::F32];
    if Precision::Auto.kind_on(device) != Precision::F32.kind_on(device) {
        precisions.push(Precision::Auto);
    }
    // Python has the MiniLM files only (there is no Python reference for the 4-bit e5 file).
    let python_minilm = match &options.python {
        Some(python) => Some(python_throughput(
            python,
            &options.models_dir.join("all-minilm-l6-v2"),
            &texts,
            &options.batch_sizes,
        )?),
        None => None,
    };
    let models = [ModelName::AllMiniLmL6V2, ModelName::MultilingualE5Small];
    for (model, precision) in models
        .into_iter()
        .flat_map(|model| precisions.iter().map(move |&precision| (model, precision)))
    {
        let loaded = encoder::load(model, &options.models_dir, device, precision)?;
        let format = format!("{:?}", precision.kind_on(device)).to_lowercase();
        loaded.encode(&texts[..texts.len().min(32)], TextKind::Passage)?;
        let python = python_minilm
            .as_ref()
            .filter(|_| model == ModelName::AllMiniLmL6V2);
        for &batch in &options.batch_sizes {
            let ours = throughput(loaded.as_ref(), &texts, batch)?;
            let theirs = python.and_then(|figures| figures.get(&batch.to_string()).copied());
            let (theirs_text, ratio) = match theirs {
                Some(theirs) => (format!("{theirs:.0}"), format!("{:.2}", ours / theirs)),
                None => ("—".to_string(), "—".to_string()),
            };
            println!(
                "| {} | {format} | {batch} | {ours:.0} | {theirs_text} | {ratio} |",
                model.as_str()
            );
        }
    }
    pool_latency(&options).await
}

/// One query at a time through the pool actor, each a cache miss, as a session sends them.
/// Queries embedded before the pool row is measured: they warm the allocator and the code
/// paths.
const POOL_WARMUP_QUERIES: usize = 10;

/// Short shopper queries, each a different text, so every one is a cache miss.
fn pool_queries(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("有没有{}元以内的手机？ query {index}", 1000 + index))
        .collect()
}

/// One query at a time, on the calling thread and then through the model-pool actor: the
/// difference is what the pool's batching window, its hops and its worker thread cost.
async fn pool_latency(options: &EncoderBench) -> Result<()> {
    let queries = pool_queries(options.pool_queries + POOL_WARMUP_QUERIES);
    let config = ModelPoolConfig::new(ModelName::MultilingualE5Small, options.models_dir.clone());
    let direct = encoder::load(
        config.model,
        &config.models_dir,
        encoder::default_device(),
        config.precision,
    )?;
    let mut on_this_thread = Vec::with_capacity(queries.len());
    for query in &queries {
        let started = Instant::now();
        direct.encode(std::slice::from_ref(query), TextKind::Query)?;
        on_this_thread.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(direct);
    let (max_batch, max_wait) = (config.max_batch, config.max_wait);
    let (pool, _) = ractor::Actor::spawn(None, ModelPool::default(), config).await?;
    let mut through_pool = Vec::with_capacity(queries.len());
    for query in &queries {
        let request = EmbedRequest {
            model: ModelName::MultilingualE5Small,
            kind: TextKind::Query,
            texts: vec![query.clone()],
        };
        let started = Instant::now();
        ask(
            &pool,
            |reply| ModelPoolMsg::Embed(request, Default::default(), reply),
            Duration::from_secs(30),
            "model pool",
        )
        .await??;
        through_pool.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    pool.stop(None);
    println!(
        "\nOne query at a time (multilingual-e5-small), {} cache misses after {POOL_WARMUP_QUERIES} unmeasured:\n",
        options.pool_queries
    );
    println!("| path | p50 ms | p99 ms |\n|---|---:|---:|");
    for (path, mut latencies) in [
        (
            "the encoder, on the calling thread".to_string(),
            on_this_thread,
        ),
        (
            format!("the model pool (max batch {max_batch}, max wait {max_wait:?})"),
            through_pool,
        ),
    ] {
        latencies.drain(..POOL_WARMUP_QUERIES.min(latencies.len()));
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {path} | {:.2} | {:.2} |",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );
    }
    Ok(())
}

struct Row {
    batch: usize,
    requests: usize,
    failures: usize,
    seconds: f64,
    syncs: u64,
    latencies_ms: Vec<f64>,
}

async fn bench_events(
    events: usize,
    concurrency: usize,
    batch_sizes: &[usize],
    users: usize,
    targets: Vec<String>,
) -> Result<()> {
    if events == 0 || concurrency == 0 || users == 0 || batch_sizes.contains(&0) {
        bail!("--events, --concurrency, --users and every batch size must be at least 1");
    }
    let node = match targets.is_empty() {
        true => Some(LocalNode::start(CatalogSource::Demo, ActorConfig::default()).await?),
        false => None,
    };
    let bases: Arc<Vec<String>> = Arc::new(match &node {
        Some(node) => vec![node.base_url.clone()],
        None => targets,
    });
    let items: Arc<Vec<String>> = Arc::new(
        inkling_node::demo::catalog()
            .into_iter()
            .map(|product| product.id)
            .collect(),
    );

    let mut rows = Vec::new();
    for &batch in batch_sizes {
        let bases = bases.clone();
        let items = items.clone();
        let row = tokio::task::spawn_blocking(move || {
            load_events(&bases, &items, events, concurrency, batch, users)
        })
        .await??;
        rows.push(row);
    }
    let nodes = bases.len();
    if let Some(node) = node {
        node.stop().await?;
    }

    println!(
        "POST /v1/events, durable acks (raft commit), {concurrency} clients over {nodes} gateway(s), {users} users, loopback HTTP\n"
    );
    println!(
        "| events/request | requests | failed | events/s | requests/s | p50 ms | p99 ms | events per fsync |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let sent = row.requests * row.batch;
        // Syncs are counted in this process: a remote target's are not seen.
        let per_sync = match row.syncs {
            0 => "-".to_string(),
            syncs => format!("{:.1}", sent as f64 / syncs as f64),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
            row.batch,
            row.requests,
            row.failures,
            sent as f64 / row.seconds,
            row.requests as f64 / row.seconds,
            percentile(&row.latencies_ms, 0.50),
            percentile(&row.latencies_ms, 0.99),
            per_sync,
        );
    }
    Ok(())
}

fn load_events(
    bases: &[String],
    items: &[String],
    events: usize,
    concurrency: usize,
    batch: usize,
    users: usize,
) -> Result<Row> {
    let requests = events.div_ceil(batch);
    let syncs_before = inkling_ops::metrics::STORAGE_SYNC_SECONDS.get_sample_count();
    let started = Instant::now();
    let per_client: Vec<(Vec<f64>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|client| {
                scope.spawn(move || -> Result<(Vec<f64>, usize)> {
                    let config = ClientConfig::timeout(Duration::from_secs(30));
                    let api = Client::new(&bases[client % bases.len()], config)?;
                    let mut latencies = Vec::new();
                    let mut failures = 0;
                    for request in (client..requests).step_by(concurrency) {
                        let body = event_batch(items, request, batch, users);
                        let sent = Instant::now();
                        match api.events(&body) {
                            Ok(_) => latencies.push(sent.elapsed().as_secs_f64() * 1000.0),
                            Err(_) => failures += 1,
                        }
                    }
                    Ok((latencies, failures))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("client thread"))
            .collect::<Result<Vec<_>>>()
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let syncs = inkling_ops::metrics::STORAGE_SYNC_SECONDS.get_sample_count() - syncs_before;
    let mut latencies_ms: Vec<f64> = per_client
        .iter()
        .flat_map(|(latencies, _)| latencies.clone())
        .collect();
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Row {
        batch,
        requests,
        failures: per_client.iter().map(|(_, failures)| failures).sum(),
        seconds,
        syncs,
        latencies_ms,
    })
}

/// A deterministic batch: request `n` spreads its events over users and catalog items.
fn event_batch(items: &[String], request: usize, batch: usize, users: usize) -> EventBatch {
    const KINDS: [EventType; 4] = [
        EventType::View,
        EventType::View,
        EventType::Click,
        EventType::AddToCart,
    ];
    let events = (0..batch)
        .map(|offset| {
            let n = request * batch + offset;
            EventBody::on_item(
                format!("bench-user-{}", n % users),
                KINDS[n % KINDS.len()],
                items[(n * 7919) % items.len()].as_str(),
            )
        })
        .collect();
    EventBatch::new(events)
}

pub(crate) fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[rank]
}

/// A tiny deterministic generator (SplitMix64), so every run builds the same data.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// Uniform in (0, 1].
    pub(crate) fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 1.0) / (1u64 << 24) as f32
    }

    /// Standard normal, by Box-Muller.
    pub(crate) fn gaussian(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// Resident memory of this process, from /proc (Linux); 0 where unavailable.
pub(crate) fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
