//! Benchmarks that drive a real node over HTTP on loopback and print a table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use inkling_actors::ActorConfig;
use serde_json::json;
use tokio::net::TcpListener;

use crate::node::{CatalogSource, Node, NodeOptions};

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
    },
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Events {
            events,
            concurrency,
            batch_sizes,
            users,
        } => bench_events(events, concurrency, &batch_sizes, users).await,
    }
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
) -> Result<()> {
    if events == 0 || concurrency == 0 || users == 0 || batch_sizes.contains(&0) {
        bail!("--events, --concurrency, --users and every batch size must be at least 1");
    }
    let data_dir = tempfile::tempdir().context("cannot create a temporary data folder")?;
    let options = NodeOptions {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        catalog: CatalogSource::Demo,
        actors: ActorConfig::default(),
    };
    let node = Node::start(&options).await?;
    let listener = TcpListener::bind(options.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    let items: Arc<Vec<String>> = Arc::new(
        crate::demo::catalog()
            .into_iter()
            .map(|product| product.id)
            .collect(),
    );

    let mut rows = Vec::new();
    for &batch in batch_sizes {
        let base = base.clone();
        let items = items.clone();
        let row = tokio::task::spawn_blocking(move || {
            load_events(&base, &items, events, concurrency, batch, users)
        })
        .await??;
        rows.push(row);
    }
    let _ = stop.send(());
    server.await??;

    println!(
        "POST /v1/events, durable acks (group commit), {concurrency} clients, {users} users, loopback HTTP\n"
    );
    println!(
        "| events/request | requests | failed | events/s | requests/s | p50 ms | p99 ms | events per fsync |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let sent = row.requests * row.batch;
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} |",
            row.batch,
            row.requests,
            row.failures,
            sent as f64 / row.seconds,
            row.requests as f64 / row.seconds,
            percentile(&row.latencies_ms, 0.50),
            percentile(&row.latencies_ms, 0.99),
            sent as f64 / row.syncs.max(1) as f64,
        );
    }
    Ok(())
}

fn load_events(
    base: &str,
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
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(30))
                        .build();
                    let url = format!("{base}/v1/events");
                    let mut latencies = Vec::new();
                    let mut failures = 0;
                    for request in (client..requests).step_by(concurrency) {
                        let body = event_batch(items, request, batch, users);
                        let sent = Instant::now();
                        match agent.post(&url).send_json(body) {
                            Ok(_) => latencies.push(sent.elapsed().as_secs_f64() * 1000.0),
                            Err(_) => failures += 1,
                        }
                    }
                    (latencies, failures)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("client thread"))
            .collect()
    });
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
fn event_batch(items: &[String], request: usize, batch: usize, users: usize) -> serde_json::Value {
    const KINDS: [&str; 4] = ["view", "view", "click", "add_to_cart"];
    let events: Vec<_> = (0..batch)
        .map(|offset| {
            let n = request * batch + offset;
            json!({
                "user_id": format!("bench-user-{}", n % users),
                "type": KINDS[n % KINDS.len()],
                "item_id": items[(n * 7919) % items.len()],
            })
        })
        .collect();
    json!({ "events": events })
}

fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[rank]
}
