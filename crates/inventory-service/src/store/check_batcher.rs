//! Coalesces concurrent availability checks into shared queries.
//!
//! A check is one cheap indexed read, so its cost is mostly per statement: the round trip,
//! the executor's start and end, a wake-up on each side. A query for 24 SKUs costs about
//! twice one for 3 (pgbench here), so concurrent `CheckInventoryAvailability` calls wait in
//! one queue in front of a dispatcher that keeps up to `workers` queries in flight and puts
//! every call queued meanwhile into the next one (up to `max_skus` SKUs). A query never waits
//! to fill: an idle server answers each call alone. Every answer still reads a snapshot
//! taken after its call arrived, as without batching.

use std::collections::{HashMap, VecDeque};
use std::future::Future;

use super::coalesce::{self, Policy, Queue};
use common::db::DbError;

use super::{SkuAvailability, Store};
use crate::error::InventoryError;
use crate::metrics;

/// How availability checks are batched (`CHECK_BATCH_WORKERS`, `CHECK_BATCH_MAX_SKUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckBatching {
    /// Queries in flight at once, each on its own pooled connection.
    pub workers: usize,
    /// Most SKUs one query reads (a call is never split, so one call may exceed it).
    pub max_skus: usize,
}

impl Default for CheckBatching {
    fn default() -> Self {
        Self { workers: 2, max_skus: 256 }
    }
}

type Answer = Result<Vec<SkuAvailability>, InventoryError>;
type Job = coalesce::Job<Vec<String>, Answer>;

/// The queue in front of the dispatcher.
#[derive(Debug)]
pub(super) struct CheckBatcher {
    queue: Queue<Vec<String>, Answer>,
}

impl CheckBatcher {
    /// Spawns the dispatcher (inside a Tokio runtime); `store` must not batch checks itself.
    pub(super) fn start(store: Store, config: CheckBatching) -> Self {
        let (workers, max_skus) = (config.workers.max(1), config.max_skus.max(1));
        Self { queue: Queue::start(SkuBudget { store, max_skus }, workers, workers * max_skus) }
    }

    /// Queues a check of `skus` and waits for its answer.
    pub(super) async fn submit(&self, skus: Vec<String>) -> Answer {
        self.queue.submit(skus).await.unwrap_or_else(|| {
            Err(InventoryError::Internal(anyhow::anyhow!("the availability check batcher stopped")))
        })
    }
}

/// Everything queued goes into the next query, up to a number of SKUs.
struct SkuBudget {
    store: Store,
    max_skus: usize,
}

impl Policy for SkuBudget {
    type Req = Vec<String>;
    type Ans = Answer;
    type Claim = ();

    fn take(&mut self, pending: &mut VecDeque<Job>) -> Option<(Vec<Job>, ())> {
        let batch = take_batch(pending, self.max_skus);
        (!batch.is_empty()).then_some((batch, ()))
    }

    fn release(&mut self, (): ()) {}

    fn run(&self, batch: Vec<Job>) -> impl Future<Output = ()> + Send + 'static {
        let store = self.store.clone();
        async move { run(&store, batch).await }
    }
}

/// Takes queued calls in arrival order until they name `max_skus` SKUs (at least one call).
fn take_batch(pending: &mut VecDeque<Job>, max_skus: usize) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut skus = 0;
    while let Some(job) = pending.pop_front() {
        if job.abandoned() {
            continue;
        }
        if !batch.is_empty() && skus + job.req.len() > max_skus {
            pending.push_front(job);
            break;
        }
        skus += job.req.len();
        batch.push(job);
    }
    batch
}

/// Runs one query for every SKU of `jobs` and answers each caller with its own SKUs.
async fn run(store: &Store, jobs: Vec<Job>) {
    metrics::CHECK_BATCH_SIZE.with_label_values(&[] as &[&str]).observe(jobs.len() as f64);
    let mut skus: Vec<&str> =
        jobs.iter().flat_map(|job| job.req.iter().map(String::as_str)).collect();
    skus.sort_unstable();
    skus.dedup();
    match store.availability_now(&skus).await {
        Ok(found) => {
            let found: HashMap<&str, &SkuAvailability> =
                found.iter().map(|a| (a.sku.as_str(), a)).collect();
            for job in jobs {
                let mine = job
                    .req
                    .iter()
                    .filter_map(|sku| found.get(sku.as_str()).map(|a| (*a).clone()))
                    .collect();
                job.answer(Ok(mine));
            }
        }
        Err(err) => {
            let err = DbError::from(err);
            for job in jobs {
                job.answer(Err(err.shared().into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn job(skus: &[&str]) -> (Job, oneshot::Receiver<Answer>) {
        let (reply, rx) = oneshot::channel();
        (Job { req: skus.iter().map(|s| (*s).to_owned()).collect(), reply }, rx)
    }

    #[test]
    fn batches_stop_at_the_sku_budget_but_always_take_one_call() {
        let (a, _ra) = job(&["A", "B", "C"]);
        let (b, _rb) = job(&["D", "E"]);
        let (c, _rc) = job(&["F"]);
        let mut pending: VecDeque<Job> = [a, b, c].into();
        let first = take_batch(&mut pending, 2);
        assert_eq!(first.len(), 1, "a call larger than the budget still goes alone");
        let second = take_batch(&mut pending, 3);
        assert_eq!(second.iter().map(|j| j.req.len()).sum::<usize>(), 3);
        assert_eq!(second.len(), 2);
        assert!(pending.is_empty());
    }

    #[test]
    fn calls_whose_caller_left_are_dropped() {
        let (a, ra) = job(&["A"]);
        let (b, _rb) = job(&["B"]);
        drop(ra);
        let mut pending: VecDeque<Job> = [a, b].into();
        let batch = take_batch(&mut pending, 10);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].req, ["B"]);
    }
}
