-- (A) A_fn's work in 7 round trips: 3 distinct random SKUs locked in ascending SKU order
-- (deadlock-free), a guarded UPDATE each (never oversells), 1 hold + 3 lines. RETURNING ...
-- \gset turns a 0-row UPDATE (not enough stock) into an error, so the transaction is
-- all-or-nothing like the service's.
\set nskus 10000
\set a random(1, :nskus)
\set d1 random(1, 4999)
\set d2 random(1, 4999)
\set b (:a + :d1 - 1) % :nskus + 1
\set c (:a + 4999 + :d2 - 1) % :nskus + 1
\set s1 least(:a, :b, :c)
\set s3 greatest(:a, :b, :c)
\set s2 :a + :b + :c - :s1 - :s3
\set q1 random(1, 5)
\set q2 random(1, 5)
\set q3 random(1, 5)
\set rk random(1, 9223372036854775806)
BEGIN;
UPDATE inventory_items SET reserved = reserved + :q1 WHERE sku = 'SKU-' || lpad(:s1::text, 6, '0') AND on_hand - reserved >= :q1 RETURNING on_hand - reserved AS left1 \gset
UPDATE inventory_items SET reserved = reserved + :q2 WHERE sku = 'SKU-' || lpad(:s2::text, 6, '0') AND on_hand - reserved >= :q2 RETURNING on_hand - reserved AS left2 \gset
UPDATE inventory_items SET reserved = reserved + :q3 WHERE sku = 'SKU-' || lpad(:s3::text, 6, '0') AND on_hand - reserved >= :q3 RETURNING on_hand - reserved AS left3 \gset
INSERT INTO reservations (reservation_id) VALUES (md5(:rk::text)::uuid);
INSERT INTO reservation_items (reservation_id, sku, qty) VALUES
  (md5(:rk::text)::uuid, 'SKU-' || lpad(:s1::text, 6, '0'), :q1),
  (md5(:rk::text)::uuid, 'SKU-' || lpad(:s2::text, 6, '0'), :q2),
  (md5(:rk::text)::uuid, 'SKU-' || lpad(:s3::text, 6, '0'), :q3);
COMMIT;
