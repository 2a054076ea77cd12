//! Folding a service's events, in position order, into the final states they describe, noting
//! every event that contradicts the ones before it (a status change of something never
//! created, created twice, or moving from a status the events never left it in).

use proto::events::v1::Event;
use proto::events::v1::event::Payload;

use super::states::{InventoryState, Levels, OrderState, OrderStatus};
use super::{INVENTORY, ORDERS};
use crate::invariants::Violation;

/// The inventory's final stock levels and hold statuses as `events` describe them, with every
/// contradiction among them.
pub fn fold_inventory(events: &[Event]) -> (InventoryState, Vec<Violation>) {
    let mut state = InventoryState::default();
    let mut violations = Vec::new();
    let mut contradiction = |e: &Event, subject: String, problem: String| {
        violations.push(Violation::EventReplayMismatch {
            service: INVENTORY,
            subject,
            problem: format!("{} at position {}: {problem}", e.r#type, e.position),
        });
    };
    for e in events {
        match &e.payload {
            Some(Payload::StockChanged(s)) => {
                let levels = Levels { on_hand: s.on_hand, reserved: s.reserved };
                state.stock.insert(format!("{}/{}", s.sku, s.warehouse_id), levels);
            }
            Some(Payload::ReservationChanged(r)) => {
                let subject = format!("hold {}", r.reservation_id);
                let before = state.holds.insert(r.reservation_id.clone(), r.status.clone());
                match (e.r#type == "reservation.created", before) {
                    (true, Some(was)) => {
                        contradiction(e, subject, format!("created again (was {was})"))
                    }
                    (false, None) => {
                        contradiction(e, subject, "no reservation.created before it".into())
                    }
                    _ => {}
                }
            }
            // Its levels come in the stock.changed events of the same change.
            Some(Payload::StockReturned(_)) => {}
            other => contradiction(
                e,
                format!("event {}", e.aggregate_id),
                format!("not an inventory payload: {other:?}"),
            ),
        }
    }
    (state, violations)
}

/// The order service's final order and return statuses as `events` describe them, with every
/// contradiction among them.
pub fn fold_orders(events: &[Event]) -> (OrderState, Vec<Violation>) {
    let mut state = OrderState::default();
    let mut violations = Vec::new();
    let mut contradiction = |e: &Event, subject: String, problem: String| {
        violations.push(Violation::EventReplayMismatch {
            service: ORDERS,
            subject,
            problem: format!("{} at position {}: {problem}", e.r#type, e.position),
        });
    };
    for e in events {
        match &e.payload {
            Some(Payload::OrderCreated(c)) => {
                let created =
                    OrderStatus { status: c.status.clone(), payment_status: String::new() };
                if let Some(was) = state.orders.insert(c.order_id.clone(), created) {
                    contradiction(
                        e,
                        format!("order {}", c.order_id),
                        format!("created again (was {was:?})"),
                    );
                }
            }
            Some(Payload::OrderStatusChanged(s)) => {
                let subject = format!("order {}", s.order_id);
                let now = OrderStatus {
                    status: s.status.clone(),
                    payment_status: s.payment_status.clone(),
                };
                match state.orders.insert(s.order_id.clone(), now) {
                    None => contradiction(e, subject, "no order.created before it".into()),
                    // Each change says what it changed from: the events before must have left
                    // exactly that, or one went missing or came out of order.
                    Some(was)
                        if was.status != s.previous_status
                            || was.payment_status != s.previous_payment_status =>
                    {
                        contradiction(
                            e,
                            subject,
                            format!(
                                "changes from {}/{:?}, but the events before left {}/{:?}",
                                s.previous_status,
                                s.previous_payment_status,
                                was.status,
                                was.payment_status
                            ),
                        )
                    }
                    Some(_) => {}
                }
                // CreateOrder removed the order its first reserve refused: gone from the
                // database too.
                if e.r#type == "order.withdrawn" {
                    state.orders.remove(&s.order_id);
                }
            }
            Some(Payload::OrderReturnChanged(r)) => {
                let subject = format!("return {}", r.return_id);
                let before = state.returns.insert(r.return_id.clone(), r.status.clone());
                match (e.r#type == "order_return.created", before) {
                    (true, Some(was)) => {
                        contradiction(e, subject, format!("created again (was {was})"))
                    }
                    (false, None) => {
                        contradiction(e, subject, "no order_return.created before it".into())
                    }
                    _ => {}
                }
            }
            other => contradiction(
                e,
                format!("event {}", e.aggregate_id),
                format!("not an order payload: {other:?}"),
            ),
        }
    }
    (state, violations)
}
