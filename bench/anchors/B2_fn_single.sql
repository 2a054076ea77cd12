-- (B2_fn) reserve-hot-only's work: only the hot SKU-000001, 1-5 units, one round trip.
-- Every client serialises on one row lock held until the commit is flushed.
\set q1 random(1, 5)
\set rk random(1, 9223372036854775806)
SELECT reserve(md5(:rk::text)::uuid, ARRAY['SKU-000001'], ARRAY[:q1::int]);
