//! `events.v1.Event` in the proto3 JSON mapping, as the other `--json` output: lowerCamelCase
//! names, 64-bit integers as strings, timestamps as RFC 3339, the `payload` oneof as the one
//! field it holds (`stockChanged`, `orderStatusChanged`, ...), every field printed.

use pb::event::Payload;
use prost_types::Timestamp;
use proto::events::v1 as pb;
use serde_json::{Map, Value, json};

/// The event as one JSON object.
pub fn event(e: &pb::Event) -> Value {
    let mut object = Map::new();
    object.insert("position".into(), json!(e.position.to_string()));
    object.insert("type".into(), json!(e.r#type));
    object.insert("aggregateId".into(), json!(e.aggregate_id));
    object.insert("occurredAt".into(), timestamp(e.occurred_at.as_ref()));
    if let Some(payload) = &e.payload {
        let (name, value) = payload_field(payload);
        object.insert(name.into(), value);
    }
    Value::Object(object)
}

/// The event as one NDJSON line (ending in a newline).
pub fn event_line(e: &pb::Event) -> String {
    // A Value always serializes; the fallback only keeps the code panic-free.
    let mut line = serde_json::to_string(&event(e)).unwrap_or_default();
    line.push('\n');
    line
}

fn timestamp(t: Option<&Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.to_string()))
}

/// The oneof's JSON name and value.
fn payload_field(payload: &Payload) -> (&'static str, Value) {
    match payload {
        Payload::StockChanged(p) => (
            "stockChanged",
            json!({
                "sku": p.sku,
                "warehouseId": p.warehouse_id,
                "onHand": p.on_hand,
                "reserved": p.reserved,
                "available": p.available,
                "safetyStock": p.safety_stock,
                "lowStockThreshold": p.low_stock_threshold,
            }),
        ),
        Payload::ReservationChanged(p) => (
            "reservationChanged",
            json!({
                "reservationId": p.reservation_id,
                "referenceType": p.reference_type,
                "referenceId": p.reference_id,
                "status": p.status,
                "expiresAt": timestamp(p.expires_at.as_ref()),
                "lines": p.lines.iter().map(|l| json!({
                    "sku": l.sku, "warehouseId": l.warehouse_id, "quantity": l.quantity,
                })).collect::<Vec<_>>(),
            }),
        ),
        Payload::StockReturned(p) => (
            "stockReturned",
            json!({
                "returnId": p.return_id,
                "reservationId": p.reservation_id,
                "lines": p.lines.iter().map(|l| json!({
                    "sku": l.sku,
                    "warehouseId": l.warehouse_id,
                    "quantity": l.quantity,
                    "restocked": l.restocked,
                })).collect::<Vec<_>>(),
                "reason": p.reason,
            }),
        ),
        Payload::OrderCreated(p) => (
            "orderCreated",
            json!({
                "orderId": p.order_id,
                "userId": p.user_id,
                "status": p.status,
                "currency": p.currency,
                "totalAmountMinor": p.total_amount_minor.to_string(),
                "lines": p.lines.iter().map(|l| json!({
                    "sku": l.sku,
                    "quantity": l.quantity,
                    "unitPriceMinor": l.unit_price_minor.to_string(),
                    "productId": l.product_id,
                    "variantId": l.variant_id,
                })).collect::<Vec<_>>(),
            }),
        ),
        Payload::OrderStatusChanged(p) => (
            "orderStatusChanged",
            json!({
                "orderId": p.order_id,
                "previousStatus": p.previous_status,
                "status": p.status,
                "reason": p.reason,
                "paymentStatus": p.payment_status,
                "previousPaymentStatus": p.previous_payment_status,
            }),
        ),
        Payload::OrderReturnChanged(p) => (
            "orderReturnChanged",
            json!({
                "returnId": p.return_id,
                "orderId": p.order_id,
                "status": p.status,
                "reason": p.reason,
                "refundAmountMinor": p.refund_amount_minor.to_string(),
                "currency": p.currency,
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_in_the_proto3_json_mapping() {
        let e = pb::Event {
            position: 7,
            r#type: "stock.changed".into(),
            aggregate_id: "MUG/default".into(),
            occurred_at: Some(Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            payload: Some(Payload::StockChanged(pb::StockChanged {
                sku: "MUG".into(),
                warehouse_id: "default".into(),
                on_hand: 10,
                reserved: 3,
                available: 7,
                ..Default::default()
            })),
        };
        let line = event_line(&e);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with("}\n"), "{line}");
        let parsed: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(
            parsed,
            json!({
                "position": "7", "type": "stock.changed", "aggregateId": "MUG/default",
                "occurredAt": "2023-11-14T22:13:20Z",
                "stockChanged": {
                    "sku": "MUG", "warehouseId": "default",
                    "onHand": 10, "reserved": 3, "available": 7,
                    "safetyStock": 0, "lowStockThreshold": 0,
                },
            })
        );
    }

    #[test]
    fn stock_low_carries_the_stock_changed_payload_with_its_policy() {
        let e = pb::Event {
            position: 8,
            r#type: "stock.low".into(),
            aggregate_id: "MUG/east".into(),
            occurred_at: None,
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
            event(&e),
            json!({
                "position": "8", "type": "stock.low", "aggregateId": "MUG/east",
                "occurredAt": null,
                "stockChanged": {
                    "sku": "MUG", "warehouseId": "east",
                    "onHand": 10, "reserved": 2, "available": 3,
                    "safetyStock": 5, "lowStockThreshold": 4,
                },
            })
        );
    }

    #[test]
    fn money_is_a_string_and_a_missing_time_null() {
        let e = pb::Event {
            position: 1,
            r#type: "order_return.completed".into(),
            payload: Some(Payload::OrderReturnChanged(pb::OrderReturnChanged {
                refund_amount_minor: 666,
                currency: "EUR".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let v = event(&e);
        assert_eq!(v["occurredAt"], Value::Null);
        assert_eq!(v["orderReturnChanged"]["refundAmountMinor"], json!("666"));
        assert!(event(&pb::Event::default()).get("stockChanged").is_none());
    }
}
