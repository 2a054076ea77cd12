//! The order use cases behind the RPCs: place, read, list, cancel and return. They hold no protobuf
//! and no SQL; they sequence the peers, the store and the saga engine.

mod cancel;
mod place;
mod returns;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::clients::Peers;
use crate::domain::OrderId;
use crate::domain::commands::ListPage;
use crate::domain::resolution::Resolution;
use crate::error::OrderError;
use crate::metrics;
use crate::saga::{Drive, DriveEnd, Engine, Refusal, Withdrawal};
use crate::store::{OrderView, ParkedView, SagaState, Store};

/// How long the use cases wait and hold, from the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct OrdersConfig {
    /// Lease a request takes on the order it drives.
    pub lease: Duration,
    /// How long a request drives (or waits for) a saga before answering with its state.
    pub budget: Duration,
}

/// The order use cases; cheap to clone.
#[derive(Debug, Clone)]
pub struct Orders {
    store: Store,
    peers: Peers,
    engine: Engine,
    tasks: TaskTracker,
    config: OrdersConfig,
}

/// The state a request answers with.
enum Reached {
    /// As its drive last wrote it, and when.
    Written(SagaState, DateTime<Utc>),
    /// As read from the row.
    Read(OrderView),
    /// Withdrawn: its first reserve took nothing, for this reason.
    Withdrawn(Refusal),
}

/// Pause between two reads of an order someone else is driving.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Time kept, before the caller's deadline, to read the order and send the answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

impl Orders {
    /// Use cases over `store` and `peers`; sagas run on `tasks` so they outlive the request
    /// that started them (a client that hangs up does not stop its order halfway).
    pub fn new(
        store: Store,
        peers: Peers,
        engine: Engine,
        tasks: TaskTracker,
        config: OrdersConfig,
    ) -> Self {
        Self { store, peers, engine, tasks, config }
    }

    /// The order `id` as the primary has it (what every workflow answers with).
    pub async fn get(&self, id: OrderId) -> Result<OrderView, OrderError> {
        self.store.order(id).await?.ok_or_else(|| OrderError::order_not_found(id))
    }

    /// The order `id` for GetOrder: possibly from the read replica (within its staleness
    /// bound), but never NOT_FOUND for an order the primary has (see `Store::read_order`).
    pub async fn read(&self, id: OrderId) -> Result<OrderView, OrderError> {
        self.store.read_order(id).await?.ok_or_else(|| OrderError::order_not_found(id))
    }

    /// Up to `limit` parked orders, longest parked first, each with its saga facts.
    pub async fn parked(&self, limit: u32) -> Result<Vec<(OrderView, ParkedView)>, OrderError> {
        let mut found = Vec::new();
        for parked in self.store.parked_orders(limit).await? {
            // Resolved between the two reads: no longer parked, so not listed.
            if let Some(view) = self.store.order(parked.id).await? {
                found.push((view, parked));
            }
        }
        Ok(found)
    }

    /// Resolves parked order `id` as the operator says, and answers with the order. The
    /// recovery worker drives whatever step the resolution leaves.
    pub async fn resolve_parked(
        &self,
        id: OrderId,
        resolution: Resolution,
        note: &str,
    ) -> Result<OrderView, OrderError> {
        self.store.resolve_parked(id, resolution, note).await?;
        tracing::warn!(order_id = %id, resolution = resolution.as_str(), note, "parked order resolved by an operator");
        metrics::operator_resolution(resolution);
        self.get(id).await
    }

    /// One page of a user's orders, newest first, and whether more follow; for ListOrders,
    /// possibly from the read replica, so up to its staleness bound old.
    pub async fn list(&self, page: &ListPage) -> Result<(Vec<OrderView>, bool), OrderError> {
        self.store.list_orders(page).await
    }

    /// When a request answers with the state reached at the latest: after its budget
    /// (`CREATE_ORDER_BUDGET_MS`), or a little before its caller's deadline if that is sooner.
    fn answer_by(&self) -> Instant {
        let budget = match common::overload::deadline::remaining() {
            Some(left) => self.config.budget.min(left.saturating_sub(ANSWER_MARGIN)),
            None => self.config.budget,
        };
        Instant::now() + budget
    }

    /// Runs `drive` (of order `id`) for at most the request budget, then answers with the
    /// state reached: the one it wrote last, or the row. The drive runs as its own task:
    /// when the budget is spent it simply carries on in the background. `withdrawal`: the
    /// drive may withdraw the order; the request takes that right when its budget is spent,
    /// unless the drive took it first (then the withdrawal is under way and is awaited).
    async fn drive_within_budget<F>(
        &self,
        id: OrderId,
        drive: F,
        withdrawal: Option<&Withdrawal>,
    ) -> Result<Reached, OrderError>
    where
        F: Future<Output = Result<Drive, OrderError>> + Send + 'static,
    {
        let deadline = self.answer_by();
        // in_current_span: the saga's log lines stay inside the request's span.
        let mut drive = self.tasks.spawn(drive.in_current_span());
        let ended = match tokio::time::timeout_at(deadline, &mut drive).await {
            Ok(ended) => ended,
            Err(_) if withdrawal.is_some_and(|w| !w.take()) => drive.await,
            Err(_) => {
                tracing::info!(order_id = %id, "request budget spent; the saga continues in the background");
                return Ok(Reached::Read(self.get(id).await?));
            }
        };
        match ended {
            Ok(Ok(Drive { end: DriveEnd::Elsewhere, .. })) => {
                return Ok(Reached::Read(self.wait_settled(id, deadline).await?));
            }
            Ok(Ok(Drive { end: DriveEnd::Withdrawn, refused: Some(refusal), .. })) => {
                return Ok(Reached::Withdrawn(refusal));
            }
            Ok(Ok(Drive { end, written, .. })) => {
                tracing::debug!(order_id = %id, ?end, "inline drive ended");
                if let Some((state, updated_at)) = written {
                    return Ok(Reached::Written(state, updated_at));
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(order_id = %id, error = %err, "inline drive failed; the recovery worker resumes the order")
            }
            Err(err) => tracing::error!(order_id = %id, error = %err, "inline drive panicked"),
        }
        Ok(Reached::Read(self.get(id).await?))
    }

    /// Reads order `id` until its saga has settled or `deadline` passes, then answers with it.
    async fn wait_settled(&self, id: OrderId, deadline: Instant) -> Result<OrderView, OrderError> {
        loop {
            let order = self.get(id).await?;
            let now = Instant::now();
            if order.next_action.is_none() || now >= deadline {
                return Ok(order);
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }
}
