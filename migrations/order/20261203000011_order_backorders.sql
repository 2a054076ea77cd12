-- Which of an order's units the inventory took on backorder (issue 19): per SKU, as the
-- reserve answered (inventory.v1.ReservationResponse.backordered), written with the saga's
-- next write of the order. No row: every unit was in stock. Removed with its order (retention,
-- a withdrawn order).
create table orders.order_backorders (
    order_id               uuid not null references orders.orders (id) on delete cascade,
    sku                    text not null,
    quantity               integer not null check (quantity > 0),
    -- The expected restock date (a pre-order), YYYY-MM-DD as the inventory sent it; '' for none.
    expected_restock_date  text not null default '',
    primary key (order_id, sku)
);
