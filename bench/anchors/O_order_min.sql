-- (O) the least an order can write durably: four autocommit transactions, in the order a
-- crash-safe saga needs them. 1: the order with its lines (the intent, before any peer is
-- called); 2: the hold (reserve(), one round trip); 3: the hold's commit after payment
-- (commit_reservation()); 4: the order's final state. No payment work: the service's pay0ms
-- scenario has none either. Two distinct random SKUs, 1-3 units each, 1,000 users.
\set nskus 10000
\set a random(1, :nskus)
\set d random(1, 9999)
\set b (:a + :d - 1) % :nskus + 1
\set q1 random(1, 3)
\set q2 random(1, 3)
\set ok random(1, 9223372036854775806)
\set rk random(1, 9223372036854775806)
\set uk :ok % 1000
WITH o AS (
  INSERT INTO orders (id, user_id, status, total_minor)
  VALUES (md5(:ok::text)::uuid, 'user-' || :uk, 'PENDING', 1000)
  RETURNING id)
INSERT INTO order_lines (order_id, sku, qty)
SELECT o.id, s.sku, s.q FROM o, (VALUES ('SKU-' || lpad(:a::text, 6, '0'), :q1::int),
                                        ('SKU-' || lpad(:b::text, 6, '0'), :q2::int)) AS s(sku, q);
SELECT reserve(md5(:rk::text)::uuid,
  ARRAY['SKU-' || lpad(:a::text, 6, '0'), 'SKU-' || lpad(:b::text, 6, '0')],
  ARRAY[:q1::int, :q2::int]);
SELECT commit_reservation(md5(:rk::text)::uuid);
UPDATE orders SET status = 'CONFIRMED', reservation_id = md5(:rk::text)::uuid, updated_at = now()
 WHERE id = md5(:ok::text)::uuid;
