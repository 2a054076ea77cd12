//! Responses as JSON, one small conversion per message, following the proto3 JSON mapping:
//! lowerCamelCase field names, wrappers as their value or `null`, timestamps as RFC 3339.
//! Unlike the mapping's default, fields holding their default value are printed too, so
//! scripts always find every key.

use proto::inventory::v1 as pb;
use serde_json::{Value, json};

/// `inventory.v1.StockLevel`.
pub fn stock_level(l: &pb::StockLevel) -> Value {
    json!({
        "warehouseId": l.warehouse_id,
        "onHand": l.on_hand,
        "reserved": l.reserved,
        "available": l.available,
        "safetyStock": l.safety_stock,
        "lowStockThreshold": l.low_stock_threshold,
        "lowStock": l.low_stock,
        "backorderLimit": l.backorder_limit,
        "expectedRestockDate": l.expected_restock_date,
        "inStock": l.in_stock,
    })
}

/// `inventory.v1.InventoryItem`.
pub fn inventory_item(i: &pb::InventoryItem) -> Value {
    json!({
        "id": i.id,
        "sku": i.sku,
        "productId": i.product_id,
        "variantId": i.variant_id,
        "onHand": i.on_hand,
        "reserved": i.reserved,
        "available": i.available,
        "levels": i.levels.iter().map(stock_level).collect::<Vec<_>>(),
    })
}

/// `inventory.v1.ListInventoryItemsResponse`.
pub fn list_response(r: &pb::ListInventoryItemsResponse) -> Value {
    json!({
        "items": r.items.iter().map(inventory_item).collect::<Vec<_>>(),
        "nextPageToken": r.next_page_token,
    })
}

/// `inventory.v1.LowStockRow`.
pub fn low_stock_row(r: &pb::LowStockRow) -> Value {
    json!({
        "sku": r.sku,
        "level": r.level.as_ref().map(stock_level),
    })
}

/// `inventory.v1.ListLowStockResponse`.
pub fn low_stock_response(r: &pb::ListLowStockResponse) -> Value {
    json!({
        "rows": r.rows.iter().map(low_stock_row).collect::<Vec<_>>(),
        "nextPageToken": r.next_page_token,
    })
}

/// `inventory.v1.ItemAvailability`.
pub fn item_availability(a: &pb::ItemAvailability) -> Value {
    json!({
        "productId": a.product_id,
        "variantId": a.variant_id,
        "sku": a.sku,
        "requestedQuantity": a.requested_quantity,
        "availableQuantity": a.available_quantity,
        "isAvailable": a.is_available,
        "status": a.status,
    })
}

/// `inventory.v1.InventoryAvailabilityResponse`.
pub fn availability_response(r: &pb::InventoryAvailabilityResponse) -> Value {
    json!({
        "items": r.items.iter().map(item_availability).collect::<Vec<_>>(),
        "allAvailable": r.all_available,
    })
}

/// `inventory.v1.ReservationResponse`.
pub fn reservation_response(r: &pb::ReservationResponse) -> Value {
    json!({
        "reservationId": r.reservation_id,
        "success": r.success,
        "message": r.message,
    })
}

/// `inventory.v1.ReservedItem`.
pub fn reserved_item(i: &pb::ReservedItem) -> Value {
    json!({
        "sku": i.sku,
        "warehouseId": i.warehouse_id,
        "quantity": i.quantity,
        "backorderedQuantity": i.backordered_quantity,
        "expectedRestockDate": i.expected_restock_date,
    })
}

/// `inventory.v1.Reservation`.
pub fn reservation(r: &pb::Reservation) -> Value {
    json!({
        "reservationId": r.reservation_id,
        "referenceId": r.reference_id,
        "referenceType": r.reference_type,
        "status": r.status,
        "expiresAt": r.expires_at.as_ref().map(ToString::to_string),
        "items": r.items.iter().map(reserved_item).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_uses_proto3_json_names_and_null_for_an_absent_wrapper() {
        let item = pb::InventoryItem {
            id: "i1".into(),
            sku: "MUG".into(),
            product_id: "prod-mug".into(),
            variant_id: None,
            on_hand: 5,
            reserved: 2,
            available: 3,
            levels: vec![pb::StockLevel {
                warehouse_id: "default".into(),
                on_hand: 5,
                reserved: 2,
                available: 3,
                ..Default::default()
            }],
        };
        assert_eq!(
            inventory_item(&item),
            json!({
                "id": "i1", "sku": "MUG", "productId": "prod-mug", "variantId": null,
                "onHand": 5, "reserved": 2, "available": 3,
                "levels": [{
                    "warehouseId": "default", "onHand": 5, "reserved": 2, "available": 3,
                    "safetyStock": 0, "lowStockThreshold": 0, "lowStock": false,
                    "backorderLimit": 0, "expectedRestockDate": "", "inStock": 0,
                }],
            })
        );
    }

    #[test]
    fn low_stock_rows_carry_the_level_with_its_policy() {
        let page = pb::ListLowStockResponse {
            rows: vec![
                pb::LowStockRow {
                    sku: "MUG".into(),
                    level: Some(pb::StockLevel {
                        warehouse_id: "east".into(),
                        on_hand: 10,
                        reserved: 2,
                        available: 3,
                        safety_stock: 5,
                        low_stock_threshold: 4,
                        low_stock: true,
                        in_stock: 3,
                        ..Default::default()
                    }),
                },
                pb::LowStockRow { sku: "CAP".into(), level: None },
            ],
            next_page_token: String::new(),
        };
        assert_eq!(
            low_stock_response(&page),
            json!({
                "rows": [
                    {"sku": "MUG", "level": {
                        "warehouseId": "east", "onHand": 10, "reserved": 2, "available": 3,
                        "safetyStock": 5, "lowStockThreshold": 4, "lowStock": true,
                        "backorderLimit": 0, "expectedRestockDate": "", "inStock": 3,
                    }},
                    {"sku": "CAP", "level": null},
                ],
                "nextPageToken": "",
            })
        );
    }

    #[test]
    fn a_timestamp_is_rfc3339_in_utc() {
        let r = pb::Reservation {
            reservation_id: "r1".into(),
            expires_at: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            ..Default::default()
        };
        assert_eq!(reservation(&r)["expiresAt"], json!("2023-11-14T22:13:20Z"));
        assert_eq!(reservation(&pb::Reservation::default())["expiresAt"], Value::Null);
    }
}
