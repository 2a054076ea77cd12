//! The relay: every interval, numbers committed outbox rows into the log (one replica at a
//! time, under the log's row lock) and tells this server's watchers the new head.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{EventLog, EventMetrics, Head};

/// How often the age of the oldest waiting outbox row is measured (the alert's gauge).
const AGE_EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop`: relays batch after batch while outbox rows wait, then pauses
/// `interval`; every round publishes the head on `head`. A failing round (the database
/// down) is logged once per outage and retried every interval; the outbox keeps every
/// event meanwhile.
pub async fn run_relay(
    log: EventLog,
    interval: Duration,
    batch: u32,
    metrics: EventMetrics,
    head: watch::Sender<Head>,
    stop: CancellationToken,
) {
    let mut failing = false;
    let mut measured = Instant::now().checked_sub(AGE_EVERY).unwrap_or_else(Instant::now);
    while !stop.is_cancelled() {
        let full = match log.relay(batch).await {
            Ok(relayed) => {
                if failing {
                    tracing::info!("event relay recovered");
                    failing = false;
                }
                for (event_type, n) in &relayed.by_type {
                    metrics.published.with_label_values(&[event_type]).inc_by(*n);
                }
                metrics.position.set(i64::try_from(relayed.head.last_position).unwrap_or(i64::MAX));
                head.send_if_modified(|current| {
                    let changed = *current != relayed.head;
                    *current = relayed.head;
                    changed
                });
                let full = relayed.relayed && relayed.rows >= u64::from(batch.max(1));
                if !full && measured.elapsed() >= AGE_EVERY {
                    if let Ok(age) = log.oldest_pending_secs().await {
                        metrics.oldest_pending.set(age);
                    }
                    measured = Instant::now();
                }
                full
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "event relay failed; retrying every interval");
                    failing = true;
                }
                false
            }
        };
        if full {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
    }
}
