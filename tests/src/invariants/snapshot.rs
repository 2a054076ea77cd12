//! What the checker reads once the system is quiet: orders and their lines, holds and their
//! lines, stock rows with their ledger and PENDING sums, admin changes since the baseline, and
//! holds taken after their order settled; then the lookups several checks share ([`Index`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use dev_standins::Charge;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub(super) struct OrderRow {
    pub(super) id: Uuid,
    pub(super) status: String,
    pub(super) next_action: Option<String>,
    pub(super) reservation_id: Option<Uuid>,
    pub(super) payment_id: Option<String>,
    pub(super) total_amount_minor: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct HoldRow {
    pub(super) id: Uuid,
    pub(super) reference_type: String,
    pub(super) reference_id: String,
    pub(super) status: String,
    /// How long ago it expired plus one sweep, in ms (negative: not yet).
    pub(super) overdue_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct LevelRow {
    pub(super) id: i64,
    pub(super) sku: String,
    pub(super) warehouse_id: String,
    pub(super) on_hand: i64,
    pub(super) reserved: i64,
    pub(super) ledger_on_hand: i64,
    pub(super) ledger_reserved: i64,
    pub(super) pending: i64,
    /// How far on_hand may go below zero (0 without a backorder policy).
    pub(super) backorder_limit: i64,
}

/// A return of an order, as the order side records it.
#[derive(sqlx::FromRow)]
pub(super) struct ReturnRow {
    pub(super) id: Uuid,
    pub(super) order_id: Uuid,
    pub(super) status: String,
    pub(super) refund_amount_minor: i64,
}

/// One item of a return: units of a SKU, whether they go back on hand, at what unit price.
#[derive(sqlx::FromRow)]
pub(super) struct ReturnItem {
    pub(super) return_id: Uuid,
    pub(super) sku: String,
    pub(super) quantity: i64,
    pub(super) restock: bool,
    pub(super) unit_price_minor: i64,
}

/// Returned units per (SKU, restocked).
pub(super) type Returned = BTreeMap<(String, bool), i64>;

/// A hold taken after its order settled, never cancelled: (hold, order, order status, hold
/// status, ms between the order's settling and the hold).
pub(super) type LateHold = (Uuid, Uuid, String, String, i64);

/// A reserve that sold into safety stock: (movement, row, SKU, warehouse, on_hand, reserved,
/// safety_stock) just after it.
pub(super) type SafetyBreach = (i64, i64, String, String, i64, i64, i64);

/// Units per SKU (of an order, or of a hold).
pub(super) type Lines = BTreeMap<String, i64>;

/// Both schemas as the checker sees them.
pub(super) struct Snapshot {
    /// Every order, oldest first.
    pub(super) orders: Vec<OrderRow>,
    /// Each order's lines by SKU.
    pub(super) items_of: HashMap<Uuid, Lines>,
    /// Each order's unit price by SKU.
    pub(super) prices_of: HashMap<Uuid, Lines>,
    /// Every hold, oldest first.
    pub(super) holds: Vec<HoldRow>,
    /// Each hold's lines by SKU.
    pub(super) lines_of_hold: HashMap<Uuid, Lines>,
    /// Every stock row, by SKU and warehouse.
    pub(super) levels: Vec<LevelRow>,
    /// What ADJUST/SET movements after the baseline added to each SKU's on_hand.
    pub(super) adjusted: BTreeMap<String, i64>,
    /// Holds taken after their order settled and not cancelled since.
    pub(super) late_holds: Vec<LateHold>,
    /// Every return of an order, oldest first.
    pub(super) returns: Vec<ReturnRow>,
    /// Each return's items.
    pub(super) return_items: HashMap<Uuid, Vec<ReturnItem>>,
    /// What the inventory took back per hold (ReturnStock), by (SKU, restocked).
    pub(super) stock_returned: HashMap<Uuid, Returned>,
    /// Reserves that left a row below its safety stock.
    pub(super) safety_breaches: Vec<SafetyBreach>,
}

impl Snapshot {
    /// Reads everything; `last_movement_id` is the baseline's, `sweep` the tolerance of an
    /// expired hold.
    pub(super) async fn read(
        pool: &PgPool,
        last_movement_id: i64,
        sweep: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            orders: orders(pool).await?,
            items_of: by_sku(order_lines(pool).await?),
            prices_of: order_prices(pool).await?,
            holds: holds(pool, sweep).await?,
            lines_of_hold: by_sku(hold_lines(pool).await?),
            levels: levels(pool).await?,
            adjusted: adjusted_since(pool, last_movement_id).await?,
            late_holds: late_holds(pool).await?,
            returns: returns(pool).await?,
            return_items: return_items(pool).await?,
            stock_returned: stock_returned(pool).await?,
            safety_breaches: safety_breaches(pool).await?,
        })
    }
}

/// The lookups the checks share: holds by id and by order, the payment ledger by order.
pub(super) struct Index<'a> {
    pub(super) holds_by_id: HashMap<Uuid, &'a HoldRow>,
    /// Live (PENDING or COMMITTED) ORDER holds by order id.
    pub(super) live_holds_of: HashMap<&'a str, Vec<&'a HoldRow>>,
    /// Every charge of the payment ledger.
    pub(super) charges: &'a [Charge],
    pub(super) charges_of: HashMap<&'a str, Vec<&'a Charge>>,
}

impl<'a> Index<'a> {
    /// Indexes the snapshot's holds and the ledger's `charges`.
    pub(super) fn new(snapshot: &'a Snapshot, charges: &'a [Charge]) -> Self {
        let holds_by_id = snapshot.holds.iter().map(|h| (h.id, h)).collect();
        let mut live_holds_of: HashMap<&str, Vec<&HoldRow>> = HashMap::new();
        for hold in &snapshot.holds {
            if hold.reference_type == "ORDER"
                && matches!(hold.status.as_str(), "PENDING" | "COMMITTED")
            {
                live_holds_of.entry(hold.reference_id.as_str()).or_default().push(hold);
            }
        }
        let mut charges_of: HashMap<&str, Vec<&Charge>> = HashMap::new();
        for charge in charges {
            charges_of.entry(charge.order_id.as_str()).or_default().push(charge);
        }
        Self { holds_by_id, live_holds_of, charges, charges_of }
    }
}

/// Sums (owner, SKU, quantity) rows into each owner's lines by SKU.
fn by_sku(rows: Vec<(Uuid, String, i64)>) -> HashMap<Uuid, Lines> {
    let mut lines: HashMap<Uuid, Lines> = HashMap::new();
    for (owner, sku, quantity) in rows {
        *lines.entry(owner).or_default().entry(sku).or_default() += quantity;
    }
    lines
}

async fn orders(pool: &PgPool) -> sqlx::Result<Vec<OrderRow>> {
    sqlx::query_as(
        "select id, status, next_action, reservation_id, payment_id, total_amount_minor
           from orders.orders order by created_at, id",
    )
    .fetch_all(pool)
    .await
}

async fn order_lines(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, String, i64)>> {
    sqlx::query_as(
        "select order_id, sku, quantity::bigint from orders.order_items order by order_id, line",
    )
    .fetch_all(pool)
    .await
}

async fn order_prices(pool: &PgPool) -> sqlx::Result<HashMap<Uuid, Lines>> {
    let rows: Vec<(Uuid, String, i64)> =
        sqlx::query_as("select order_id, sku, unit_price_minor from orders.order_items")
            .fetch_all(pool)
            .await?;
    let mut prices: HashMap<Uuid, Lines> = HashMap::new();
    for (order, sku, price) in rows {
        prices.entry(order).or_default().insert(sku, price);
    }
    Ok(prices)
}

async fn holds(pool: &PgPool, sweep: Duration) -> sqlx::Result<Vec<HoldRow>> {
    let sweep_ms = i64::try_from(sweep.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_as(
        "select id, reference_type, reference_id, status,
                (extract(epoch from (now() - expires_at)) * 1000)::bigint - $1 as overdue_ms
           from inventory.reservations order by created_at, id",
    )
    .bind(sweep_ms)
    .fetch_all(pool)
    .await
}

async fn hold_lines(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, String, i64)>> {
    sqlx::query_as(
        "select ri.reservation_id, i.sku, ri.quantity::bigint
           from inventory.reservation_items ri
           join inventory.stock_levels sl on sl.id = ri.stock_level_id
           join inventory.items i on i.id = sl.item_id",
    )
    .fetch_all(pool)
    .await
}

async fn levels(pool: &PgPool) -> sqlx::Result<Vec<LevelRow>> {
    sqlx::query_as(concat!(
        "select sl.id, i.sku, sl.warehouse_id, sl.on_hand::bigint, sl.reserved::bigint,
                coalesce(m.oh, 0)::bigint as ledger_on_hand,
                coalesce(m.rs, 0)::bigint as ledger_reserved,
                coalesce(p.q, 0)::bigint as pending, sl.backorder_limit::bigint
           from inventory.stock_levels sl
           join inventory.items i on i.id = sl.item_id
           left join ",
        crate::ledger_sums_sql!(),
        " m on m.stock_level_id = sl.id
           left join (select ri.stock_level_id, sum(ri.quantity) q
                        from inventory.reservation_items ri
                        join inventory.reservations r on r.id = ri.reservation_id
                       where r.status = 'PENDING' group by 1) p on p.stock_level_id = sl.id
          order by i.sku, sl.warehouse_id"
    ))
    .fetch_all(pool)
    .await
}

async fn adjusted_since(
    pool: &PgPool,
    last_movement_id: i64,
) -> sqlx::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select i.sku, sum(m.on_hand_delta)::bigint
           from inventory.movements m
           join inventory.stock_levels sl on sl.id = m.stock_level_id
           join inventory.items i on i.id = sl.item_id
          where m.kind in ('ADJUST', 'SET') and m.id > $1
          group by i.sku",
    )
    .bind(last_movement_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn late_holds(pool: &PgPool) -> sqlx::Result<Vec<LateHold>> {
    // Both schemas live in one database in tests, so the checker may join them (the servers
    // never do).
    sqlx::query_as(
        "select r.id, o.id, o.status, r.status,
                (extract(epoch from (r.created_at - o.updated_at)) * 1000)::bigint
           from inventory.reservations r
           join orders.orders o on r.reference_type = 'ORDER' and r.reference_id = o.id::text
          where o.next_action is null and r.created_at > o.updated_at
            and r.status <> 'CANCELLED'
          order by r.created_at",
    )
    .fetch_all(pool)
    .await
}

/// Replays each row's ledger in movement order (a row's movements are numbered under its
/// lock, so their order is the order they were applied; a movement numbered before its lock
/// only frees units and can hide a breach, never invent one) and keeps every RESERVE after
/// which the row had fewer unreserved units than its safety stock allows (less its backorder
/// limit: a row may sell that far beyond on_hand). Policies are read as they are now: the runs
/// that check this set them before they start.
async fn safety_breaches(pool: &PgPool) -> sqlx::Result<Vec<SafetyBreach>> {
    sqlx::query_as(
        "select r.id, r.level, i.sku, sl.warehouse_id, r.on_hand, r.reserved,
                sl.safety_stock::bigint
           from (select m.id, m.kind, m.stock_level_id as level,
                        coalesce(b.on_hand, 0) + sum(m.on_hand_delta) over w as on_hand,
                        coalesce(b.reserved, 0) + sum(m.reserved_delta) over w as reserved
                   from inventory.movements m
                   left join inventory.ledger_base b on b.stock_level_id = m.stock_level_id
                 window w as (partition by m.stock_level_id order by m.id)) r
           join inventory.stock_levels sl on sl.id = r.level
           join inventory.items i on i.id = sl.item_id
          where r.kind = 'RESERVE' and (sl.safety_stock > 0 or sl.backorder_limit > 0)
            and r.on_hand - r.reserved < sl.safety_stock - sl.backorder_limit
          order by r.id",
    )
    .fetch_all(pool)
    .await
}

async fn returns(pool: &PgPool) -> sqlx::Result<Vec<ReturnRow>> {
    sqlx::query_as(
        "select id, order_id, status, refund_amount_minor
           from orders.order_returns order by created_at, id",
    )
    .fetch_all(pool)
    .await
}

async fn return_items(pool: &PgPool) -> sqlx::Result<HashMap<Uuid, Vec<ReturnItem>>> {
    let rows: Vec<ReturnItem> = sqlx::query_as(
        "select return_id, sku, quantity::bigint, not do_not_restock as restock, unit_price_minor
           from orders.order_return_items",
    )
    .fetch_all(pool)
    .await?;
    let mut items: HashMap<Uuid, Vec<ReturnItem>> = HashMap::new();
    for row in rows {
        items.entry(row.return_id).or_default().push(row);
    }
    Ok(items)
}

async fn stock_returned(pool: &PgPool) -> sqlx::Result<HashMap<Uuid, Returned>> {
    let rows: Vec<(Uuid, String, bool, i64)> = sqlx::query_as(
        "select sr.reservation_id, i.sku, l.restock, sum(l.quantity)::bigint
           from inventory.stock_returns sr
           join inventory.stock_return_lines l on l.return_id = sr.id
           join inventory.stock_levels sl on sl.id = l.stock_level_id
           join inventory.items i on i.id = sl.item_id
          group by 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    let mut returned: HashMap<Uuid, Returned> = HashMap::new();
    for (hold, sku, restock, quantity) in rows {
        returned.entry(hold).or_default().insert((sku, restock), quantity);
    }
    Ok(returned)
}
