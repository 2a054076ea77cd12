//! The fold and the comparison on hand-made event logs (no database).

use proto::events::v1::event::Payload;
use proto::events::v1::{
    Event, OrderCreated, OrderReturnChanged, OrderStatusChanged, ReservationChanged, StockChanged,
};

use super::*;

fn event(position: u64, kind: &str, payload: Payload) -> Event {
    Event { position, r#type: kind.into(), payload: Some(payload), ..Default::default() }
}

fn stock(position: u64, sku: &str, on_hand: i32, reserved: i32) -> Event {
    let changed = StockChanged {
        sku: sku.into(),
        warehouse_id: "main".into(),
        on_hand,
        reserved,
        available: on_hand - reserved,
        ..Default::default()
    };
    event(position, "stock.changed", Payload::StockChanged(changed))
}

fn hold(position: u64, id: &str, status: &str) -> Event {
    let kind = if status == "PENDING" {
        "reservation.created".into()
    } else {
        format!("reservation.{}", status.to_lowercase())
    };
    let changed = ReservationChanged {
        reservation_id: id.into(),
        status: status.into(),
        ..Default::default()
    };
    event(position, &kind, Payload::ReservationChanged(changed))
}

fn created(position: u64, id: &str) -> Event {
    let created =
        OrderCreated { order_id: id.into(), status: "PENDING".into(), ..Default::default() };
    event(position, "order.created", Payload::OrderCreated(created))
}

fn moved(position: u64, id: &str, from: (&str, &str), to: (&str, &str)) -> Event {
    let kind = if from.0 == to.0 {
        "order.payment_status_changed".into()
    } else {
        format!("order.{}", to.0.to_lowercase())
    };
    let changed = OrderStatusChanged {
        order_id: id.into(),
        previous_status: from.0.into(),
        status: to.0.into(),
        previous_payment_status: from.1.into(),
        payment_status: to.1.into(),
        ..Default::default()
    };
    event(position, &kind, Payload::OrderStatusChanged(changed))
}

fn give_back(position: u64, id: &str, status: &str) -> Event {
    let kind = if status == "REQUESTED" {
        "order_return.created".into()
    } else {
        format!("order_return.{}", status.to_lowercase())
    };
    let changed =
        OrderReturnChanged { return_id: id.into(), status: status.into(), ..Default::default() };
    event(position, &kind, Payload::OrderReturnChanged(changed))
}

fn order_status(status: &str, payment_status: &str) -> OrderStatus {
    OrderStatus { status: status.into(), payment_status: payment_status.into() }
}

/// A small run: two stock rows, a hold committed, an order confirmed and refunded in part.
fn run() -> (Vec<Event>, Vec<Event>, Final) {
    let inventory = vec![
        stock(1, "A", 10, 0),
        stock(2, "B", 5, 0),
        hold(3, "h1", "PENDING"),
        stock(4, "A", 10, 2),
        hold(5, "h1", "COMMITTED"),
        stock(6, "A", 8, 0),
    ];
    let orders = vec![
        created(1, "o1"),
        moved(2, "o1", ("PENDING", ""), ("RESERVED", "")),
        moved(3, "o1", ("RESERVED", ""), ("CONFIRMED", "SUCCEEDED")),
        give_back(4, "r1", "REQUESTED"),
        give_back(5, "r1", "COMPLETED"),
    ];
    let db = Final {
        inventory: InventoryState {
            stock: [
                ("A/main".into(), Levels { on_hand: 8, reserved: 0 }),
                ("B/main".into(), Levels { on_hand: 5, reserved: 0 }),
            ]
            .into(),
            holds: [("h1".into(), "COMMITTED".into())].into(),
        },
        inventory_head: 6,
        orders: OrderState {
            orders: [("o1".into(), order_status("CONFIRMED", "SUCCEEDED"))].into(),
            returns: [("r1".into(), "COMPLETED".into())].into(),
        },
        orders_head: 5,
    };
    (inventory, orders, db)
}

fn kinds_and_subjects(violations: &[Violation]) -> Vec<(String, String)> {
    violations
        .iter()
        .map(|v| match v {
            Violation::EventReplayMismatch { service, subject, .. } => {
                ((*service).to_owned(), subject.clone())
            }
            other => (other.kind().to_owned(), String::new()),
        })
        .collect()
}

#[test]
fn events_that_lead_to_the_database_pass() {
    let (inventory, orders, db) = run();
    let violations = check(&inventory, &orders, &db);
    assert!(violations.is_empty(), "{}", crate::invariants::report(&violations));
}

#[test]
fn events_after_the_snapshots_head_are_not_folded() {
    let (mut inventory, orders, db) = run();
    // Committed after the database was read: its change is not in the snapshot either.
    inventory.push(stock(7, "B", 4, 0));
    assert!(check(&inventory, &orders, &db).is_empty());
}

#[test]
fn a_skipped_event_is_a_mismatch() {
    let (mut inventory, mut orders, db) = run();
    inventory.remove(5); // A's last levels
    orders.remove(4); // the return's completion
    let found = kinds_and_subjects(&check(&inventory, &orders, &db));
    assert_eq!(
        found,
        [("inventory".into(), "stock row A/main".into()), ("order".into(), "return r1".into())]
    );
}

#[test]
fn rows_on_one_side_only_are_mismatches() {
    let (inventory, orders, mut db) = run();
    db.inventory.stock.insert("C/main".into(), Levels { on_hand: 1, reserved: 0 });
    db.orders.orders.remove("o1");
    let found = kinds_and_subjects(&check(&inventory, &orders, &db));
    assert_eq!(
        found,
        [("inventory".into(), "stock row C/main".into()), ("order".into(), "order o1".into())]
    );
}

#[test]
fn a_status_change_from_a_status_never_reached_is_a_contradiction() {
    let (_, mut orders, _) = run();
    orders.remove(1); // PENDING -> RESERVED went missing
    let (state, violations) = fold_orders(&orders);
    assert_eq!(state.orders["o1"], order_status("CONFIRMED", "SUCCEEDED"));
    assert_eq!(kinds_and_subjects(&violations), [("order".into(), "order o1".into())]);
    assert!(violations[0].to_string().contains("changes from RESERVED"), "{}", violations[0]);
}

#[test]
fn changes_of_what_was_never_created_are_contradictions() {
    let orders =
        [moved(1, "o9", ("PENDING", ""), ("CANCELLED", "")), give_back(2, "r9", "COMPLETED")];
    let (_, violations) = fold_orders(&orders);
    assert_eq!(
        kinds_and_subjects(&violations),
        [("order".into(), "order o9".into()), ("order".into(), "return r9".into())]
    );
    let (_, violations) = fold_inventory(&[
        hold(1, "h9", "EXPIRED"),
        hold(2, "h8", "PENDING"),
        hold(3, "h8", "PENDING"),
    ]);
    assert_eq!(
        kinds_and_subjects(&violations),
        [("inventory".into(), "hold h9".into()), ("inventory".into(), "hold h8".into())]
    );
}

#[test]
fn a_withdrawn_order_leaves_the_folded_state() {
    let mut withdrawn = moved(2, "o7", ("PENDING", ""), ("WITHDRAWN", ""));
    withdrawn.r#type = "order.withdrawn".into();
    let (state, violations) = fold_orders(&[created(1, "o7"), withdrawn]);
    assert!(violations.is_empty(), "{violations:?}");
    assert!(state.orders.is_empty(), "{:?}", state.orders);
}
