//! The invariants the order/inventory pair promises, checked straight in the database and the
//! payment stand-in's books once the system is quiet. [`check`] returns every violation it
//! finds, never only the first, so one run shows the whole damage.
//!
//! ```ignore
//! let baseline = Baseline::capture(&db.pool).await?;   // after stocking, before the run
//! // ... run the workload, then let every order settle ...
//! let violations = invariants::check(&db.pool, &baseline, &ledger, sweep).await?;
//! assert!(violations.is_empty(), "{}", invariants::report(&violations));
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use dev_standins::Ledger;
use sqlx::PgPool;
use uuid::Uuid;

/// The statuses an order may rest in.
pub const TERMINAL_STATUSES: [&str; 4] = ["CONFIRMED", "REJECTED", "PAYMENT_FAILED", "CANCELLED"];

/// The stock before the run: on_hand per SKU (over its warehouses), and the last ledger
/// movement then, so that later admin changes (ADJUST/SET movements) are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// on_hand per SKU, summed over warehouses.
    pub on_hand: BTreeMap<String, i64>,
    /// Movements with a greater id happened during the run.
    pub last_movement_id: i64,
}

impl Baseline {
    /// The stock as it is now (take it with the system quiet, after stocking).
    pub async fn capture(pool: &PgPool) -> anyhow::Result<Self> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select i.sku, coalesce(sum(sl.on_hand), 0)::bigint
               from inventory.items i
               left join inventory.stock_levels sl on sl.item_id = i.id
              group by i.sku",
        )
        .fetch_all(pool)
        .await?;
        let last_movement_id: i64 =
            sqlx::query_scalar("select coalesce(max(id), 0)::bigint from inventory.movements")
                .fetch_one(pool)
                .await?;
        Ok(Self { on_hand: rows.into_iter().collect(), last_movement_id })
    }
}

/// One broken invariant, with what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// An order still has a saga step to do, or rests in a non-terminal status.
    NotTerminal { order_id: Uuid, status: String, next_action: Option<String> },
    /// initial − confirmed + admin changes ≠ final on_hand for a SKU.
    StockDrift { sku: String, initial: i64, confirmed: i64, adjusted: i64, on_hand: i64 },
    /// A stock row's `reserved` differs from the sum of its PENDING hold lines.
    ReservedDrift { level: i64, sku: String, warehouse: String, reserved: i64, pending: i64 },
    /// A stock row differs from the sums of its movement ledger.
    LedgerDrift {
        level: i64,
        sku: String,
        warehouse: String,
        on_hand: i64,
        ledger_on_hand: i64,
        reserved: i64,
        ledger_reserved: i64,
    },
    /// `0 <= reserved <= on_hand` does not hold for a stock row.
    ImpossibleLevel { level: i64, sku: String, warehouse: String, on_hand: i64, reserved: i64 },
    /// A hold is still PENDING more than one sweep after its expiry.
    StaleHold { reservation_id: Uuid, reference: String, overdue_ms: i64 },
    /// A CONFIRMED order does not have exactly one successful, unrefunded charge of its total.
    ConfirmedPayment { order_id: Uuid, problem: String },
    /// A CONFIRMED order's hold is missing, not COMMITTED, or does not match its items.
    ConfirmedHold { order_id: Uuid, reservation_id: Option<Uuid>, problem: String },
    /// A REJECTED/PAYMENT_FAILED/CANCELLED order still holds stock.
    SettledOrderHoldsStock { order_id: Uuid, status: String, reservation_id: Uuid, hold: String },
    /// A REJECTED/PAYMENT_FAILED/CANCELLED order (or no order at all) kept money.
    UnrefundedCharge {
        order_id: String,
        status: String,
        payment_id: String,
        amount_minor: i64,
        refunded_minor: i64,
    },
    /// A live (PENDING/COMMITTED) ORDER hold whose order does not exist.
    OrphanHold { reservation_id: Uuid, reference_id: String, status: String },
    /// A hold taken for an order after the order had settled, and never cancelled: nobody
    /// released it, so it kept its stock until it expired (caught here even after the sweeper
    /// released it). A late hold its own superseded driver cancelled at once is no leak.
    LateHold {
        order_id: Uuid,
        status: String,
        reservation_id: Uuid,
        hold: String,
        after_settle_ms: i64,
    },
}

impl Violation {
    /// A short name of the invariant, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotTerminal { .. } => "not_terminal",
            Self::StockDrift { .. } => "stock_drift",
            Self::ReservedDrift { .. } => "reserved_drift",
            Self::LedgerDrift { .. } => "ledger_drift",
            Self::ImpossibleLevel { .. } => "impossible_level",
            Self::StaleHold { .. } => "stale_hold",
            Self::ConfirmedPayment { .. } => "confirmed_payment",
            Self::ConfirmedHold { .. } => "confirmed_hold",
            Self::SettledOrderHoldsStock { .. } => "settled_order_holds_stock",
            Self::UnrefundedCharge { .. } => "unrefunded_charge",
            Self::OrphanHold { .. } => "orphan_hold",
            Self::LateHold { .. } => "late_hold",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTerminal { order_id, status, next_action } => write!(
                f,
                "order {order_id} is not terminal: status {status}, next action {}",
                next_action.as_deref().unwrap_or("none")
            ),
            Self::StockDrift { sku, initial, confirmed, adjusted, on_hand } => write!(
                f,
                "SKU {sku}: initial {initial} - confirmed {confirmed} + adjustments {adjusted} = {} \
                 but on_hand is {on_hand}",
                initial - confirmed + adjusted
            ),
            Self::ReservedDrift { level, sku, warehouse, reserved, pending } => write!(
                f,
                "stock row {level} ({sku}@{warehouse}): reserved {reserved} but PENDING holds \
                 sum to {pending}"
            ),
            Self::LedgerDrift {
                level,
                sku,
                warehouse,
                on_hand,
                ledger_on_hand,
                reserved,
                ledger_reserved,
            } => write!(
                f,
                "stock row {level} ({sku}@{warehouse}): on_hand {on_hand} / reserved {reserved} \
                 but the movement ledger sums to {ledger_on_hand} / {ledger_reserved}"
            ),
            Self::ImpossibleLevel { level, sku, warehouse, on_hand, reserved } => write!(
                f,
                "stock row {level} ({sku}@{warehouse}): 0 <= reserved {reserved} <= on_hand \
                 {on_hand} does not hold"
            ),
            Self::StaleHold { reservation_id, reference, overdue_ms } => write!(
                f,
                "hold {reservation_id} ({reference}) is PENDING {overdue_ms} ms after its expiry \
                 plus one sweep"
            ),
            Self::ConfirmedPayment { order_id, problem } => {
                write!(f, "CONFIRMED order {order_id}: {problem}")
            }
            Self::ConfirmedHold { order_id, reservation_id, problem } => match reservation_id {
                Some(r) => write!(f, "CONFIRMED order {order_id}, hold {r}: {problem}"),
                None => write!(f, "CONFIRMED order {order_id}: {problem}"),
            },
            Self::SettledOrderHoldsStock { order_id, status, reservation_id, hold } => write!(
                f,
                "{status} order {order_id} still holds stock: hold {reservation_id} is {hold}"
            ),
            Self::UnrefundedCharge {
                order_id,
                status,
                payment_id,
                amount_minor,
                refunded_minor,
            } => {
                write!(
                    f,
                    "{status} order {order_id} kept money: payment {payment_id} took \
                     {amount_minor}, refunded {refunded_minor}"
                )
            }
            Self::OrphanHold { reservation_id, reference_id, status } => write!(
                f,
                "hold {reservation_id} is {status} for order {reference_id}, which does not exist"
            ),
            Self::LateHold { order_id, status, reservation_id, hold, after_settle_ms } => write!(
                f,
                "hold {reservation_id} (now {hold}) was taken {after_settle_ms} ms after order \
                 {order_id} settled as {status}: leaked until its expiry"
            ),
        }
    }
}

/// Every violation on its own line, then a count per kind.
pub fn report(violations: &[Violation]) -> String {
    let mut out = String::new();
    for v in violations {
        out.push_str(&format!("  - [{}] {v}\n", v.kind()));
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for v in violations {
        *by_kind.entry(v.kind()).or_default() += 1;
    }
    out.push_str(&format!("{} violation(s)", violations.len()));
    for (kind, n) in by_kind {
        out.push_str(&format!(", {kind}: {n}"));
    }
    out
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    status: String,
    next_action: Option<String>,
    reservation_id: Option<Uuid>,
    payment_id: Option<String>,
    total_amount_minor: i64,
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    id: Uuid,
    reference_type: String,
    reference_id: String,
    status: String,
    /// How long ago it expired plus one sweep, in ms (negative: not yet).
    overdue_ms: i64,
}

#[derive(sqlx::FromRow)]
struct LevelRow {
    id: i64,
    sku: String,
    warehouse_id: String,
    on_hand: i64,
    reserved: i64,
    ledger_on_hand: i64,
    ledger_reserved: i64,
    pending: i64,
}

/// Checks every invariant with the system quiet. `baseline` is the stock before the run,
/// `ledger` the payment stand-in's books, `sweep` the inventory's sweep interval (a PENDING
/// hold may outlive its expiry by that much). Errors only when the database cannot be read.
pub async fn check(
    pool: &PgPool,
    baseline: &Baseline,
    ledger: &Ledger,
    sweep: Duration,
) -> anyhow::Result<Vec<Violation>> {
    let orders: Vec<OrderRow> = sqlx::query_as(
        "select id, status, next_action, reservation_id, payment_id, total_amount_minor
           from orders.orders order by created_at, id",
    )
    .fetch_all(pool)
    .await?;
    let order_items: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "select order_id, sku, quantity::bigint from orders.order_items order by order_id, line",
    )
    .fetch_all(pool)
    .await?;
    let sweep_ms = i64::try_from(sweep.as_millis()).unwrap_or(i64::MAX);
    let holds: Vec<HoldRow> = sqlx::query_as(
        "select id, reference_type, reference_id, status,
                (extract(epoch from (now() - expires_at)) * 1000)::bigint - $1 as overdue_ms
           from inventory.reservations order by created_at, id",
    )
    .bind(sweep_ms)
    .fetch_all(pool)
    .await?;
    let hold_lines: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "select ri.reservation_id, i.sku, ri.quantity::bigint
           from inventory.reservation_items ri
           join inventory.stock_levels sl on sl.id = ri.stock_level_id
           join inventory.items i on i.id = sl.item_id",
    )
    .fetch_all(pool)
    .await?;
    let levels: Vec<LevelRow> = sqlx::query_as(
        "select sl.id, i.sku, sl.warehouse_id, sl.on_hand::bigint, sl.reserved::bigint,
                coalesce(m.oh, 0)::bigint as ledger_on_hand,
                coalesce(m.rs, 0)::bigint as ledger_reserved,
                coalesce(p.q, 0)::bigint as pending
           from inventory.stock_levels sl
           join inventory.items i on i.id = sl.item_id
           left join (select stock_level_id, sum(on_hand_delta) oh, sum(reserved_delta) rs
                        from inventory.movements group by 1) m on m.stock_level_id = sl.id
           left join (select ri.stock_level_id, sum(ri.quantity) q
                        from inventory.reservation_items ri
                        join inventory.reservations r on r.id = ri.reservation_id
                       where r.status = 'PENDING' group by 1) p on p.stock_level_id = sl.id
          order by i.sku, sl.warehouse_id",
    )
    .fetch_all(pool)
    .await?;
    let adjusted: Vec<(String, i64)> = sqlx::query_as(
        "select i.sku, sum(m.on_hand_delta)::bigint
           from inventory.movements m
           join inventory.stock_levels sl on sl.id = m.stock_level_id
           join inventory.items i on i.id = sl.item_id
          where m.kind in ('ADJUST', 'SET') and m.id > $1
          group by i.sku",
    )
    .bind(baseline.last_movement_id)
    .fetch_all(pool)
    .await?;
    // Holds taken after their order settled and not cancelled since. Both schemas live in one
    // database in tests, so the checker may join them (the servers never do).
    let late_holds: Vec<(Uuid, Uuid, String, String, i64)> = sqlx::query_as(
        "select r.id, o.id, o.status, r.status,
                (extract(epoch from (r.created_at - o.updated_at)) * 1000)::bigint
           from inventory.reservations r
           join orders.orders o on r.reference_type = 'ORDER' and r.reference_id = o.id::text
          where o.next_action is null and r.created_at > o.updated_at
            and r.status <> 'CANCELLED'
          order by r.created_at",
    )
    .fetch_all(pool)
    .await?;

    let mut violations = Vec::new();

    // Per order: lines by SKU.
    let mut items_of: HashMap<Uuid, BTreeMap<String, i64>> = HashMap::new();
    for (order, sku, quantity) in order_items {
        *items_of.entry(order).or_default().entry(sku).or_default() += quantity;
    }
    let mut lines_of_hold: HashMap<Uuid, BTreeMap<String, i64>> = HashMap::new();
    for (hold, sku, quantity) in hold_lines {
        *lines_of_hold.entry(hold).or_default().entry(sku).or_default() += quantity;
    }
    let holds_by_id: HashMap<Uuid, &HoldRow> = holds.iter().map(|h| (h.id, h)).collect();
    let mut live_holds_of: HashMap<&str, Vec<&HoldRow>> = HashMap::new();
    for hold in &holds {
        if hold.reference_type == "ORDER" && matches!(hold.status.as_str(), "PENDING" | "COMMITTED")
        {
            live_holds_of.entry(hold.reference_id.as_str()).or_default().push(hold);
        }
    }
    let charges = ledger.charges();
    let mut charges_of: HashMap<&str, Vec<&dev_standins::Charge>> = HashMap::new();
    for charge in &charges {
        charges_of.entry(charge.order_id.as_str()).or_default().push(charge);
    }
    let empty = BTreeMap::new();

    // 1. Every order terminal.
    for o in &orders {
        if o.next_action.is_some() || !TERMINAL_STATUSES.contains(&o.status.as_str()) {
            violations.push(Violation::NotTerminal {
                order_id: o.id,
                status: o.status.clone(),
                next_action: o.next_action.clone(),
            });
        }
    }

    // 2. Stock: initial - confirmed + admin changes = final, per SKU.
    let mut confirmed_by_sku: BTreeMap<String, i64> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.status == "CONFIRMED") {
        for (sku, quantity) in items_of.get(&o.id).unwrap_or(&empty) {
            *confirmed_by_sku.entry(sku.clone()).or_default() += quantity;
        }
    }
    let adjusted: BTreeMap<String, i64> = adjusted.into_iter().collect();
    let mut final_by_sku: BTreeMap<String, i64> = BTreeMap::new();
    for level in &levels {
        *final_by_sku.entry(level.sku.clone()).or_default() += level.on_hand;
    }
    let skus: std::collections::BTreeSet<&String> = baseline
        .on_hand
        .keys()
        .chain(confirmed_by_sku.keys())
        .chain(adjusted.keys())
        .chain(final_by_sku.keys())
        .collect();
    for sku in skus {
        let initial = baseline.on_hand.get(sku).copied().unwrap_or(0);
        let confirmed = confirmed_by_sku.get(sku).copied().unwrap_or(0);
        let adjusted = adjusted.get(sku).copied().unwrap_or(0);
        let on_hand = final_by_sku.get(sku).copied().unwrap_or(0);
        if initial - confirmed + adjusted != on_hand {
            violations.push(Violation::StockDrift {
                sku: sku.clone(),
                initial,
                confirmed,
                adjusted,
                on_hand,
            });
        }
    }

    // 3-5. Stock rows: reserved = pending holds, ledger sums, 0 <= reserved <= on_hand.
    for l in &levels {
        if l.reserved != l.pending {
            violations.push(Violation::ReservedDrift {
                level: l.id,
                sku: l.sku.clone(),
                warehouse: l.warehouse_id.clone(),
                reserved: l.reserved,
                pending: l.pending,
            });
        }
        if l.on_hand != l.ledger_on_hand || l.reserved != l.ledger_reserved {
            violations.push(Violation::LedgerDrift {
                level: l.id,
                sku: l.sku.clone(),
                warehouse: l.warehouse_id.clone(),
                on_hand: l.on_hand,
                ledger_on_hand: l.ledger_on_hand,
                reserved: l.reserved,
                ledger_reserved: l.ledger_reserved,
            });
        }
        if l.reserved < 0 || l.reserved > l.on_hand {
            violations.push(Violation::ImpossibleLevel {
                level: l.id,
                sku: l.sku.clone(),
                warehouse: l.warehouse_id.clone(),
                on_hand: l.on_hand,
                reserved: l.reserved,
            });
        }
    }

    // 6. No PENDING hold past its expiry plus one sweep.
    for h in holds.iter().filter(|h| h.status == "PENDING" && h.overdue_ms > 0) {
        violations.push(Violation::StaleHold {
            reservation_id: h.id,
            reference: format!("{} {}", h.reference_type, h.reference_id),
            overdue_ms: h.overdue_ms,
        });
    }

    // 7. CONFIRMED: one successful unrefunded charge of the total; a matching COMMITTED hold.
    for o in orders.iter().filter(|o| o.status == "CONFIRMED") {
        let id = o.id.to_string();
        let succeeded: Vec<&&dev_standins::Charge> = charges_of
            .get(id.as_str())
            .map(|c| c.iter().filter(|c| c.succeeded()).collect())
            .unwrap_or_default();
        match succeeded.as_slice() {
            [] => violations.push(Violation::ConfirmedPayment {
                order_id: o.id,
                problem: "no successful charge in the payment ledger".to_owned(),
            }),
            [charge] => {
                let mut problems = Vec::new();
                if charge.amount_minor != o.total_amount_minor {
                    problems.push(format!(
                        "charged {} but the order totals {}",
                        charge.amount_minor, o.total_amount_minor
                    ));
                }
                if charge.refunded_minor != 0 {
                    problems.push(format!("{} of its charge was refunded", charge.refunded_minor));
                }
                if o.payment_id.as_deref() != Some(charge.payment_id.as_str()) {
                    problems.push(format!(
                        "records payment {:?} but the ledger's charge is {}",
                        o.payment_id, charge.payment_id
                    ));
                }
                if !problems.is_empty() {
                    violations.push(Violation::ConfirmedPayment {
                        order_id: o.id,
                        problem: problems.join("; "),
                    });
                }
            }
            many => violations.push(Violation::ConfirmedPayment {
                order_id: o.id,
                problem: format!(
                    "{} successful charges: {}",
                    many.len(),
                    many.iter().map(|c| c.payment_id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }),
        }

        let hold_problem = match o.reservation_id {
            None => Some("no reservation recorded".to_owned()),
            Some(r) => match holds_by_id.get(&r) {
                None => Some("the reservation does not exist".to_owned()),
                Some(h) if h.status != "COMMITTED" => Some(format!("the hold is {}", h.status)),
                Some(h) if h.reference_type != "ORDER" || h.reference_id != id => {
                    Some(format!("the hold belongs to {} {}", h.reference_type, h.reference_id))
                }
                Some(h) => {
                    let held = lines_of_hold.get(&h.id).unwrap_or(&empty);
                    let ordered = items_of.get(&o.id).unwrap_or(&empty);
                    (held != ordered).then(|| {
                        format!("the hold's lines {held:?} differ from the order's {ordered:?}")
                    })
                }
            },
        };
        if let Some(problem) = hold_problem {
            violations.push(Violation::ConfirmedHold {
                order_id: o.id,
                reservation_id: o.reservation_id,
                problem,
            });
        }
    }

    // 8. REJECTED / PAYMENT_FAILED / CANCELLED: no live hold, no money kept.
    for o in orders
        .iter()
        .filter(|o| matches!(o.status.as_str(), "REJECTED" | "PAYMENT_FAILED" | "CANCELLED"))
    {
        let id = o.id.to_string();
        for h in live_holds_of.get(id.as_str()).into_iter().flatten() {
            violations.push(Violation::SettledOrderHoldsStock {
                order_id: o.id,
                status: o.status.clone(),
                reservation_id: h.id,
                hold: h.status.clone(),
            });
        }
        for c in charges_of.get(id.as_str()).into_iter().flatten() {
            if c.succeeded() && c.refunded_minor < c.amount_minor {
                violations.push(Violation::UnrefundedCharge {
                    order_id: id.clone(),
                    status: o.status.clone(),
                    payment_id: c.payment_id.clone(),
                    amount_minor: c.amount_minor,
                    refunded_minor: c.refunded_minor,
                });
            }
        }
    }

    // 9. No hold taken after its order settled (a late retry of a superseded reserve).
    for (reservation_id, order_id, status, hold, after_settle_ms) in late_holds {
        violations.push(Violation::LateHold {
            order_id,
            status,
            reservation_id,
            hold,
            after_settle_ms,
        });
    }

    // 10. Nothing held or charged for orders that do not exist.
    let known: HashSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    for (reference, hs) in &live_holds_of {
        if !known.contains(*reference) {
            for h in hs {
                violations.push(Violation::OrphanHold {
                    reservation_id: h.id,
                    reference_id: h.reference_id.clone(),
                    status: h.status.clone(),
                });
            }
        }
    }
    for c in &charges {
        if !known.contains(&c.order_id) && c.succeeded() && c.refunded_minor < c.amount_minor {
            violations.push(Violation::UnrefundedCharge {
                order_id: c.order_id.clone(),
                status: "missing".to_owned(),
                payment_id: c.payment_id.clone(),
                amount_minor: c.amount_minor,
                refunded_minor: c.refunded_minor,
            });
        }
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use proto::inventory::v1 as inv;
    use proto::payment::v1 as pay;

    use super::*;
    use crate::{TestSystem, order_request};

    const SWEEP: Duration = Duration::from_millis(100);

    async fn pay(sys: &TestSystem, order_id: Uuid, amount: i64, key: &str) -> anyhow::Result<()> {
        let req = pay::ProcessPaymentRequest {
            order_id: order_id.to_string(),
            amount_minor: amount,
            currency: "EUR".into(),
            method: "card".into(),
            idempotency_key: key.into(),
        };
        let reply = sys.payment_client()?.process_payment(req).await?.into_inner();
        anyhow::ensure!(reply.status == "SUCCEEDED", "{reply:?}");
        Ok(())
    }

    fn has(violations: &[Violation], what: &str, pred: impl Fn(&Violation) -> bool) {
        assert!(
            violations.iter().any(pred),
            "expected a violation: {what}\nfound:\n{}",
            report(violations)
        );
    }

    /// A quiet system passes; each deliberate corruption is then reported, all in one check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_every_corruption() -> anyhow::Result<()> {
        let mut sys = TestSystem::start().await?;
        for (sku, qty) in [("WIDGET", 10), ("GADGET", 5), ("HOT", 3)] {
            sys.stock(sku, qty).await?;
        }
        let baseline = Baseline::capture(&sys.db.pool).await?;
        assert_eq!(baseline.on_hand.get("WIDGET"), Some(&10));

        let confirmed = sys.order("ana", &[("p-widget", 2)]).await?.expect("order placed");
        let hot = sys.order("bob", &[("p-hot", 1)]).await?.expect("order placed");
        let mut declined_req = order_request("cy", &[("p-gadget", 1)]);
        declined_req.payment_method = "card_decline".into();
        let declined = sys.create(declined_req).await?.expect("order placed");
        for o in [&confirmed, &hot, &declined] {
            sys.wait_settled(&o.id).await?;
        }
        // An admin change during the run is part of the expected stock, not a drift.
        let adjust = inv::AdjustStockRequest {
            sku: "WIDGET".into(),
            warehouse_id: String::new(),
            delta: 3,
            reason: "found in the back".into(),
            idempotency_key: "adj-1".into(),
        };
        sys.inventory()?.client.clone().adjust_stock(adjust).await?;

        let clean = check(&sys.db.pool, &baseline, &sys.ledger, SWEEP).await?;
        assert!(clean.is_empty(), "a quiet system is clean:\n{}", report(&clean));
        assert_eq!(sys.get(&declined.id).await?.status, "PAYMENT_FAILED");

        // Quiet for good: no sweeper or recovery worker may repair the corruption below.
        while let Some(order_server) = sys.orders.pop() {
            order_server.stop().await?;
        }
        sys.stop_inventory().await?;

        let confirmed_id = Uuid::parse_str(&confirmed.id)?;
        let hot_id = Uuid::parse_str(&hot.id)?;
        let declined_id = Uuid::parse_str(&declined.id)?;
        let pool = &sys.db.pool;
        let exec = |sql: &'static str| sqlx::query(sql);
        // a. on_hand moved without a movement.
        exec(
            "update inventory.stock_levels set on_hand = on_hand + 1
              where item_id = (select id from inventory.items where sku = 'WIDGET')",
        )
        .execute(pool)
        .await?;
        // b. reserved moved without a hold.
        exec(
            "update inventory.stock_levels set reserved = reserved + 1
              where item_id = (select id from inventory.items where sku = 'GADGET')",
        )
        .execute(pool)
        .await?;
        // c. a confirmed order's hold flipped to CANCELLED.
        sqlx::query("update inventory.reservations set status = 'CANCELLED' where id = $1")
            .bind(Uuid::parse_str(&confirmed.inventory_reservation_id)?)
            .execute(pool)
            .await?;
        // d. a confirmed order with a step left.
        sqlx::query("update orders.orders set next_action = 'commit' where id = $1")
            .bind(hot_id)
            .execute(pool)
            .await?;
        // e. a PENDING hold, expired an hour ago, for the declined order.
        let stale = Uuid::now_v7();
        sqlx::query(
            "insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
             values ($1, 'ORDER', $2, 'PENDING', now() - interval '1 hour')",
        )
        .bind(stale)
        .bind(declined_id.to_string())
        .execute(pool)
        .await?;
        // f. a live hold for an order that never existed.
        let orphan = Uuid::now_v7();
        sqlx::query(
            "insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
             values ($1, 'ORDER', $2, 'PENDING', now() + interval '1 hour')",
        )
        .bind(orphan)
        .bind(Uuid::now_v7().to_string())
        .execute(pool)
        .await?;
        // g. money: a second charge of a confirmed order, a charge of the declined one.
        pay(&sys, hot_id, 100, "rogue-1").await?;
        pay(&sys, declined_id, 1999, "rogue-2").await?;
        // h. an impossible stock row (the CHECK constraint has to go first).
        exec(
            "alter table inventory.stock_levels
               drop constraint stock_levels_reserved_within_on_hand",
        )
        .execute(pool)
        .await?;
        exec(
            "update inventory.stock_levels set reserved = on_hand + 2
              where item_id = (select id from inventory.items where sku = 'HOT')",
        )
        .execute(pool)
        .await?;

        let found = check(pool, &baseline, &sys.ledger, SWEEP).await?;
        println!("{}", report(&found));
        has(
            &found,
            "WIDGET drift",
            |v| matches!(v, Violation::StockDrift { sku, on_hand: 12, .. } if sku == "WIDGET"),
        );
        has(
            &found,
            "WIDGET ledger",
            |v| matches!(v, Violation::LedgerDrift { sku, .. } if sku == "WIDGET"),
        );
        has(
            &found,
            "GADGET reserved",
            |v| matches!(v, Violation::ReservedDrift { sku, reserved: 1, pending: 0, .. } if sku == "GADGET"),
        );
        has(
            &found,
            "GADGET ledger",
            |v| matches!(v, Violation::LedgerDrift { sku, .. } if sku == "GADGET"),
        );
        has(&found, "confirmed hold cancelled", |v| {
            matches!(v, Violation::ConfirmedHold { order_id, problem, .. }
                if *order_id == confirmed_id && problem.contains("CANCELLED"))
        });
        has(
            &found,
            "not terminal",
            |v| matches!(v, Violation::NotTerminal { order_id, .. } if *order_id == hot_id),
        );
        has(
            &found,
            "stale hold",
            |v| matches!(v, Violation::StaleHold { reservation_id, .. } if *reservation_id == stale),
        );
        has(&found, "declined order holds stock", |v| {
            matches!(v, Violation::SettledOrderHoldsStock { order_id, reservation_id, .. }
                if *order_id == declined_id && *reservation_id == stale)
        });
        has(
            &found,
            "orphan hold",
            |v| matches!(v, Violation::OrphanHold { reservation_id, .. } if *reservation_id == orphan),
        );
        has(&found, "charged twice", |v| {
            matches!(v, Violation::ConfirmedPayment { order_id, problem }
                if *order_id == hot_id && problem.contains("2 successful"))
        });
        has(&found, "declined order kept money", |v| {
            matches!(v, Violation::UnrefundedCharge { order_id, amount_minor: 1999, .. }
                if *order_id == declined.id)
        });
        has(
            &found,
            "impossible level",
            |v| matches!(v, Violation::ImpossibleLevel { sku, .. } if sku == "HOT"),
        );
        Ok(())
    }
}
