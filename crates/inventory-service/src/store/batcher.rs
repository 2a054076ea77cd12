//! Coalesces concurrent reservations into shared transactions.
//!
//! With synchronous commit on, a hot stock row is locked until its transaction's commit is
//! flushed, so one SKU takes at most about one hold per flush. Here concurrent
//! `ReserveInventory` calls wait in one queue; each of a few worker tasks takes the first
//! waiting call plus whatever else is queued (up to a maximum, never waiting for more) and
//! runs them all in one `inventory.reserve_many` call: one round trip, one lock of each row,
//! one commit. Each call still gets its own all-or-nothing answer. Batches form only under
//! load: an idle server answers each call alone, as fast as without batching.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Postgres};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{ReserveOutcome, Store, reservations::reserve_many_on};
use crate::domain::commands::Reserve;
use crate::error::InventoryError;
use crate::metrics;

/// How reservations are batched (`RESERVE_BATCH_WORKERS`, `RESERVE_BATCH_MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveBatching {
    /// Batches in flight at once, each on its own pooled connection.
    pub workers: usize,
    /// Most reservations in one batch (one transaction).
    pub max_batch: usize,
}

impl Default for ReserveBatching {
    fn default() -> Self {
        Self { workers: 4, max_batch: 64 }
    }
}

type Answer = Result<ReserveOutcome, InventoryError>;

/// One queued call and where its answer goes.
struct Job {
    req: Reserve,
    reply: oneshot::Sender<Answer>,
}

/// The queue in front of the workers. Dropping the last handle lets them finish what is
/// queued and stop.
#[derive(Debug)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("reference", &self.req.reference).finish_non_exhaustive()
    }
}

impl Batcher {
    /// Spawns the workers (inside a Tokio runtime); `store` must not batch itself.
    pub(super) fn start(store: Store, config: ReserveBatching) -> Self {
        let max_batch = config.max_batch.max(1);
        let workers = config.workers.max(1);
        let (queue, rx) = mpsc::channel(workers * max_batch * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            tokio::spawn(work(store.clone(), Arc::clone(&rx), max_batch));
        }
        Self { queue }
    }

    /// Queues `req` and waits for its answer.
    pub(super) async fn submit(&self, req: Reserve) -> Answer {
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Job { req, reply }).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> InventoryError {
    InventoryError::Internal(anyhow::anyhow!("the reservation batcher stopped"))
}

/// A held connection unused for longer than this is pinged before its next batch.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// One worker: take what is queued, run it as one batch, answer each caller; until the
/// queue is closed and empty. The worker keeps one pooled connection between batches (so a
/// batch costs exactly one round trip, not an acquire-time ping plus the call), pings it only
/// after an idle spell, replaces it after any error, and gives it back when the pool closes.
async fn work(store: Store, queue: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    let mut conn: Option<(PoolConnection<Postgres>, Instant)> = None;
    loop {
        // Holding the lock while waiting: the other workers queue behind it, and whoever
        // gets the next call also takes everything that arrived with it.
        let next = async { queue.lock().await.recv_many(&mut jobs, max_batch).await };
        let got = tokio::select! {
            got = next => got,
            () = store.pool.close_event(), if conn.is_some() => {
                conn = None;
                continue;
            }
        };
        if got == 0 {
            return;
        }
        // A caller that gave up (deadline, disconnect) needs no hold.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        metrics::RESERVE_BATCH_SIZE.with_label_values(&[] as &[&str]).observe(jobs.len() as f64);

        let held = match conn.take() {
            Some((mut c, last)) if last.elapsed() >= IDLE_PING_AFTER => {
                c.ping().await.ok().map(|()| c)
            }
            Some((c, _)) => Some(c),
            None => None,
        };
        let mut c = match held {
            Some(c) => c,
            None => match store.pool.acquire().await {
                Ok(c) => c,
                Err(err) => {
                    fail_all(&mut jobs, err);
                    continue;
                }
            },
        };
        let reqs: Vec<&Reserve> = jobs.iter().map(|job| &job.req).collect();
        let result = reserve_many_on(&mut *c, &reqs).await;
        drop(reqs);
        match result {
            Ok(answers) => {
                for (job, answer) in jobs.drain(..).zip(answers) {
                    let _ = job.reply.send(answer);
                }
                conn = Some((c, Instant::now()));
            }
            Err(err) if jobs.len() == 1 || common::db::is_unavailable(&err) => {
                fail_all(&mut jobs, err);
            }
            Err(err) => {
                // Whatever failed the batch (e.g. one request hitting a constraint) fails only
                // the requests it belongs to: run them one by one.
                tracing::warn!(error = %err, size = jobs.len(), "reservation batch failed; retrying its requests one by one");
                drop(c);
                for job in jobs.drain(..) {
                    let answer = match store.reserve_many(&[&job.req]).await {
                        Ok(mut answers) => answers.pop().unwrap_or_else(|| Err(stopped())),
                        Err(err) => Err(err.into()),
                    };
                    let _ = job.reply.send(answer);
                }
            }
        }
    }
}

/// Answers every call of a batch that could not run with `err` (each its own copy).
fn fail_all(jobs: &mut Vec<Job>, err: sqlx::Error) {
    if jobs.len() == 1 {
        if let Some(job) = jobs.pop() {
            let _ = job.reply.send(Err(err.into()));
        }
        return;
    }
    tracing::warn!(error = %err, size = jobs.len(), "reservation batch failed");
    let err = &err;
    for job in jobs.drain(..) {
        let copy = match err {
            sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
            other if common::db::is_unavailable(other) => {
                sqlx::Error::Io(std::io::Error::other(other.to_string()))
            }
            other => sqlx::Error::Protocol(other.to_string()),
        };
        let _ = job.reply.send(Err(copy.into()));
    }
}
