//! Offline evaluations that run Inkling's real components on public data sets, plus the
//! plumbing they share: progress bars and parallel HTTP clients.

pub mod intent;
pub mod probe;
pub mod report;
pub mod search;
pub mod sessions;
pub mod slots;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use inkling_api::{Client, ClientConfig, ProductBatch, ProductBody};

pub(crate) fn progress(length: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(length as u64);
    let style =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// How long one call of an evaluation may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of each node at `bases`, sharing one connection pool, with `timeout` per call.
pub(crate) fn clients(bases: &[String], timeout: Duration) -> Result<Vec<Client>> {
    let first = Client::new(&bases[0], ClientConfig::timeout(timeout))?;
    bases.iter().map(|base| Ok(first.at(base)?)).collect()
}

/// Runs `work(client, index)` for every index on `concurrency` threads, each with clients
/// of its own; index `i` gets the client of the node at `bases[i % bases.len()]`.
pub(crate) fn in_parallel<T: Send>(
    count: usize,
    concurrency: usize,
    bar: &ProgressBar,
    bases: &[String],
    work: impl Fn(&Client, usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<(usize, T)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let clients = clients(bases, CALL_TIMEOUT)?;
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= count {
                            return Ok(done);
                        }
                        done.push((index, work(&clients[index % clients.len()], index)?));
                        bar.inc(1);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("worker thread"))
            .collect()
    });
    let mut all: Vec<(usize, T)> = Vec::with_capacity(count);
    for part in results {
        all.extend(part?);
    }
    all.sort_by_key(|(index, _)| *index);
    Ok(all.into_iter().map(|(_, value)| value).collect())
}

/// Puts `(id, title)` pairs into the node as bare, free, in-stock products through
/// `PUT /v1/products`, `per_request` at a time, with a progress bar named `what`.
pub(crate) fn put_bare_products(
    client: &Client,
    products: &[(&str, String)],
    per_request: usize,
    what: &str,
) -> Result<()> {
    use anyhow::Context;
    let bar = progress(products.len(), what);
    for chunk in products.chunks(per_request) {
        let products = chunk
            .iter()
            .map(|(id, title)| ProductBody::new(*id, title.clone(), 0.0))
            .collect();
        client
            .upsert_products(&ProductBatch { products })
            .with_context(|| format!("loading {what} failed"))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(())
}
