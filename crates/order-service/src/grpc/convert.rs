//! Protobuf <-> domain conversion: requests are parsed into commands (naming every offending
//! field), store views are turned into replies. Protobuf types of `order.v1` stop here.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use proto::order::v1 as pb;
use uuid::Uuid;

use crate::domain::commands::{CancelOrder, CreateOrder, Cursor, ListPage, OrderLine};
use crate::domain::resolution::Resolution;
use crate::domain::returns::{ReturnLineRequest, ReturnOrder};
use crate::domain::{
    Currency, FieldViolation, IdempotencyKey, NextAction, OrderId, PageSize, PaymentMethod,
    ProductId, Quantity, UserId, VariantId,
};
use crate::error::OrderError;
use crate::store::{OrderView, ParkedView, ReturnView};

/// Most lines one order may have by default (`MAX_ITEMS_PER_REQUEST`).
pub const MAX_ITEMS: usize = 100;
/// Longest cancel reason kept.
const MAX_REASON_LEN: usize = 500;
/// Reason recorded when a cancel request gives none.
pub const DEFAULT_CANCEL_REASON: &str = "cancelled by request";

/// Collects every violation of a request instead of stopping at the first.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn take<T>(&mut self, r: Result<T, FieldViolation>) -> Option<T> {
        r.map_err(|v| self.0.push(v)).ok()
    }

    fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, OrderError> {
        if !self.0.is_empty() {
            return Err(OrderError::InvalidArgument(self.0));
        }
        value().ok_or_else(|| OrderError::internal("validation lost a value"))
    }
}

/// Parses a CreateOrder request of at most [`MAX_ITEMS`] lines.
pub fn create_order(req: &pb::CreateOrderRequest) -> Result<CreateOrder, OrderError> {
    create_order_limited(req, MAX_ITEMS)
}

/// Parses a CreateOrder request of at most `max_items` lines.
pub fn create_order_limited(
    req: &pb::CreateOrderRequest,
    max_items: usize,
) -> Result<CreateOrder, OrderError> {
    let mut v = Violations::default();
    let user_id = v.take(UserId::parse("user_id", &req.user_id));
    if req.items.is_empty() {
        v.0.push(FieldViolation::new("items", "must contain at least one item"));
    } else if req.items.len() > max_items {
        v.0.push(FieldViolation::new("items", format!("must contain at most {max_items} items")));
    }
    let lines: Vec<Option<OrderLine>> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let product_id =
                v.take(ProductId::parse(&format!("items[{i}].product_id"), &item.product_id));
            let variant_id = match &item.variant_id {
                None => Some(None),
                Some(variant) => {
                    v.take(VariantId::parse(&format!("items[{i}].variant_id"), variant).map(Some))
                }
            };
            let quantity = v.take(Quantity::parse(&format!("items[{i}].quantity"), item.quantity));
            Some(OrderLine {
                product_id: product_id?,
                variant_id: variant_id?,
                quantity: quantity?,
            })
        })
        .collect();
    let currency = v.take(Currency::parse("currency", &req.currency));
    let payment_method = v.take(PaymentMethod::parse("payment_method", &req.payment_method));
    let idempotency_key = if req.idempotency_key.is_empty() {
        Some(None)
    } else {
        v.take(IdempotencyKey::parse("idempotency_key", &req.idempotency_key).map(Some))
    };
    v.finish(|| {
        Some(CreateOrder {
            user_id: user_id?,
            lines: lines.into_iter().collect::<Option<_>>()?,
            currency: currency?,
            payment_method: payment_method?,
            idempotency_key: idempotency_key?,
        })
    })
}

/// Parses the order id of a get or cancel request.
pub fn order_id(value: &str) -> Result<OrderId, OrderError> {
    Ok(OrderId::parse("order_id", value)?)
}

/// Parses a CancelOrder request; an empty reason becomes [`DEFAULT_CANCEL_REASON`].
pub fn cancel_order(req: &pb::CancelOrderRequest) -> Result<CancelOrder, OrderError> {
    let mut v = Violations::default();
    let order_id = v.take(OrderId::parse("order_id", &req.order_id));
    let reason = req.reason.trim();
    if reason.chars().count() > MAX_REASON_LEN {
        v.0.push(FieldViolation::new(
            "reason",
            format!("must be at most {MAX_REASON_LEN} characters"),
        ));
    } else if reason.chars().any(char::is_control) {
        // PostgreSQL text cannot hold NUL; other control characters only garble logs.
        v.0.push(FieldViolation::new("reason", "must not contain control characters"));
    }
    let reason = if reason.is_empty() { DEFAULT_CANCEL_REASON } else { reason };
    v.finish(|| Some(CancelOrder { order_id: order_id?, reason: reason.to_owned() }))
}

/// Longest SKU a return line may name (the catalog's ids are at most this long).
const MAX_SKU_LEN: usize = 128;

/// Parses a ReturnOrder request: the order, its lines (each SKU once; none = everything
/// left), a required reason and a required idempotency key, naming every offending field.
pub fn return_order(req: &pb::ReturnOrderRequest) -> Result<ReturnOrder, OrderError> {
    let mut v = Violations::default();
    let order_id = v.take(OrderId::parse("order_id", &req.order_id));
    if req.items.len() > MAX_ITEMS {
        v.0.push(FieldViolation::new("items", format!("must contain at most {MAX_ITEMS} items")));
    }
    let lines: Vec<Option<ReturnLineRequest>> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("items[{i}].sku");
            let sku = v.take(return_sku(&field, &item.sku));
            if let Some(j) = req.items[..i].iter().position(|earlier| earlier.sku == item.sku) {
                v.0.push(FieldViolation::new(
                    field,
                    format!(
                        "repeats the SKU of items[{j}]: name each SKU once (return damaged and \
                         restockable units of one SKU in two returns)"
                    ),
                ));
            }
            let quantity = v.take(Quantity::parse(&format!("items[{i}].quantity"), item.quantity));
            Some(ReturnLineRequest {
                sku: sku?,
                quantity: quantity?,
                do_not_restock: item.do_not_restock,
            })
        })
        .collect();
    let reason = req.reason.trim();
    if reason.is_empty() {
        v.0.push(FieldViolation::new("reason", "must say why the items come back"));
    } else if reason.chars().count() > MAX_REASON_LEN {
        v.0.push(FieldViolation::new(
            "reason",
            format!("must be at most {MAX_REASON_LEN} characters"),
        ));
    } else if reason.chars().any(char::is_control) {
        v.0.push(FieldViolation::new("reason", "must not contain control characters"));
    }
    let idempotency_key = v.take(IdempotencyKey::parse("idempotency_key", &req.idempotency_key));
    v.finish(|| {
        Some(ReturnOrder {
            order_id: order_id?,
            lines: lines.into_iter().collect::<Option<_>>()?,
            reason: reason.to_owned(),
            idempotency_key: idempotency_key?,
        })
    })
}

/// A return line's SKU: 1 to [`MAX_SKU_LEN`] characters, no whitespace or control characters.
fn return_sku(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    if value.chars().count() > MAX_SKU_LEN {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {MAX_SKU_LEN} characters"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldViolation::new(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A return as the wire shows it.
pub fn order_return(view: ReturnView) -> pb::OrderReturn {
    pb::OrderReturn {
        id: view.id.to_string(),
        order_id: view.order_id.to_string(),
        status: view.status.as_str().to_owned(),
        items: view
            .items
            .into_iter()
            .map(|i| pb::ReturnedItem {
                sku: i.sku,
                quantity: i.quantity,
                do_not_restock: i.do_not_restock,
                unit_price_minor: i.unit_price_minor,
            })
            .collect(),
        refund_amount_minor: view.refund_amount_minor,
        currency: view.currency,
        reason: view.reason,
        status_reason: view.status_reason,
        refund_id: view.refund_id.unwrap_or_default(),
        created_at: Some(timestamp(view.created_at)),
        updated_at: Some(timestamp(view.updated_at)),
    }
}

/// Most parked orders one ListParkedOrders answer carries, and the default.
const MAX_PARKED_PAGE: i32 = 500;
const DEFAULT_PARKED_PAGE: u32 = 50;

/// Parses a ListParkedOrders request: how many to list.
pub fn parked_page(req: &pb::ListParkedOrdersRequest) -> Result<u32, OrderError> {
    match req.page_size {
        0 => Ok(DEFAULT_PARKED_PAGE),
        n if (1..=MAX_PARKED_PAGE).contains(&n) => Ok(n.unsigned_abs()),
        _ => Err(OrderError::InvalidArgument(vec![FieldViolation::new(
            "page_size",
            format!("must be between 0 (default {DEFAULT_PARKED_PAGE}) and {MAX_PARKED_PAGE}"),
        )])),
    }
}

/// Parses a ResolveParkedOrder request: the order, the resolution and the operator's note.
pub fn resolve_parked(
    req: &pb::ResolveParkedOrderRequest,
) -> Result<(OrderId, Resolution, String), OrderError> {
    let mut v = Violations::default();
    let order_id = v.take(OrderId::parse("order_id", &req.order_id));
    let resolution = match pb::Resolution::try_from(req.resolution) {
        Ok(pb::Resolution::Retry) => Some(Resolution::Retry),
        Ok(pb::Resolution::RefundedByHand) => Some(Resolution::RefundedByHand),
        Ok(pb::Resolution::StockSettledByHand) => Some(Resolution::StockSettledByHand),
        Ok(pb::Resolution::Cancelled) => Some(Resolution::Cancelled),
        Ok(pb::Resolution::Unspecified) | Err(_) => {
            v.0.push(FieldViolation::new(
                "resolution",
                "must be RETRY, REFUNDED_BY_HAND, STOCK_SETTLED_BY_HAND or CANCELLED",
            ));
            None
        }
    };
    let note = req.note.trim();
    if note.is_empty() {
        v.0.push(FieldViolation::new("note", "must say what the operator did or found"));
    } else if note.chars().count() > MAX_REASON_LEN {
        v.0.push(FieldViolation::new(
            "note",
            format!("must be at most {MAX_REASON_LEN} characters"),
        ));
    } else if note.chars().any(char::is_control) {
        v.0.push(FieldViolation::new("note", "must not contain control characters"));
    }
    v.finish(|| Some((order_id?, resolution?, note.to_owned())))
}

/// A parked order for ListParkedOrders.
pub fn parked_order(view: OrderView, parked: ParkedView) -> pb::ParkedOrder {
    pb::ParkedOrder {
        order: Some(order(view)),
        next_action: parked.next_action.map(NextAction::as_str).unwrap_or_default().to_owned(),
        last_error: parked.last_error,
        parked_at: Some(timestamp(parked.parked_at)),
        attempts: parked.attempts,
    }
}

/// Parses a ListOrders request; the page token is the (created_at, id) of the last order of
/// the previous page, encoded.
pub fn list_page(req: &pb::ListOrdersRequest) -> Result<ListPage, OrderError> {
    let mut v = Violations::default();
    let user_id = v.take(UserId::parse("user_id", &req.user_id));
    let size = v.take(PageSize::parse("page_size", req.page_size));
    let after = if req.page_token.is_empty() {
        Some(None)
    } else {
        v.take(decode_cursor(&req.page_token).map(Some))
    };
    v.finish(|| Some(ListPage { user_id: user_id?, size: size?, after: after? }))
}

/// The page token that continues after `order`.
pub fn page_token(order: &OrderView) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", order.created_at.timestamp_micros(), order.id))
}

fn decode_cursor(token: &str) -> Result<Cursor, FieldViolation> {
    let bad = || FieldViolation::new("page_token", "is not a token this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let created_at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Cursor { created_at, id })
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// An order as the wire shows it.
pub fn order(view: OrderView) -> pb::Order {
    let refunded_amount_minor = view.refunded_amount_minor();
    pb::Order {
        id: view.id.to_string(),
        user_id: view.user_id,
        status: view.status.as_str().to_owned(),
        items: view
            .items
            .into_iter()
            .map(|i| pb::OrderItem {
                product_id: i.product_id,
                variant_id: i.variant_id,
                sku: i.sku,
                quantity: i.quantity,
                unit_price_minor: i.unit_price_minor,
            })
            .collect(),
        total_amount_minor: view.total_amount_minor,
        currency: view.currency,
        payment_method: view.payment_method,
        payment_status: view.payment_status.as_str().to_owned(),
        inventory_reservation_id: view.reservation_id.map(|r| r.to_string()).unwrap_or_default(),
        status_reason: view.status_reason,
        returns: view.returns.into_iter().map(order_return).collect(),
        refunded_amount_minor,
        backordered: view
            .backordered
            .into_iter()
            .map(|b| pb::BackorderedItem {
                sku: b.sku,
                quantity: b.quantity,
                expected_restock_date: b.expected_restock_date,
            })
            .collect(),
        created_at: Some(timestamp(view.created_at)),
        updated_at: Some(timestamp(view.updated_at)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(err: OrderError) -> Vec<String> {
        match err {
            OrderError::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn create_collects_every_violation() {
        let req = pb::CreateOrderRequest {
            user_id: String::new(),
            items: vec![
                pb::OrderItemInput { product_id: "p".into(), variant_id: None, quantity: 1 },
                pb::OrderItemInput {
                    product_id: String::new(),
                    variant_id: Some(String::new()),
                    quantity: 0,
                },
            ],
            currency: "EURO".into(),
            payment_method: String::new(),
            idempotency_key: "k".repeat(129),
        };
        let got = fields(create_order(&req).unwrap_err());
        for field in [
            "user_id",
            "items[1].product_id",
            "items[1].variant_id",
            "items[1].quantity",
            "currency",
            "payment_method",
            "idempotency_key",
        ] {
            assert!(got.iter().any(|f| f == field), "{got:?} lacks {field}");
        }
        let no_items = pb::CreateOrderRequest {
            user_id: "u".into(),
            currency: "EUR".into(),
            payment_method: "card".into(),
            ..Default::default()
        };
        assert_eq!(fields(create_order(&no_items).unwrap_err()), vec!["items".to_owned()]);
    }

    #[test]
    fn return_collects_every_violation_and_refuses_a_repeated_sku() {
        let item = |sku: &str, quantity| pb::ReturnItemInput {
            sku: sku.into(),
            quantity,
            do_not_restock: false,
        };
        let req = pb::ReturnOrderRequest {
            order_id: "nope".into(),
            items: vec![item("A", 1), item("", 0), item("A", 2)],
            reason: " ".into(),
            idempotency_key: String::new(),
        };
        let got = fields(return_order(&req).unwrap_err());
        for field in [
            "order_id",
            "items[1].sku",
            "items[1].quantity",
            "items[2].sku",
            "reason",
            "idempotency_key",
        ] {
            assert!(got.iter().any(|f| f == field), "{got:?} lacks {field}");
        }
        let ok = pb::ReturnOrderRequest {
            order_id: Uuid::now_v7().to_string(),
            items: vec![],
            reason: " broken ".into(),
            idempotency_key: "k".into(),
        };
        let cmd = return_order(&ok).unwrap();
        assert!(cmd.lines.is_empty());
        assert_eq!(cmd.reason, "broken");
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        let token = URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.timestamp_micros()));
        assert_eq!(decode_cursor(&token).unwrap(), Cursor { created_at: at, id });
        assert!(decode_cursor("%%%").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("12:nope")).is_err());
    }
}
