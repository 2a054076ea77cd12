//! The final states the replay check compares, and reading them from the database: one
//! repeatable-read snapshot per service, taken once its outbox is empty, with the head of its
//! event log in the same snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};
use tokio::time::Instant;

/// A stock row's levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Levels {
    pub on_hand: i32,
    pub reserved: i32,
}

/// An order's status and payment status ("" before any payment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderStatus {
    pub status: String,
    pub payment_status: String,
}

/// What the inventory's events describe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryState {
    /// Levels per stock row, by "<sku>/<warehouse_id>" (the events' aggregate id).
    pub stock: BTreeMap<String, Levels>,
    /// Status per hold id.
    pub holds: BTreeMap<String, String>,
}

/// What the order service's events describe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderState {
    /// Status per order id.
    pub orders: BTreeMap<String, OrderStatus>,
    /// Status per order return id.
    pub returns: BTreeMap<String, String>,
}

/// Both services' final states as their databases hold them, each with the last position of
/// its event log in the same snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Final {
    pub inventory: InventoryState,
    pub inventory_head: u64,
    pub orders: OrderState,
    pub orders_head: u64,
}

/// Reads both services' final states, each in a snapshot whose outbox is empty (every change
/// it shows has its event numbered, at or before the head it shows). Retries while the relay
/// still has rows to move; fails after `timeout` (a relay that never drains its outbox).
pub async fn read_final(pool: &PgPool, timeout: Duration) -> anyhow::Result<Final> {
    let deadline = Instant::now() + timeout;
    let (mut tx, inventory_head) = drained_snapshot(pool, &INVENTORY_LOG, deadline).await?;
    let inventory = read_inventory(&mut tx).await?;
    tx.commit().await?;
    let (mut tx, orders_head) = drained_snapshot(pool, &ORDERS_LOG, deadline).await?;
    let orders = read_orders(&mut tx).await?;
    tx.commit().await?;
    Ok(Final { inventory, inventory_head, orders, orders_head })
}

/// The queries of one schema's outbox and log.
struct LogQueries {
    outbox: &'static str,
    /// Rows the relay has not moved yet.
    waiting: &'static str,
    /// The last position numbered.
    head: &'static str,
}

const INVENTORY_LOG: LogQueries = LogQueries {
    outbox: "inventory.event_outbox",
    waiting: "select count(*) from inventory.event_outbox",
    head: "select last_position from inventory.event_log",
};

const ORDERS_LOG: LogQueries = LogQueries {
    outbox: "orders.event_outbox",
    waiting: "select count(*) from orders.event_outbox",
    head: "select last_position from orders.event_log",
};

/// A repeatable-read transaction whose snapshot shows `log`'s outbox empty, with the head of
/// its event log in that snapshot; retried until `deadline`.
async fn drained_snapshot(
    pool: &PgPool,
    log: &LogQueries,
    deadline: Instant,
) -> anyhow::Result<(Transaction<'static, Postgres>, u64)> {
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read").execute(&mut *tx).await?;
        // The snapshot starts with this query: everything below reads the same one.
        let waiting: i64 = sqlx::query_scalar(log.waiting).fetch_one(&mut *tx).await?;
        if waiting == 0 {
            let head: i64 = sqlx::query_scalar(log.head).fetch_one(&mut *tx).await?;
            return Ok((tx, u64::try_from(head)?));
        }
        tx.rollback().await?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} still holds {waiting} row(s): its relay does not drain it",
            log.outbox
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_inventory(conn: &mut sqlx::PgConnection) -> sqlx::Result<InventoryState> {
    let stock: Vec<(String, i32, i32)> = sqlx::query_as(
        "select i.sku || '/' || sl.warehouse_id, sl.on_hand, sl.reserved
           from inventory.stock_levels sl join inventory.items i on i.id = sl.item_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let holds: Vec<(String, String)> =
        sqlx::query_as("select id::text, status from inventory.reservations")
            .fetch_all(&mut *conn)
            .await?;
    Ok(InventoryState {
        stock: stock
            .into_iter()
            .map(|(row, on_hand, reserved)| (row, Levels { on_hand, reserved }))
            .collect(),
        holds: holds.into_iter().collect(),
    })
}

async fn read_orders(conn: &mut sqlx::PgConnection) -> sqlx::Result<OrderState> {
    let orders: Vec<(String, String, String)> =
        sqlx::query_as("select id::text, status, payment_status from orders.orders")
            .fetch_all(&mut *conn)
            .await?;
    let returns: Vec<(String, String)> =
        sqlx::query_as("select id::text, status from orders.order_returns")
            .fetch_all(&mut *conn)
            .await?;
    Ok(OrderState {
        orders: orders
            .into_iter()
            .map(|(id, status, payment_status)| (id, OrderStatus { status, payment_status }))
            .collect(),
        returns: returns.into_iter().collect(),
    })
}
