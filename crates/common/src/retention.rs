//! Retention rounds, shared by both servers: every interval, batch after batch of each kind of
//! old history until a batch comes back short. What a batch removes, and how it keeps the
//! server's invariants, is the server's ([`History::remove_old`]); each batch is one
//! statement or transaction, so every replica may run rounds side by side.

use std::future::Future;
use std::time::Duration;

use prometheus::IntCounterVec;
use tokio_util::sync::CancellationToken;

/// A server's history that retention trims.
pub trait History: Send + Sync {
    /// The kinds of rows it removes.
    type Kind: Copy + Send + Sync;
    /// What a failed batch reports.
    type Error: std::fmt::Display + Send;

    /// The `table` label of the kind's removed-rows counter.
    fn label(kind: Self::Kind) -> &'static str;

    /// Removes at most `batch` rows of `kind` older than `keep`; returns how many went
    /// (fewer than `batch`: nothing older is left).
    fn remove_old(
        &self,
        kind: Self::Kind,
        keep: Duration,
        batch: u32,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;
}

/// How retention runs: when, how much per batch, and how long each kind is kept (a kind left
/// out is kept forever).
#[derive(Debug, Clone)]
pub struct RetentionConfig<K> {
    /// Pause between two rounds; zero disables retention.
    pub interval: Duration,
    /// Most rows one batch removes.
    pub batch: u32,
    /// Each kind retention removes, with its keep period.
    pub keep: Vec<(K, Duration)>,
}

/// Runs a round every `config.interval` until `stop` is cancelled, counting removed rows in
/// `removed` (label `table`). A batch in progress finishes; the stop is taken between
/// batches. A failing round is logged once per outage.
pub async fn run<H: History>(
    history: H,
    config: RetentionConfig<H::Kind>,
    removed: &IntCounterVec,
    stop: CancellationToken,
) {
    if config.interval.is_zero() {
        tracing::info!("retention disabled (RETENTION_INTERVAL_MS=0)");
        return;
    }
    let mut failing = false;
    while !stop.is_cancelled() {
        match round(&history, &config, removed, &stop).await {
            Ok(()) if failing => {
                tracing::info!("retention recovered");
                failing = false;
            }
            Ok(()) => {}
            // The database being down already shows in health and every RPC.
            Err(err) if !failing => {
                tracing::warn!(error = %err, "retention failed; retrying every interval");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Removes every configured kind's old rows, batch after batch, until a batch comes back
/// short (or `stop` is cancelled).
pub async fn round<H: History>(
    history: &H,
    config: &RetentionConfig<H::Kind>,
    removed: &IntCounterVec,
    stop: &CancellationToken,
) -> Result<(), H::Error> {
    for &(kind, keep) in &config.keep {
        loop {
            let gone = history.remove_old(kind, keep, config.batch).await?;
            removed.with_label_values(&[H::label(kind)]).inc_by(gone);
            if gone < u64::from(config.batch) || stop.is_cancelled() {
                break;
            }
        }
    }
    Ok(())
}
