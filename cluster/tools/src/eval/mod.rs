//! Offline evaluations that run Inkling's real components on public data sets, plus the
//! plumbing they share: progress bars and parallel HTTP clients.

pub mod intent;
pub mod probe;
pub mod search;
pub mod sessions;
pub mod slots;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

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

/// Runs `work(index)` for every index on `concurrency` threads, each with its own agent.
pub(crate) fn in_parallel<T: Send>(
    count: usize,
    concurrency: usize,
    bar: &ProgressBar,
    work: impl Fn(&ureq::Agent, usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<(usize, T)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(60))
                        .build();
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= count {
                            return Ok(done);
                        }
                        done.push((index, work(&agent, index)?));
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
    agent: &ureq::Agent,
    base: &str,
    products: &[(&str, String)],
    per_request: usize,
    what: &str,
) -> Result<()> {
    use anyhow::Context;
    let bar = progress(products.len(), what);
    for chunk in products.chunks(per_request) {
        let body: Vec<_> = chunk
            .iter()
            .map(|(id, title)| serde_json::json!({ "id": id, "title": title, "price": 0 }))
            .collect();
        agent
            .put(&format!("{base}/v1/products"))
            .send_json(serde_json::json!({ "products": body }))
            .with_context(|| format!("loading {what} failed"))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(())
}
