//! Stalls of the async runtime, as metrics an operator can see.
//!
//! A task that blocks a worker thread (an fsync, a long computation, a lock held across
//! work) stalls every other task queued behind it, and no request metric says why. A
//! probe timer shows it directly: it asks to wake every [`PROBE_PERIOD`] and records how
//! late it woke, which is how long a ready task waited for a free worker. Beside it, the
//! workers' busy share and the shared queue's depth tell an overloaded runtime (busy near
//! 1, a deep queue) from a blocked one (late ticks while the workers are not busy running
//! async work).

use std::time::Duration;

use crate::metrics::{RUNTIME_BUSY_RATIO, RUNTIME_GLOBAL_QUEUE_DEPTH, RUNTIME_TICK_LAG_SECONDS};

/// How often the probe wakes. Short enough to catch a stall of a few tens of milliseconds,
/// long enough to cost nothing.
pub const PROBE_PERIOD: Duration = Duration::from_millis(50);

/// How often the busy share is recomputed.
const BUSY_WINDOW: Duration = Duration::from_secs(1);

/// Starts the probe on the current tokio runtime; it runs until the returned task is
/// aborted or the runtime shuts down.
pub fn spawn_stall_probe() -> tokio::task::JoinHandle<()> {
    let metrics = tokio::runtime::Handle::current().metrics();
    tokio::spawn(async move {
        let mut window = BusyWindow::start(&metrics);
        loop {
            let planned = tokio::time::Instant::now() + PROBE_PERIOD;
            tokio::time::sleep_until(planned).await;
            let lag = tokio::time::Instant::now().saturating_duration_since(planned);
            RUNTIME_TICK_LAG_SECONDS.observe(lag.as_secs_f64());
            RUNTIME_GLOBAL_QUEUE_DEPTH
                .set(i64::try_from(metrics.global_queue_depth()).unwrap_or(i64::MAX));
            if let Some(ratio) = window.close_if_due(&metrics) {
                RUNTIME_BUSY_RATIO.set(ratio);
            }
        }
    })
}

/// The workers' total busy time at the start of the current window.
struct BusyWindow {
    started: std::time::Instant,
    busy: Duration,
}

impl BusyWindow {
    fn start(metrics: &tokio::runtime::RuntimeMetrics) -> Self {
        Self {
            started: std::time::Instant::now(),
            busy: total_busy(metrics),
        }
    }

    /// The busy share since the window started, once it is [`BUSY_WINDOW`] long; then a new
    /// window starts.
    fn close_if_due(&mut self, metrics: &tokio::runtime::RuntimeMetrics) -> Option<f64> {
        let elapsed = self.started.elapsed();
        if elapsed < BUSY_WINDOW {
            return None;
        }
        let busy = total_busy(metrics);
        let capacity = elapsed.as_secs_f64() * metrics.num_workers().max(1) as f64;
        let ratio = busy.saturating_sub(self.busy).as_secs_f64() / capacity;
        *self = Self {
            started: std::time::Instant::now(),
            busy,
        };
        Some(ratio.min(1.0))
    }
}

fn total_busy(metrics: &tokio::runtime::RuntimeMetrics) -> Duration {
    (0..metrics.num_workers())
        .map(|worker| metrics.worker_total_busy_duration(worker))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker blocked past the probe's period shows as a late tick. The test's runtime has
    /// one thread, which the test body shares with the probe.
    #[tokio::test]
    async fn a_blocked_worker_shows_as_tick_lag() {
        let probe = spawn_stall_probe();
        // Let the probe take its first tick, so it is waiting on its timer.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while RUNTIME_TICK_LAG_SECONDS.get_sample_count() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the probe never ticked"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = RUNTIME_TICK_LAG_SECONDS.get_sample_sum();
        // Block the only thread for four periods: the probe's next wake-up is that late.
        std::thread::sleep(PROBE_PERIOD * 4);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while RUNTIME_TICK_LAG_SECONDS.get_sample_sum() - before < (PROBE_PERIOD * 2).as_secs_f64()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no late tick recorded"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probe.abort();
    }
}
