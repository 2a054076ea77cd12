//! All SQL of the inventory server. Every multi-row change is one transaction, and every
//! change to on_hand or reserved writes its movement row in that same transaction.

mod batcher;
mod check_batcher;
mod coalesce;
mod items;
mod ledger;
mod policy;
mod reconcile;
mod reservations;
mod retention;
mod returns;

/// The schema this server owns (and keeps its migration history in).
pub const SCHEMA: &str = "inventory";

/// How the schema's event log rows stand for events: a reserve writes its events as one row
/// (migration `20261203000016_reserve_event_batches`).
pub const EVENT_ROWS: common::events::LogRows = common::events::LogRows::Batched;

use chrono::{DateTime, NaiveDate, Utc};
use common::replica::ReadPools;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{ReservationId, ReservationStatus, StockPolicy};

pub use crate::domain::{ReserveOutcome, SettleOutcome};

pub use batcher::ReserveBatching;
pub use check_batcher::CheckBatching;
pub use reconcile::{Inconsistencies, KindReport, Mismatch, PASS_LOCK, Scope, SharedResults, Turn};
pub use reservations::SweepReport;
pub use retention::Retained;

/// Handle on the `inventory` schema.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// Where reads that tolerate a bounded staleness go (availability, items): the primary,
    /// or a replica while it is fresh enough.
    reads: ReadPools,
    /// Set by [`Store::with_reserve_batching`]: reserve calls go through its queue.
    batcher: Option<std::sync::Arc<batcher::Batcher>>,
    /// Set by [`Store::with_check_batching`]: availability checks go through its queue.
    check_batcher: Option<std::sync::Arc<check_batcher::CheckBatcher>>,
}

impl Store {
    /// Wraps a pool whose database has the inventory migrations applied.
    pub fn new(pool: PgPool) -> Self {
        let reads = ReadPools::primary_only(pool.clone());
        Self { pool, reads, batcher: None, check_batcher: None }
    }

    /// The same store reading availability and items through `reads`; call it before
    /// [`Store::with_check_batching`], whose batches read through the store's reads.
    pub fn with_read_pools(self, reads: ReadPools) -> Self {
        Self { reads, ..self }
    }

    /// Coalesces concurrent [`Store::reserve`] calls into shared transactions (see
    /// `batcher.rs`); spawns its dispatcher, so call it inside a Tokio runtime.
    pub fn with_reserve_batching(self, config: ReserveBatching) -> Self {
        let batcher = batcher::Batcher::start(Self::new(self.pool.clone()), config);
        Self { batcher: Some(std::sync::Arc::new(batcher)), ..self }
    }

    /// Coalesces concurrent [`Store::availability`] calls into shared queries (see
    /// `check_batcher.rs`); spawns its dispatcher, so call it inside a Tokio runtime.
    pub fn with_check_batching(self, config: CheckBatching) -> Self {
        let reads = Self::new(self.pool.clone()).with_read_pools(self.reads.clone());
        let batcher = check_batcher::CheckBatcher::start(reads, config);
        Self { check_batcher: Some(std::sync::Arc::new(batcher)), ..self }
    }

    /// The underlying pool (tests and health checks use it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// An item with its stock in each warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView {
    pub id: Uuid,
    pub sku: String,
    pub product_id: String,
    pub variant_id: Option<String>,
    pub levels: Vec<LevelView>,
}

/// One warehouse's stock of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelView {
    pub warehouse_id: String,
    pub on_hand: i32,
    pub reserved: i32,
    pub policy: StockPolicy,
}

/// A stock row's columns as the reads that list levels select them (after their own key).
#[derive(sqlx::FromRow)]
struct LevelRow {
    warehouse_id: String,
    on_hand: i32,
    reserved: i32,
    safety_stock: i32,
    low_stock_threshold: i32,
    backorder_limit: i32,
    restock_date: Option<NaiveDate>,
}

impl From<LevelRow> for LevelView {
    fn from(row: LevelRow) -> Self {
        Self {
            warehouse_id: row.warehouse_id,
            on_hand: row.on_hand,
            reserved: row.reserved,
            policy: StockPolicy {
                safety_stock: row.safety_stock,
                low_stock_threshold: row.low_stock_threshold,
                backorder_limit: row.backorder_limit,
                restock_date: row.restock_date,
            },
        }
    }
}

impl LevelView {
    /// Units offered for sale.
    pub fn available(&self) -> i32 {
        self.policy.offered(self.on_hand, self.reserved)
    }

    /// Of them, the units in stock.
    pub fn in_stock(&self) -> i32 {
        self.policy.in_stock(self.on_hand, self.reserved)
    }

    /// Whether the row is below its low-stock threshold.
    pub fn is_low(&self) -> bool {
        self.policy.is_low(self.on_hand, self.reserved)
    }
}

/// A stock row below its low-stock threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowStockView {
    pub sku: String,
    pub level: LevelView,
}

/// Availability of one SKU summed over its warehouses; None when the SKU is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuAvailability {
    pub sku: String,
    pub product_id: String,
    pub variant_id: Option<String>,
    pub available: i64,
    /// Of `available`, the units in stock (not on backorder).
    pub in_stock: i64,
    /// The earliest expected restock date of its rows that take backorders.
    pub restock_date: Option<NaiveDate>,
}

/// A hold with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationView {
    pub id: ReservationId,
    pub reference_type: String,
    pub reference_id: String,
    pub status: ReservationStatus,
    pub expires_at: DateTime<Utc>,
    pub items: Vec<ReservedLine>,
}

/// Units of one SKU held in one warehouse, and what returns took back of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedLine {
    pub sku: String,
    pub warehouse_id: String,
    pub quantity: i32,
    /// Units returned (ReturnStock), restocked or not.
    pub returned: i32,
    /// Of `returned`, the units not put back on hand.
    pub not_restocked: i32,
    /// Of `quantity`, the units still on backorder.
    pub backordered: i32,
    /// The row's expected restock date.
    pub restock_date: Option<NaiveDate>,
}

/// Units of a hold on backorder on one stock row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackorderedView {
    pub sku: String,
    pub warehouse_id: String,
    pub quantity: i32,
    pub restock_date: Option<NaiveDate>,
}

/// A return as applied (or found under its key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnView {
    pub id: Uuid,
    pub reservation_id: ReservationId,
    pub lines: Vec<ReturnedLine>,
    /// The key had been used by this same request before: nothing was applied now.
    pub replayed: bool,
}

/// Units a return took back from one stock row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedLine {
    pub sku: String,
    pub warehouse_id: String,
    pub quantity: i32,
    pub restock: bool,
}
