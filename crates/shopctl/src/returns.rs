//! `shopctl order return`: the ReturnOrder request from the command line, and the return it
//! answers as a table or in the proto3 JSON mapping.

use proto::order::v1 as pb;
use serde_json::{Value, json};

use crate::cli::ReturnArgs;
use crate::table::{Align, Table, key_values, money};

/// The ReturnOrder request `args` describe.
pub fn return_request(args: ReturnArgs) -> pb::ReturnOrderRequest {
    pb::ReturnOrderRequest {
        order_id: args.order_id,
        items: args
            .items
            .into_iter()
            .map(|i| pb::ReturnItemInput {
                sku: i.sku,
                quantity: i.quantity,
                do_not_restock: i.do_not_restock,
            })
            .collect(),
        reason: args.reason,
        idempotency_key: args.key,
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".to_owned() } else { s.to_owned() }
}

/// One return: its state, then its items.
pub fn return_text(r: &pb::OrderReturn) -> String {
    let mut out = key_values(&[
        ("id", r.id.clone()),
        ("order", r.order_id.clone()),
        ("status", r.status.clone()),
        ("refund", money(r.refund_amount_minor, &r.currency)),
        ("refund_id", or_dash(&r.refund_id)),
        ("reason", or_dash(&r.reason)),
        ("status_reason", or_dash(&r.status_reason)),
    ]);
    out.push('\n');
    let mut t = Table::new(&[
        ("SKU", Align::Left),
        ("QTY", Align::Right),
        ("RESTOCK", Align::Left),
        ("UNIT_PRICE", Align::Right),
    ]);
    for i in &r.items {
        t.row([
            i.sku.clone(),
            i.quantity.to_string(),
            (if i.do_not_restock { "no" } else { "yes" }).to_owned(),
            money(i.unit_price_minor, &r.currency),
        ]);
    }
    out.push_str(&t.to_string());
    out
}

/// `order.v1.OrderReturn` in the proto3 JSON mapping (every field printed).
pub fn return_json(r: &pb::OrderReturn) -> Value {
    let items: Vec<Value> = r
        .items
        .iter()
        .map(|i| {
            json!({
                "sku": i.sku,
                "quantity": i.quantity,
                "doNotRestock": i.do_not_restock,
                // int64 is a string in the proto3 JSON mapping.
                "unitPriceMinor": i.unit_price_minor.to_string(),
            })
        })
        .collect();
    json!({
        "id": r.id,
        "orderId": r.order_id,
        "status": r.status,
        "items": items,
        "refundAmountMinor": r.refund_amount_minor.to_string(),
        "currency": r.currency,
        "reason": r.reason,
        "statusReason": r.status_reason,
        "refundId": r.refund_id,
        "createdAt": r.created_at.as_ref().map(ToString::to_string),
        "updatedAt": r.updated_at.as_ref().map(ToString::to_string),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cli::{ReturnItemSpec, parse_return_item};

    #[test]
    fn return_items_parse_with_an_optional_no_restock_flag() {
        let spec = |sku: &str, quantity, do_not_restock| ReturnItemSpec {
            sku: sku.to_owned(),
            quantity,
            do_not_restock,
        };
        assert_eq!(parse_return_item("MUG=2").unwrap(), spec("MUG", 2, false));
        assert_eq!(parse_return_item("MUG=1:no-restock").unwrap(), spec("MUG", 1, true));
        assert!(parse_return_item("MUG").is_err());
        assert!(parse_return_item("=1").is_err());
        assert!(parse_return_item("MUG=x").is_err());
        assert!(parse_return_item("MUG=1:broken").is_err());
    }

    #[test]
    fn a_return_shows_its_refund_and_items() {
        let r = pb::OrderReturn {
            id: "r1".into(),
            status: "COMPLETED".into(),
            refund_amount_minor: 666,
            currency: "EUR".into(),
            items: vec![pb::ReturnedItem {
                sku: "ODD".into(),
                quantity: 2,
                do_not_restock: true,
                unit_price_minor: 333,
            }],
            ..Default::default()
        };
        let text = return_text(&r);
        assert!(text.contains("6.66 EUR"), "{text}");
        assert!(text.contains("ODD"), "{text}");
        let json = return_json(&r);
        assert_eq!(json["refundAmountMinor"], "666");
        assert_eq!(json["items"][0]["doNotRestock"], true);
    }
}
