//! An event as one table line: position, type, aggregate id, occurred_at and a short summary
//! of its payload. The columns have fixed widths (a stream cannot size them ahead); a longer
//! value pushes the rest of its line to the right.

use pb::event::Payload;
use proto::events::v1 as pb;

use crate::table::{Align, fixed_line, money, or_dash};

/// Column widths: positions to 8 digits, the longest type (`order.payment_status_changed`),
/// a UUID, an RFC 3339 time with microseconds.
const WIDTHS: [usize; 4] = [8, 28, 36, 27];

/// The header line, printed once before the first event.
pub fn header() -> String {
    line_of(["POSITION", "TYPE", "AGGREGATE", "OCCURRED_AT", "SUMMARY"])
}

/// The event as one line (ending in a newline).
pub fn event_line(e: &pb::Event) -> String {
    let occurred_at = e.occurred_at.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
    let summary = e.payload.as_ref().map_or_else(|| "-".to_owned(), summary);
    line_of([&e.position.to_string(), &e.r#type, &e.aggregate_id, &occurred_at, &summary])
}

fn line_of(cells: [&str; 5]) -> String {
    let [position, kind, aggregate, occurred_at, summary] = cells;
    fixed_line(&[
        (position, WIDTHS[0], Align::Right),
        (kind, WIDTHS[1], Align::Left),
        (aggregate, WIDTHS[2], Align::Left),
        (occurred_at, WIDTHS[3], Align::Left),
        (summary, 0, Align::Left),
    ])
}

/// What the payload says, short: the levels of a stock row (stock.changed and stock.low, with
/// its policy when it has one), a status change with its reason, the lines of a hold or a
/// return (`SKU=QTY@WAREHOUSE`, as `reserve` takes them).
pub fn summary(payload: &Payload) -> String {
    match payload {
        Payload::StockChanged(p) => stock_levels(p),
        Payload::ReservationChanged(p) => {
            let lines =
                p.lines.iter().map(|l| format!("{}={}@{}", l.sku, l.quantity, l.warehouse_id));
            with_lines(format!("{} {} {}", p.status, p.reference_type, p.reference_id), lines)
        }
        Payload::StockReturned(p) => {
            let lines = p.lines.iter().map(|l| {
                let restock = if l.restocked { "" } else { ":no-restock" };
                format!("{}={}@{}{restock}", l.sku, l.quantity, l.warehouse_id)
            });
            with_reason(with_lines(format!("hold {}", p.reservation_id), lines), &p.reason)
        }
        Payload::OrderCreated(p) => {
            let lines = p.lines.iter().map(|l| {
                let sku = if l.sku.is_empty() { &l.product_id } else { &l.sku };
                format!("{sku}={}", l.quantity)
            });
            let head = format!(
                "{} user {} {}",
                p.status,
                p.user_id,
                money(p.total_amount_minor, &p.currency)
            );
            with_lines(head, lines)
        }
        Payload::OrderStatusChanged(p) => {
            let mut changes = Vec::new();
            if p.status != p.previous_status {
                changes.push(format!("{} -> {}", or_dash(&p.previous_status), or_dash(&p.status)));
            }
            if p.payment_status != p.previous_payment_status {
                changes.push(format!(
                    "payment {} -> {}",
                    or_dash(&p.previous_payment_status),
                    or_dash(&p.payment_status)
                ));
            }
            if changes.is_empty() {
                changes.push(or_dash(&p.status).to_owned());
            }
            with_reason(changes.join(", "), &p.reason)
        }
        Payload::OrderReturnChanged(p) => {
            let head = format!(
                "{} order {} refund {}",
                p.status,
                p.order_id,
                money(p.refund_amount_minor, &p.currency)
            );
            with_reason(head, &p.reason)
        }
    }
}

/// `on_hand=N reserved=N available=N`, then `safety_stock=N` and `low_stock_threshold=N`
/// when they are not 0 (a row without a policy reads as before policies existed).
fn stock_levels(p: &pb::StockChanged) -> String {
    let mut text =
        format!("on_hand={} reserved={} available={}", p.on_hand, p.reserved, p.available);
    for (name, value) in
        [("safety_stock", p.safety_stock), ("low_stock_threshold", p.low_stock_threshold)]
    {
        if value != 0 {
            text.push_str(&format!(" {name}={value}"));
        }
    }
    text
}

/// `head: line line ...`, or `head` alone without lines.
fn with_lines(head: String, lines: impl Iterator<Item = String>) -> String {
    let lines: Vec<String> = lines.collect();
    if lines.is_empty() { head } else { format!("{head}: {}", lines.join(" ")) }
}

/// `text (reason)`, or `text` alone without a reason.
fn with_reason(text: String, reason: &str) -> String {
    if reason.is_empty() { text } else { format!("{text} ({reason})") }
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    #[test]
    fn a_stock_event_shows_its_levels_under_the_header() {
        let e = pb::Event {
            position: 12,
            r#type: "stock.changed".into(),
            aggregate_id: "MUG/default".into(),
            occurred_at: Some(Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            payload: Some(Payload::StockChanged(pb::StockChanged {
                on_hand: 10,
                reserved: 3,
                available: 7,
                ..Default::default()
            })),
        };
        let text = format!("{}{}", header(), event_line(&e));
        assert_eq!(
            text,
            "\
POSITION  TYPE                          AGGREGATE                             OCCURRED_AT                  SUMMARY
      12  stock.changed                 MUG/default                           2023-11-14T22:13:20Z         on_hand=10 reserved=3 available=7
"
        );
    }

    #[test]
    fn stock_low_reads_as_stock_changed_with_the_policy_when_set() {
        let e = pb::Event {
            position: 13,
            r#type: "stock.low".into(),
            aggregate_id: "MUG/east".into(),
            occurred_at: Some(Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            payload: Some(Payload::StockChanged(pb::StockChanged {
                sku: "MUG".into(),
                warehouse_id: "east".into(),
                on_hand: 10,
                reserved: 2,
                available: 3,
                safety_stock: 5,
                low_stock_threshold: 4,
                backorder_limit: 0,
            })),
        };
        assert_eq!(
            event_line(&e),
            "      13  stock.low                     MUG/east                              \
             2023-11-14T22:13:20Z         on_hand=10 reserved=2 available=3 safety_stock=5 \
             low_stock_threshold=4\n"
        );
        let levels = |safety_stock, low_stock_threshold| {
            summary(&Payload::StockChanged(pb::StockChanged {
                on_hand: 10,
                available: 10 - safety_stock,
                safety_stock,
                low_stock_threshold,
                ..Default::default()
            }))
        };
        assert_eq!(levels(0, 0), "on_hand=10 reserved=0 available=10");
        assert_eq!(levels(2, 0), "on_hand=10 reserved=0 available=8 safety_stock=2");
        assert_eq!(levels(0, 12), "on_hand=10 reserved=0 available=10 low_stock_threshold=12");
    }

    #[test]
    fn a_status_change_shows_from_to_and_why() {
        let change = |previous: &str, status: &str, payment: (&str, &str), reason: &str| {
            summary(&Payload::OrderStatusChanged(pb::OrderStatusChanged {
                previous_status: previous.into(),
                status: status.into(),
                previous_payment_status: payment.0.into(),
                payment_status: payment.1.into(),
                reason: reason.into(),
                ..Default::default()
            }))
        };
        assert_eq!(
            change("PENDING", "CONFIRMED", ("SUCCEEDED", "SUCCEEDED"), "paid"),
            "PENDING -> CONFIRMED (paid)"
        );
        assert_eq!(
            change("RESERVED", "CONFIRMED", ("", "SUCCEEDED"), ""),
            "RESERVED -> CONFIRMED, payment - -> SUCCEEDED"
        );
        assert_eq!(
            change("CONFIRMED", "CONFIRMED", ("SUCCEEDED", "REFUNDED"), ""),
            "payment SUCCEEDED -> REFUNDED"
        );
    }

    #[test]
    fn holds_returns_and_orders_list_their_lines() {
        let hold = Payload::ReservationChanged(pb::ReservationChanged {
            reference_type: "ORDER".into(),
            reference_id: "o-1".into(),
            status: "PENDING".into(),
            lines: vec![pb::ReservationLine {
                sku: "MUG".into(),
                warehouse_id: "east".into(),
                quantity: 2,
            }],
            ..Default::default()
        });
        assert_eq!(summary(&hold), "PENDING ORDER o-1: MUG=2@east");
        let returned = Payload::StockReturned(pb::StockReturned {
            reservation_id: "h1".into(),
            lines: vec![
                pb::ReturnedLine {
                    sku: "MUG".into(),
                    warehouse_id: "default".into(),
                    quantity: 1,
                    restocked: true,
                },
                pb::ReturnedLine {
                    sku: "MUG".into(),
                    warehouse_id: "default".into(),
                    quantity: 1,
                    restocked: false,
                },
            ],
            reason: "dented".into(),
            ..Default::default()
        });
        assert_eq!(summary(&returned), "hold h1: MUG=1@default MUG=1@default:no-restock (dented)");
        let created = Payload::OrderCreated(pb::OrderCreated {
            user_id: "u1".into(),
            status: "PENDING".into(),
            currency: "EUR".into(),
            total_amount_minor: 2500,
            lines: vec![pb::OrderLine {
                sku: "MUG-CLASSIC".into(),
                quantity: 2,
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(summary(&created), "PENDING user u1 25.00 EUR: MUG-CLASSIC=2");
    }
}
