//! All SQL of the order server. An order, its lines and its first audit row are written in
//! one statement; every saga write is guarded by the version it read and appends the audit
//! rows of the steps it records in the same statement.

mod operator;
mod orders;
mod reconcile;
mod retention;
mod returns;
mod saga;

/// The schema this server owns (and keeps its migration history in).
pub const SCHEMA: &str = "orders";

/// How the schema's event log rows stand for events: one row per event.
pub const EVENT_ROWS: common::events::LogRows = common::events::LogRows::OnePerEvent;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::replica::ReadPools;
use common::telemetry::W3cTraceContext;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::pricing::PricedLine;
use crate::domain::{Backordered, NextAction, OrderId, OrderStatus, PaymentStatus};
use crate::error::OrderError;

pub use operator::ParkedView;
pub use orders::CancelOutcome;
pub use reconcile::{ConfirmedOrder, QueuedCommits};
pub use retention::Retained;
pub use returns::{NewReturn, ReturnSave, ReturnState, ReturnView, ReturnWrite};
pub use saga::{Claimed, LastError, LeaseAfter, Park, Save, Saved};

/// Handle on the `orders` schema.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// Where the two client reads that tolerate a bounded staleness go (GetOrder,
    /// ListOrders): the primary, or a replica within `READ_MAX_STALENESS_MS`. Every read
    /// of a workflow uses `pool`.
    reads: ReadPools,
}

impl Store {
    /// Wraps a pool whose database has the order migrations applied; every read on it.
    pub fn new(pool: PgPool) -> Self {
        let reads = ReadPools::primary_only(pool.clone());
        Self { pool, reads }
    }

    /// The same store answering GetOrder and ListOrders through `reads`.
    pub fn with_read_pools(self, reads: ReadPools) -> Self {
        Self { reads, ..self }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// An order as the API shows it, plus what idempotent replays and pollers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub id: OrderId,
    pub user_id: String,
    pub status: OrderStatus,
    pub status_reason: String,
    pub items: Vec<OrderItemView>,
    pub total_amount_minor: i64,
    pub currency: String,
    pub payment_method: String,
    pub payment_status: PaymentStatus,
    pub reservation_id: Option<Uuid>,
    pub next_action: Option<NextAction>,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its returns, oldest first.
    pub returns: Vec<ReturnView>,
    /// Units taken on backorder, per SKU.
    pub backordered: Vec<Backordered>,
}

impl OrderView {
    /// The refunds of its completed returns, in minor units (saturating: a sum past 64 bits
    /// cannot come from refunds of one order's own prices).
    pub fn refunded_amount_minor(&self) -> i64 {
        self.returns
            .iter()
            .filter(|r| r.status == crate::domain::returns::ReturnStatus::Completed)
            .fold(0i64, |sum, r| sum.saturating_add(r.refund_amount_minor))
    }
}

/// One line of an order, with the SKU and unit price it was priced at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItemView {
    pub product_id: String,
    pub variant_id: Option<String>,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// A priced order about to be written, with the lease of the request that creates it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: OrderId,
    pub user_id: String,
    pub idempotency_key: Option<String>,
    pub fingerprint: String,
    pub currency: String,
    pub payment_method: String,
    pub total_amount_minor: i64,
    pub lines: Vec<PricedLine>,
    pub lease_owner: Uuid,
    pub lease: Duration,
    /// The creating request's trace context, for the trace of a resumed saga to link to.
    pub trace: Option<W3cTraceContext>,
}

/// The saga's view of an order: what to do next and what it needs to do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaState {
    pub id: OrderId,
    pub status: OrderStatus,
    pub status_reason: String,
    pub payment_status: PaymentStatus,
    pub payment_id: Option<String>,
    pub reservation_id: Option<Uuid>,
    pub next_action: Option<NextAction>,
    pub attempts: i32,
    pub version: i64,
    pub total_amount_minor: i64,
    pub currency: String,
    pub payment_method: String,
    pub lease_owner: Option<Uuid>,
    /// How long the lease still runs (None: no lease, or it lapsed).
    pub lease_left: Option<Duration>,
    /// How old the order was when this state was read.
    pub age: Duration,
    /// Parked for an operator: nothing drives it until it is resolved.
    pub parked: bool,
    /// Units the hold took on backorder, when a reserve answered in this drive: saves write
    /// them in place of what the order had (None: saves leave them as they are).
    pub backordered: Option<Vec<Backordered>>,
}

impl SagaState {
    /// A just-written order: PENDING, its reserve to do, at `version`, leased to `owner`.
    pub fn placed(order: &NewOrder, version: i64) -> Self {
        Self {
            id: order.id,
            status: OrderStatus::Pending,
            status_reason: String::new(),
            payment_status: PaymentStatus::None,
            payment_id: None,
            reservation_id: None,
            next_action: Some(NextAction::Reserve),
            attempts: 0,
            version,
            total_amount_minor: order.total_amount_minor,
            currency: order.currency.clone(),
            payment_method: order.payment_method.clone(),
            lease_owner: Some(order.lease_owner),
            lease_left: Some(order.lease),
            age: Duration::ZERO,
            parked: false,
            backordered: None,
        }
    }

    /// Takes on the state `to` reached by a step.
    pub fn apply(&mut self, to: Transition) {
        self.status = to.status;
        self.status_reason = to.status_reason;
        self.payment_status = to.payment_status;
        self.payment_id = to.payment_id;
        self.reservation_id = to.reservation_id;
        self.next_action = to.next_action;
        self.backordered = to.backordered;
    }
}

/// What one saga step writes: the order's new state and the following action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub status: OrderStatus,
    pub status_reason: String,
    pub payment_status: PaymentStatus,
    pub payment_id: Option<String>,
    pub reservation_id: Option<Uuid>,
    pub next_action: Option<NextAction>,
    /// Units the hold took on backorder, set by a reserve's answer (see `SagaState`).
    pub backordered: Option<Vec<Backordered>>,
}

impl Transition {
    /// The state as it is now, to be changed field by field.
    pub fn from_state(state: &SagaState) -> Self {
        Self {
            status: state.status,
            status_reason: state.status_reason.clone(),
            payment_status: state.payment_status,
            payment_id: state.payment_id.clone(),
            reservation_id: state.reservation_id,
            next_action: state.next_action,
            backordered: state.backordered.clone(),
        }
    }
}

/// One row of the saga audit (`orders.saga_steps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub action: &'static str,
    pub outcome: &'static str,
    pub detail: String,
}

/// Orders whose saga still has a step to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Orders with a step to do that the recovery worker retries.
    pub count: i64,
    /// Age of the oldest of those (0 when none).
    pub oldest_seconds: i64,
    /// Orders parked for an operator.
    pub parked: i64,
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

fn parse_status(value: &str) -> Result<OrderStatus, OrderError> {
    OrderStatus::from_db(value).ok_or_else(|| {
        OrderError::internal(format!("unknown order status {value:?} in the database"))
    })
}

fn parse_payment_status(value: &str) -> Result<PaymentStatus, OrderError> {
    PaymentStatus::from_db(value).ok_or_else(|| {
        OrderError::internal(format!("unknown payment status {value:?} in the database"))
    })
}

fn parse_next_action(value: Option<&str>) -> Result<Option<NextAction>, OrderError> {
    value
        .map(|v| {
            NextAction::from_db(v).ok_or_else(|| {
                OrderError::internal(format!("unknown next action {v:?} in the database"))
            })
        })
        .transpose()
}
