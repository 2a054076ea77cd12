-- Between two anchor scripts: no live holds, no orders, every reserved count back to 0, then
-- a realistically sized history (100k old holds of 3 lines, 100k old orders of 1 line).
-- Why the history: with reservations empty and freshly analysed, the planner picks a
-- sequential scan for the foreign-key check from reservation_items, and throughput decays
-- within one run as the table grows (~4,900 -> ~450 tps here) until autoanalyze catches up.
-- Production tables are never empty; the anchors must not measure that trap.
TRUNCATE reservation_items, reservations, order_lines, orders;
UPDATE inventory_items SET reserved = 0 WHERE reserved <> 0;

INSERT INTO reservations (reservation_id, status, expires_at, created_at)
SELECT md5('seed' || g)::uuid, 'RELEASED', now() - interval '1 day', now() - interval '1 day'
  FROM generate_series(1, 100000) g;
-- Three lines per hold, spread over the catalogue (3331 is prime to 10,000).
INSERT INTO reservation_items (reservation_id, sku, qty)
SELECT md5('seed' || g)::uuid, 'SKU-' || lpad(((g * 7 + k * 3331) % 10000 + 1)::text, 6, '0'), 1
  FROM generate_series(1, 100000) g, generate_series(0, 2) k;

INSERT INTO orders (id, user_id, status, total_minor, created_at)
SELECT md5('order' || g)::uuid, 'user-' || (g % 1000), 'CONFIRMED', 1000, now() - interval '1 day'
  FROM generate_series(1, 100000) g;
INSERT INTO order_lines (order_id, sku, qty)
SELECT md5('order' || g)::uuid, 'SKU-' || lpad(((g * 7) % 10000 + 1)::text, 6, '0'), 1
  FROM generate_series(1, 100000) g;

VACUUM ANALYZE;
-- Start every script from a clean checkpoint, so none pays for its predecessor's dirty pages.
CHECKPOINT;
