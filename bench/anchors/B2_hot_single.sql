-- (B2) B2_fn's work in 4 round trips: every client holds only SKU-000001, 1 line.
\set q1 random(1, 5)
\set rk random(1, 9223372036854775806)
BEGIN;
UPDATE inventory_items SET reserved = reserved + :q1 WHERE sku = 'SKU-000001' AND on_hand - reserved >= :q1 RETURNING on_hand - reserved AS left1 \gset
INSERT INTO reservations (reservation_id) VALUES (md5(:rk::text)::uuid);
INSERT INTO reservation_items (reservation_id, sku, qty) VALUES (md5(:rk::text)::uuid, 'SKU-000001', :q1);
COMMIT;
