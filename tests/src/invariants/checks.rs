//! One check per family of invariants, each over the [`Snapshot`] (and its [`Index`]), each
//! returning every violation it finds, in the order of the rows it reads.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use dev_standins::Charge;

use super::snapshot::{Index, Lines, OrderRow, Snapshot};
use super::{Baseline, TERMINAL_STATUSES, Violation};

/// Every order is terminal: in a resting status, with no saga step left.
pub(super) fn orders_are_terminal(db: &Snapshot) -> Vec<Violation> {
    db.orders
        .iter()
        .filter(|o| o.next_action.is_some() || !TERMINAL_STATUSES.contains(&o.status.as_str()))
        .map(|o| Violation::NotTerminal {
            order_id: o.id,
            status: o.status.clone(),
            next_action: o.next_action.clone(),
        })
        .collect()
}

/// Stock adds up, per SKU: initial - sold (confirmed orders, and committed holds of other
/// references: a till selling directly) + restocked units of completed returns + admin
/// changes = final on_hand.
pub(super) fn stock_adds_up(baseline: &Baseline, db: &Snapshot) -> Vec<Violation> {
    let empty = Lines::new();
    let mut confirmed_by_sku: BTreeMap<String, i64> = BTreeMap::new();
    for o in db.orders.iter().filter(|o| o.status == "CONFIRMED") {
        for (sku, quantity) in db.items_of.get(&o.id).unwrap_or(&empty) {
            *confirmed_by_sku.entry(sku.clone()).or_default() += quantity;
        }
    }
    for h in db.holds.iter().filter(|h| h.reference_type != "ORDER" && h.status == "COMMITTED") {
        for (sku, quantity) in db.lines_of_hold.get(&h.id).unwrap_or(&empty) {
            *confirmed_by_sku.entry(sku.clone()).or_default() += quantity;
        }
    }
    let mut returned_by_sku: BTreeMap<String, i64> = BTreeMap::new();
    for r in db.returns.iter().filter(|r| r.status == "COMPLETED") {
        for item in db.return_items.get(&r.id).into_iter().flatten().filter(|i| i.restock) {
            *returned_by_sku.entry(item.sku.clone()).or_default() += item.quantity;
        }
    }
    let mut final_by_sku: BTreeMap<String, i64> = BTreeMap::new();
    for level in &db.levels {
        *final_by_sku.entry(level.sku.clone()).or_default() += level.on_hand;
    }
    let skus: BTreeSet<&String> = baseline
        .on_hand
        .keys()
        .chain(confirmed_by_sku.keys())
        .chain(returned_by_sku.keys())
        .chain(db.adjusted.keys())
        .chain(final_by_sku.keys())
        .collect();
    let mut violations = Vec::new();
    for sku in skus {
        let initial = baseline.on_hand.get(sku).copied().unwrap_or(0);
        let confirmed = confirmed_by_sku.get(sku).copied().unwrap_or(0);
        let returned = returned_by_sku.get(sku).copied().unwrap_or(0);
        let adjusted = db.adjusted.get(sku).copied().unwrap_or(0);
        let on_hand = final_by_sku.get(sku).copied().unwrap_or(0);
        if initial - confirmed + returned + adjusted != on_hand {
            violations.push(Violation::StockDrift {
                sku: sku.clone(),
                initial,
                confirmed,
                returned,
                adjusted,
                on_hand,
            });
        }
    }
    violations
}

/// Each stock row agrees with its holds and its ledger: reserved = the PENDING holds'
/// lines, on_hand and reserved = the sums of its movements, 0 <= reserved <= on_hand +
/// backorder_limit (on_hand - reserved never below -backorder_limit).
pub(super) fn stock_rows_agree(db: &Snapshot) -> Vec<Violation> {
    let mut violations = Vec::new();
    for l in &db.levels {
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
        if l.reserved < 0 || l.on_hand - l.reserved < -l.backorder_limit {
            violations.push(Violation::ImpossibleLevel {
                level: l.id,
                sku: l.sku.clone(),
                warehouse: l.warehouse_id.clone(),
                on_hand: l.on_hand,
                reserved: l.reserved,
            });
        }
    }
    violations
}

/// No reserve ever sold into a row's safety stock.
pub(super) fn safety_stock_kept(db: &Snapshot) -> Vec<Violation> {
    db.safety_breaches
        .iter()
        .map(|(movement, level, sku, warehouse, on_hand, reserved, safety_stock)| {
            Violation::SafetyStockSold {
                level: *level,
                sku: sku.clone(),
                warehouse: warehouse.clone(),
                movement: *movement,
                on_hand: *on_hand,
                reserved: *reserved,
                safety_stock: *safety_stock,
            }
        })
        .collect()
}

/// No hold is PENDING past its expiry plus one sweep.
pub(super) fn no_hold_outlives_its_expiry(db: &Snapshot) -> Vec<Violation> {
    db.holds
        .iter()
        .filter(|h| h.status == "PENDING" && h.overdue_ms > 0)
        .map(|h| Violation::StaleHold {
            reservation_id: h.id,
            reference: format!("{} {}", h.reference_type, h.reference_id),
            overdue_ms: h.overdue_ms,
        })
        .collect()
}

/// A CONFIRMED order has exactly one successful charge of its total, refunded by exactly the
/// value of its completed returns, and a COMMITTED hold of its own holding exactly its lines.
pub(super) fn confirmed_orders_are_paid_and_held(
    db: &Snapshot,
    index: &Index<'_>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for o in db.orders.iter().filter(|o| o.status == "CONFIRMED") {
        violations.extend(payment_problem(o, returned_value(db, o.id), index));
        violations.extend(hold_problem(o, db, index));
    }
    violations
}

/// The refunds an order's completed returns owe.
fn returned_value(db: &Snapshot, order_id: uuid::Uuid) -> i64 {
    db.returns
        .iter()
        .filter(|r| r.order_id == order_id && r.status == "COMPLETED")
        .map(|r| r.refund_amount_minor)
        .sum()
}

/// What is wrong with a CONFIRMED order's payment, if anything; `returned` is what its
/// completed returns refunded.
fn payment_problem(o: &OrderRow, returned: i64, index: &Index<'_>) -> Option<Violation> {
    let id = o.id.to_string();
    let succeeded: Vec<&&Charge> = index
        .charges_of
        .get(id.as_str())
        .map(|c| c.iter().filter(|c| c.succeeded()).collect())
        .unwrap_or_default();
    let problem = match succeeded.as_slice() {
        [] => Some("no successful charge in the payment ledger".to_owned()),
        [charge] => {
            let mut problems = Vec::new();
            if charge.amount_minor != o.total_amount_minor {
                problems.push(format!(
                    "charged {} but the order totals {}",
                    charge.amount_minor, o.total_amount_minor
                ));
            }
            if charge.refunded_minor != returned {
                problems.push(format!(
                    "{} of its charge was refunded, but its completed returns come to {returned}",
                    charge.refunded_minor
                ));
            }
            if o.payment_id.as_deref() != Some(charge.payment_id.as_str()) {
                problems.push(format!(
                    "records payment {:?} but the ledger's charge is {}",
                    o.payment_id, charge.payment_id
                ));
            }
            (!problems.is_empty()).then(|| problems.join("; "))
        }
        many => Some(format!(
            "{} successful charges: {}",
            many.len(),
            many.iter().map(|c| c.payment_id.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }?;
    Some(Violation::ConfirmedPayment { order_id: o.id, problem })
}

/// What is wrong with a CONFIRMED order's hold, if anything.
fn hold_problem(o: &OrderRow, db: &Snapshot, index: &Index<'_>) -> Option<Violation> {
    let empty = Lines::new();
    let id = o.id.to_string();
    let problem = match o.reservation_id {
        None => Some("no reservation recorded".to_owned()),
        Some(r) => match index.holds_by_id.get(&r) {
            None => Some("the reservation does not exist".to_owned()),
            Some(h) if h.status != "COMMITTED" => Some(format!("the hold is {}", h.status)),
            Some(h) if h.reference_type != "ORDER" || h.reference_id != id => {
                Some(format!("the hold belongs to {} {}", h.reference_type, h.reference_id))
            }
            Some(h) => {
                let held = db.lines_of_hold.get(&h.id).unwrap_or(&empty);
                let ordered = db.items_of.get(&o.id).unwrap_or(&empty);
                (held != ordered).then(|| {
                    format!("the hold's lines {held:?} differ from the order's {ordered:?}")
                })
            }
        },
    }?;
    Some(Violation::ConfirmedHold { order_id: o.id, reservation_id: o.reservation_id, problem })
}

/// A REJECTED, PAYMENT_FAILED or CANCELLED order holds no stock and kept no money.
pub(super) fn settled_orders_keep_nothing(db: &Snapshot, index: &Index<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for o in db
        .orders
        .iter()
        .filter(|o| matches!(o.status.as_str(), "REJECTED" | "PAYMENT_FAILED" | "CANCELLED"))
    {
        let id = o.id.to_string();
        for h in index.live_holds_of.get(id.as_str()).into_iter().flatten() {
            violations.push(Violation::SettledOrderHoldsStock {
                order_id: o.id,
                status: o.status.clone(),
                reservation_id: h.id,
                hold: h.status.clone(),
            });
        }
        for c in index.charges_of.get(id.as_str()).into_iter().flatten() {
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
    violations
}

/// No hold was taken after its order settled (a late retry of a superseded reserve).
pub(super) fn no_hold_after_its_order_settled(db: &Snapshot) -> Vec<Violation> {
    db.late_holds
        .iter()
        .map(|(reservation_id, order_id, status, hold, after_settle_ms)| Violation::LateHold {
            order_id: *order_id,
            status: status.clone(),
            reservation_id: *reservation_id,
            hold: hold.clone(),
            after_settle_ms: *after_settle_ms,
        })
        .collect()
}

/// Nothing is held or charged for orders that do not exist.
pub(super) fn nothing_for_missing_orders(db: &Snapshot, index: &Index<'_>) -> Vec<Violation> {
    let known: HashSet<String> = db.orders.iter().map(|o| o.id.to_string()).collect();
    let mut violations = Vec::new();
    for (reference, hs) in &index.live_holds_of {
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
    for c in index.charges {
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
    violations
}

/// Every return reached COMPLETED (stock back and refunded): the faults of a run are all
/// transient, so a return resting anywhere else was dropped.
pub(super) fn returns_are_finished(db: &Snapshot) -> Vec<Violation> {
    db.returns
        .iter()
        .filter(|r| r.status != "COMPLETED")
        .map(|r| Violation::ReturnNotFinished {
            return_id: r.id,
            order_id: r.order_id,
            status: r.status.clone(),
        })
        .collect()
}

/// An order's returns agree with the order and with the inventory: only CONFIRMED orders
/// return, never more units of a SKU than bought, each at the order's unit price, each refund
/// the exact sum of its items, and the inventory took back exactly the units (restocked or
/// not) of the completed returns from the order's hold.
pub(super) fn returns_agree(db: &Snapshot) -> Vec<Violation> {
    let mut of_order: BTreeMap<uuid::Uuid, Vec<&super::snapshot::ReturnRow>> = BTreeMap::new();
    for r in &db.returns {
        of_order.entry(r.order_id).or_default().push(r);
    }
    let empty = Lines::new();
    let mut violations = Vec::new();
    for (order_id, returns) in of_order {
        let mut problems = Vec::new();
        let Some(order) = db.orders.iter().find(|o| o.id == order_id) else {
            violations.push(Violation::ReturnMismatch {
                order_id,
                problem: "returns of an order that does not exist".to_owned(),
            });
            continue;
        };
        if order.status != "CONFIRMED" {
            problems.push(format!("returns of a {} order", order.status));
        }
        let bought = db.items_of.get(&order_id).unwrap_or(&empty);
        let prices = db.prices_of.get(&order_id);
        let mut asked: Lines = Lines::new();
        let mut completed = super::snapshot::Returned::new();
        for r in &returns {
            let items = db.return_items.get(&r.id).map(Vec::as_slice).unwrap_or_default();
            let mut value = 0i64;
            for item in items {
                *asked.entry(item.sku.clone()).or_default() += item.quantity;
                value += item.quantity * item.unit_price_minor;
                let price = prices.and_then(|p| p.get(&item.sku));
                if price != Some(&item.unit_price_minor) {
                    problems.push(format!(
                        "return {} prices {} at {} but the order at {price:?}",
                        r.id, item.sku, item.unit_price_minor
                    ));
                }
                if r.status == "COMPLETED" {
                    *completed.entry((item.sku.clone(), item.restock)).or_default() +=
                        item.quantity;
                }
            }
            if value != r.refund_amount_minor {
                problems.push(format!(
                    "return {} refunds {} but its items come to {value}",
                    r.id, r.refund_amount_minor
                ));
            }
        }
        for (sku, quantity) in &asked {
            let had = bought.get(sku).copied().unwrap_or(0);
            if *quantity > had {
                problems.push(format!("{quantity} units of {sku} returned, {had} bought"));
            }
        }
        let taken_back = order
            .reservation_id
            .and_then(|hold| db.stock_returned.get(&hold))
            .cloned()
            .unwrap_or_default();
        if taken_back != completed {
            problems.push(format!(
                "the inventory took back {taken_back:?} but the completed returns are {completed:?}"
            ));
        }
        violations.extend(
            problems.into_iter().map(|problem| Violation::ReturnMismatch { order_id, problem }),
        );
    }
    violations
}

/// Money adds up over the whole run: what the payment kept (successful charges minus their
/// refunds) = the CONFIRMED orders' totals minus their completed returns' refunds.
pub(super) fn money_adds_up(db: &Snapshot, index: &Index<'_>) -> Vec<Violation> {
    let kept: i64 = index
        .charges
        .iter()
        .filter(|c| c.succeeded())
        .map(|c| c.amount_minor - c.refunded_minor)
        .sum();
    let confirmed: i64 =
        db.orders.iter().filter(|o| o.status == "CONFIRMED").map(|o| o.total_amount_minor).sum();
    let returned: i64 =
        db.returns.iter().filter(|r| r.status == "COMPLETED").map(|r| r.refund_amount_minor).sum();
    let expected = confirmed - returned;
    if kept == expected { Vec::new() } else { vec![Violation::MoneyDrift { kept, expected }] }
}
