//! Coalesces concurrent reservations into shared transactions.
//!
//! With synchronous commit on, a hot stock row is locked until its transaction's commit is
//! flushed, so one SKU takes at most about one hold per flush. Here concurrent
//! `ReserveInventory` calls wait in one queue in front of a dispatcher task, which keeps at
//! most `workers` batches in flight and at most one per item: a call naming an item that an
//! in-flight batch holds waits, and when that batch ends every call waiting for the item goes
//! into the next batch together (up to `max_batch`), in arrival order. Calls on items nobody
//! holds are dispatched at once; a batch never waits to fill. Each batch is one
//! `inventory.reserve_many` call: one round trip, one lock of each row, one commit; each call
//! still gets its own all-or-nothing answer. An idle server answers each call alone, as fast
//! as without batching; a flash sale on one SKU turns into one large batch per commit flush
//! instead of one hold per flush, and two batches seldom queue on its row lock (only when
//! calls name the same item differently, by SKU and by id; the row lock still orders them).

use std::collections::{HashSet, VecDeque};

use tokio::sync::{mpsc, oneshot};

use super::{ReserveOutcome, Store};
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
        Self { workers: 8, max_batch: 64 }
    }
}

type Answer = Result<ReserveOutcome, InventoryError>;

/// One queued call and where its answer goes.
struct Job {
    req: Reserve,
    reply: oneshot::Sender<Answer>,
}

impl Job {
    /// The items the call names, as given: a batch in flight holds them.
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.req.lines.iter().map(|line| line.item.as_str())
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("reference", &self.req.reference).finish_non_exhaustive()
    }
}

/// The queue in front of the dispatcher. Dropping the last handle lets it finish what is
/// queued and stop.
#[derive(Debug)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Spawns the dispatcher (inside a Tokio runtime); `store` must not batch itself.
    pub(super) fn start(store: Store, config: ReserveBatching) -> Self {
        let config =
            ReserveBatching { workers: config.workers.max(1), max_batch: config.max_batch.max(1) };
        let (queue, rx) = mpsc::channel(config.workers * config.max_batch * 16);
        tokio::spawn(dispatch(store, rx, config));
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

/// The dispatcher: forms batches from what is queued and runs them, until the queue is
/// closed, empty and nothing is in flight.
async fn dispatch(store: Store, mut rx: mpsc::Receiver<Job>, config: ReserveBatching) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    // Items held by batches in flight: one batch per item at a time. (Letting a second batch
    // queue on the row lock in the database measured slower: smaller batches, and waiting
    // there is no cheaper than waiting here.)
    let mut busy: HashSet<String> = HashSet::new();
    let mut in_flight = 0_usize;
    let mut open = true;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<String>>();
    loop {
        tokio::select! {
            biased;
            Some(keys) = done_rx.recv() => {
                in_flight -= 1;
                for key in keys {
                    busy.remove(&key);
                }
            }
            job = rx.recv(), if open => match job {
                Some(job) => pending.push_back(job),
                None => open = false,
            },
        }
        while let Ok(job) = rx.try_recv() {
            pending.push_back(job);
        }
        while in_flight < config.workers {
            let batch = take_batch(&mut pending, &busy, config.max_batch);
            if batch.is_empty() {
                break;
            }
            let keys: Vec<String> = batch
                .iter()
                .flat_map(Job::keys)
                .map(str::to_owned)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            busy.extend(keys.iter().cloned());
            in_flight += 1;
            let (store, done) = (store.clone(), done_tx.clone());
            tokio::spawn(async move {
                run(&store, batch).await;
                let _ = done.send(keys);
            });
        }
        if !open && pending.is_empty() && in_flight == 0 {
            return;
        }
    }
}

/// Takes, in arrival order, the queued calls whose items no batch in flight holds, up to
/// `max`. A call left waiting keeps its items for itself: later calls naming them wait
/// behind it, so every item is served first come, first served.
fn take_batch(pending: &mut VecDeque<Job>, busy: &HashSet<String>, max: usize) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut waiting: HashSet<String> = HashSet::new();
    let mut kept = VecDeque::new();
    while let Some(job) = pending.pop_front() {
        if job.reply.is_closed() {
            // The caller gave up (deadline, disconnect): it needs no hold.
            continue;
        }
        let blocked =
            batch.len() >= max || job.keys().any(|key| busy.contains(key) || waiting.contains(key));
        if blocked {
            waiting.extend(job.keys().map(str::to_owned));
            kept.push_back(job);
        } else {
            batch.push(job);
        }
    }
    *pending = kept;
    batch
}

/// Runs one batch and answers each caller. A batch that fails on a database error is rerun
/// one call at a time, so the error reaches only the calls it belongs to.
async fn run(store: &Store, jobs: Vec<Job>) {
    metrics::RESERVE_BATCH_SIZE.with_label_values(&[] as &[&str]).observe(jobs.len() as f64);
    let reqs: Vec<&Reserve> = jobs.iter().map(|job| &job.req).collect();
    let result = store.reserve_many(&reqs).await;
    drop(reqs);
    match result {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
        Err(err) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(err.into()));
            }
        }
        Err(err) if common::db::is_unavailable(&err) => {
            tracing::warn!(error = %err, size = jobs.len(), "reservation batch: database unavailable");
            for job in jobs {
                let copy = match &err {
                    sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
                    sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
                    other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
                };
                let _ = job.reply.send(Err(copy.into()));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, size = jobs.len(), "reservation batch failed; retrying its calls one by one");
            for job in jobs {
                let answer = match store.reserve_many(&[&job.req]).await {
                    Ok(mut answers) => answers.pop().unwrap_or_else(|| Err(stopped())),
                    Err(err) => Err(err.into()),
                };
                let _ = job.reply.send(answer);
            }
        }
    }
}
