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
use std::future::Future;
use std::time::Duration;

use common::db::{DbError, DbFailure};
use tokio::time::Instant;

use super::coalesce::{self, Policy, Queue};
use super::reservations::lock_timeout_for;
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
type Job = coalesce::Job<Queued, Answer>;

/// A queued reservation and the deadline of the call that made it.
struct Queued {
    req: Reserve,
    deadline: Option<Instant>,
}

/// The items a call names, as given: a batch in flight holds them.
fn keys(job: &Job) -> impl Iterator<Item = &str> {
    job.req.req.lines.iter().map(|line| line.item.as_str())
}

/// The queue in front of the dispatcher.
#[derive(Debug)]
pub(super) struct Batcher {
    queue: Queue<Queued, Answer>,
}

impl Batcher {
    /// Spawns the dispatcher (inside a Tokio runtime); `store` must not batch itself.
    pub(super) fn start(store: Store, config: ReserveBatching) -> Self {
        let (workers, max_batch) = (config.workers.max(1), config.max_batch.max(1));
        let policy = PerItem { store, max_batch, busy: HashSet::new() };
        Self { queue: Queue::start(policy, workers, workers * max_batch * 16) }
    }

    /// Queues `req` and waits for its answer. The batch it runs in waits for no lock past
    /// the latest deadline of its calls (`common::overload::deadline`).
    pub(super) async fn submit(&self, req: Reserve) -> Answer {
        let queued = Queued { req, deadline: common::overload::deadline::current() };
        self.queue.submit(queued).await.unwrap_or_else(|| Err(stopped()))
    }
}

fn stopped() -> InventoryError {
    InventoryError::Internal(anyhow::anyhow!("the reservation batcher stopped"))
}

/// At most one batch in flight per item.
struct PerItem {
    store: Store,
    max_batch: usize,
    // Items held by batches in flight. (Letting a second batch queue on the row lock in the
    // database measured slower: smaller batches, and waiting there is no cheaper than
    // waiting here.)
    busy: HashSet<String>,
}

impl Policy for PerItem {
    type Req = Queued;
    type Ans = Answer;
    type Claim = Vec<String>;

    fn take(&mut self, pending: &mut VecDeque<Job>) -> Option<(Vec<Job>, Vec<String>)> {
        let batch = take_batch(pending, &self.busy, self.max_batch);
        if batch.is_empty() {
            return None;
        }
        let claim: Vec<String> = batch
            .iter()
            .flat_map(keys)
            .map(str::to_owned)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.busy.extend(claim.iter().cloned());
        Some((batch, claim))
    }

    fn release(&mut self, claim: Vec<String>) {
        for key in claim {
            self.busy.remove(&key);
        }
    }

    fn run(&self, batch: Vec<Job>) -> impl Future<Output = ()> + Send + 'static {
        let store = self.store.clone();
        async move { run(&store, batch).await }
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
        if job.abandoned() {
            continue;
        }
        let blocked =
            batch.len() >= max || keys(&job).any(|key| busy.contains(key) || waiting.contains(key));
        if blocked {
            waiting.extend(keys(&job).map(str::to_owned));
            kept.push_back(job);
        } else {
            batch.push(job);
        }
    }
    *pending = kept;
    batch
}

/// How long a batch may wait for locks: until shortly before the latest deadline among its
/// calls (no limit when a call has no deadline).
fn lock_timeout(jobs: &[Job]) -> Option<Duration> {
    lock_timeout_for(jobs.iter().map(|job| job.req.deadline))
}

/// Runs one batch and answers each caller. A batch that fails on a database error is rerun
/// one call at a time (for the callers still waiting), so the error reaches only the calls it
/// belongs to.
async fn run(store: &Store, jobs: Vec<Job>) {
    metrics::RESERVE_BATCH_SIZE.with_label_values(&[] as &[&str]).observe(jobs.len() as f64);
    let reqs: Vec<&Reserve> = jobs.iter().map(|job| &job.req.req).collect();
    let result = store.reserve_many(&reqs, lock_timeout(&jobs)).await;
    drop(reqs);
    let err = match result {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                job.answer(answer);
            }
            return;
        }
        Err(err) => DbError::from(err),
    };
    match err.failure() {
        // The same answer for every caller: the database cannot serve now, or the batch
        // waited for locks until its callers' deadlines (and wrote nothing).
        DbFailure::Unavailable | DbFailure::LockTimeout => {
            tracing::warn!(error = %err, size = jobs.len(), "reservation batch failed for every call");
            for job in jobs {
                job.answer(Err(err.shared().into()));
            }
        }
        _ if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                job.answer(Err(err.into()));
            }
        }
        _ => {
            tracing::warn!(error = %err, size = jobs.len(), "reservation batch failed; retrying its calls one by one");
            for job in jobs.into_iter().filter(|job| !job.abandoned()) {
                let timeout = lock_timeout(std::slice::from_ref(&job));
                let answer = match store.reserve_many(&[&job.req.req], timeout).await {
                    Ok(mut answers) => answers.pop().unwrap_or_else(|| Err(stopped())),
                    Err(err) => Err(err.into()),
                };
                job.answer(answer);
            }
        }
    }
}
