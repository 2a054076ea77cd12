//! The event replay check: each service's event log, folded in position order, must lead to
//! exactly the final state its database holds. Per stock row the last `stock.changed` gives
//! on_hand and reserved; per hold the last `reservation.*` its status; per order the last
//! `order.*` its status and payment status (`order.created` gives PENDING, no payment); per
//! return the last `order_return.*` its status. A row the events never name, a row the
//! database lacks, and a different value are each a [`Violation::EventReplayMismatch`].
//!
//! The database side is read in one snapshot per service with its outbox empty
//! ([`read_final`]), so the snapshot's head position covers every change it shows; the
//! events are folded through that head only, whatever a consumer received after it.

mod fold;
mod states;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Debug;

use proto::events::v1::Event;

use super::Violation;
pub use fold::{fold_inventory, fold_orders};
pub use states::{Final, InventoryState, Levels, OrderState, OrderStatus, read_final};

/// The inventory service's name in violations.
pub const INVENTORY: &str = "inventory";
/// The order service's name in violations.
pub const ORDERS: &str = "order";

/// Folds `inventory` and `orders` (each service's events in position order) through the heads
/// of `db` and compares the result with `db`: every contradiction within the events and every
/// difference from the database, as violations.
pub fn check(inventory: &[Event], orders: &[Event], db: &Final) -> Vec<Violation> {
    let (replayed_inventory, mut violations) =
        fold_inventory(through(inventory, db.inventory_head));
    let (replayed_orders, order_violations) = fold_orders(through(orders, db.orders_head));
    violations.extend(order_violations);
    let inv = &db.inventory;
    compare(INVENTORY, "stock row", &replayed_inventory.stock, &inv.stock, &mut violations);
    compare(INVENTORY, "hold", &replayed_inventory.holds, &inv.holds, &mut violations);
    let ord = &db.orders;
    compare(ORDERS, "order", &replayed_orders.orders, &ord.orders, &mut violations);
    compare(ORDERS, "return", &replayed_orders.returns, &ord.returns, &mut violations);
    violations
}

/// The prefix of `events` (in position order) up to and including position `head`.
fn through(events: &[Event], head: u64) -> &[Event] {
    &events[..events.partition_point(|e| e.position <= head)]
}

/// Every key of `replayed` or `db` whose value differs (or that only one side has), as a
/// mismatch about `what <key>`.
fn compare<V: PartialEq + Debug>(
    service: &'static str,
    what: &str,
    replayed: &BTreeMap<String, V>,
    db: &BTreeMap<String, V>,
    out: &mut Vec<Violation>,
) {
    let mismatch = |key: &str, problem: String| Violation::EventReplayMismatch {
        service,
        subject: format!("{what} {key}"),
        problem,
    };
    for (key, held) in db {
        match replayed.get(key) {
            None => {
                out.push(mismatch(key, format!("the database holds {held:?}, no event names it")))
            }
            Some(left) if left != held => out.push(mismatch(
                key,
                format!("the events leave {left:?}, the database holds {held:?}"),
            )),
            Some(_) => {}
        }
    }
    for (key, left) in replayed {
        if !db.contains_key(key) {
            out.push(mismatch(
                key,
                format!("the events leave {left:?}, the database has no such row"),
            ));
        }
    }
}
