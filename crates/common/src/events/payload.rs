//! The outbox triggers' JSON payloads as `events.v1` messages.

use chrono::{DateTime, Utc};
use proto::events::v1 as pb;
use serde::Deserialize;

use super::StoredEvent;

/// Why a stored payload is no event (a trigger and this file disagree: a bug, not input).
#[derive(Debug, thiserror::Error)]
#[error("event {position} ({event_type}): payload does not match its type: {reason}")]
pub struct PayloadError {
    position: u64,
    event_type: String,
    reason: String,
}

/// The wire form of `stored`.
pub fn to_event(stored: &StoredEvent) -> Result<pb::Event, PayloadError> {
    let fail = |reason: String| PayloadError {
        position: stored.position,
        event_type: stored.event_type.clone(),
        reason,
    };
    let json = |err: serde_json::Error| fail(err.to_string());
    let payload = match stored.event_type.as_str() {
        "stock.changed" | "stock.low" => {
            let p: Stock = serde_json::from_str(&stored.payload).map_err(json)?;
            let free = i64::from(p.on_hand) - i64::from(p.reserved) - i64::from(p.safety_stock)
                + i64::from(p.backorder_limit);
            pb::event::Payload::StockChanged(pb::StockChanged {
                available: i32::try_from(free.max(0)).unwrap_or(i32::MAX),
                sku: p.sku,
                warehouse_id: p.warehouse_id,
                on_hand: p.on_hand,
                reserved: p.reserved,
                safety_stock: p.safety_stock,
                low_stock_threshold: p.low_stock_threshold,
                backorder_limit: p.backorder_limit,
            })
        }
        "stock.returned" => {
            let p: Returned = serde_json::from_str(&stored.payload).map_err(json)?;
            pb::event::Payload::StockReturned(pb::StockReturned {
                return_id: p.return_id,
                reservation_id: p.reservation_id,
                reason: p.reason,
                lines: p
                    .lines
                    .into_iter()
                    .map(|l| pb::ReturnedLine {
                        sku: l.sku,
                        warehouse_id: l.warehouse_id,
                        quantity: l.quantity,
                        restocked: l.restocked,
                    })
                    .collect(),
            })
        }
        t if t.starts_with("reservation.") => {
            let p: Hold = serde_json::from_str(&stored.payload).map_err(json)?;
            pb::event::Payload::ReservationChanged(pb::ReservationChanged {
                reservation_id: p.reservation_id,
                reference_type: p.reference_type,
                reference_id: p.reference_id,
                status: p.status,
                expires_at: match p.expires_at.as_deref().map(DateTime::parse_from_rfc3339) {
                    Some(Ok(at)) => Some(timestamp(at.with_timezone(&Utc))),
                    Some(Err(err)) => return Err(fail(format!("expires_at: {err}"))),
                    None => None,
                },
                lines: p
                    .lines
                    .into_iter()
                    .map(|l| pb::ReservationLine {
                        sku: l.sku,
                        warehouse_id: l.warehouse_id,
                        quantity: l.quantity,
                    })
                    .collect(),
            })
        }
        "order.created" => {
            let p: Created = serde_json::from_str(&stored.payload).map_err(json)?;
            pb::event::Payload::OrderCreated(pb::OrderCreated {
                order_id: p.order_id,
                user_id: p.user_id,
                status: p.status,
                currency: p.currency,
                total_amount_minor: p.total_amount_minor,
                lines: p
                    .lines
                    .into_iter()
                    .map(|l| pb::OrderLine {
                        sku: l.sku,
                        quantity: l.quantity,
                        unit_price_minor: l.unit_price_minor,
                        product_id: l.product_id,
                        variant_id: l.variant_id,
                    })
                    .collect(),
            })
        }
        t if t.starts_with("order.") => {
            let p: StatusChanged = serde_json::from_str(&stored.payload).map_err(json)?;
            pb::event::Payload::OrderStatusChanged(pb::OrderStatusChanged {
                order_id: p.order_id,
                previous_status: p.previous_status,
                status: p.status,
                reason: p.reason,
                payment_status: p.payment_status,
                previous_payment_status: p.previous_payment_status,
            })
        }
        t if t.starts_with("order_return.") => {
            let p: ReturnChanged = serde_json::from_str(&stored.payload).map_err(json)?;
            pb::event::Payload::OrderReturnChanged(pb::OrderReturnChanged {
                return_id: p.return_id,
                order_id: p.order_id,
                status: p.status,
                reason: p.reason,
                refund_amount_minor: p.refund_amount_minor,
                currency: p.currency,
            })
        }
        other => return Err(fail(format!("unknown type {other:?}"))),
    };
    Ok(pb::Event {
        position: stored.position,
        r#type: stored.event_type.clone(),
        aggregate_id: stored.aggregate_id.clone(),
        occurred_at: Some(timestamp(stored.occurred_at)),
        payload: Some(payload),
    })
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[derive(Deserialize)]
struct Stock {
    sku: String,
    warehouse_id: String,
    on_hand: i32,
    reserved: i32,
    // Absent from events written before stock policies (and from a new row's first event):
    // a row without a policy.
    #[serde(default)]
    safety_stock: i32,
    #[serde(default)]
    low_stock_threshold: i32,
    #[serde(default)]
    backorder_limit: i32,
}

#[derive(Deserialize)]
struct HoldLine {
    sku: String,
    warehouse_id: String,
    quantity: i32,
}

#[derive(Deserialize)]
struct Hold {
    reservation_id: String,
    reference_type: String,
    reference_id: String,
    status: String,
    /// As PostgreSQL writes a timestamptz into JSON (RFC 3339).
    expires_at: Option<String>,
    #[serde(default)]
    lines: Vec<HoldLine>,
}

#[derive(Deserialize)]
struct ReturnedLine {
    sku: String,
    warehouse_id: String,
    quantity: i32,
    restocked: bool,
}

#[derive(Deserialize)]
struct Returned {
    return_id: String,
    reservation_id: String,
    #[serde(default)]
    reason: String,
    lines: Vec<ReturnedLine>,
}

#[derive(Deserialize)]
struct OrderLine {
    sku: String,
    quantity: i32,
    unit_price_minor: i64,
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    variant_id: String,
}

#[derive(Deserialize)]
struct Created {
    order_id: String,
    user_id: String,
    status: String,
    currency: String,
    total_amount_minor: i64,
    lines: Vec<OrderLine>,
}

#[derive(Deserialize)]
struct StatusChanged {
    order_id: String,
    previous_status: String,
    status: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    payment_status: String,
    #[serde(default)]
    previous_payment_status: String,
}

#[derive(Deserialize)]
struct ReturnChanged {
    return_id: String,
    order_id: String,
    status: String,
    #[serde(default)]
    reason: String,
    refund_amount_minor: i64,
    currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(event_type: &str, payload: &str) -> StoredEvent {
        StoredEvent {
            position: 7,
            event_type: event_type.to_owned(),
            aggregate_id: "A".to_owned(),
            payload: payload.to_owned(),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 5).unwrap_or_default(),
        }
    }

    #[test]
    fn stock_changed_computes_available() {
        let event = to_event(&stored(
            "stock.changed",
            r#"{"sku":"W","warehouse_id":"DE","on_hand":10,"reserved":3}"#,
        ))
        .map_err(|e| e.to_string());
        let Ok(pb::Event { payload: Some(pb::event::Payload::StockChanged(s)), position, .. }) =
            event
        else {
            panic!("not a stock change: {event:?}");
        };
        assert_eq!((position, s.on_hand, s.reserved, s.available), (7, 10, 3, 7));
    }

    #[test]
    fn hold_timestamps_as_postgres_writes_them_parse() {
        let event = to_event(&stored(
            "reservation.created",
            r#"{"reservation_id":"r","reference_type":"ORDER","reference_id":"o","status":"PENDING",
                "expires_at":"2026-12-02T18:00:00.123456+00:00",
                "lines":[{"sku":"W","warehouse_id":"DE","quantity":2}]}"#,
        ));
        let Ok(pb::Event { payload: Some(pb::event::Payload::ReservationChanged(r)), .. }) = event
        else {
            panic!("not a hold event: {event:?}");
        };
        assert_eq!(r.lines.len(), 1);
        assert_eq!(r.expires_at.map(|t| t.nanos), Some(123_456_000));
    }

    #[test]
    fn a_payload_of_another_shape_is_an_error_naming_the_event() {
        let err = to_event(&stored("order.created", r#"{"sku":"W"}"#)).err();
        assert!(err.is_some_and(|e| e.to_string().contains("event 7 (order.created)")));
    }
}
