-- (B) B_fn's work in 7 round trips: the hot SKU-000001 + 2 random SKUs. The hot SKU sorts
-- first, so its row lock is held for the whole transaction, commit flush included: the
-- worst case.
\set nskus 10000
\set d1 random(2, 5000)
\set d2 random(5001, :nskus)
\set q1 random(1, 5)
\set q2 random(1, 5)
\set q3 random(1, 5)
\set rk random(1, 9223372036854775806)
BEGIN;
UPDATE inventory_items SET reserved = reserved + :q1 WHERE sku = 'SKU-000001' AND on_hand - reserved >= :q1 RETURNING on_hand - reserved AS left1 \gset
UPDATE inventory_items SET reserved = reserved + :q2 WHERE sku = 'SKU-' || lpad(:d1::text, 6, '0') AND on_hand - reserved >= :q2 RETURNING on_hand - reserved AS left2 \gset
UPDATE inventory_items SET reserved = reserved + :q3 WHERE sku = 'SKU-' || lpad(:d2::text, 6, '0') AND on_hand - reserved >= :q3 RETURNING on_hand - reserved AS left3 \gset
INSERT INTO reservations (reservation_id) VALUES (md5(:rk::text)::uuid);
INSERT INTO reservation_items (reservation_id, sku, qty) VALUES
  (md5(:rk::text)::uuid, 'SKU-000001', :q1),
  (md5(:rk::text)::uuid, 'SKU-' || lpad(:d1::text, 6, '0'), :q2),
  (md5(:rk::text)::uuid, 'SKU-' || lpad(:d2::text, 6, '0'), :q3);
COMMIT;
