-- (B_fn) reserve-hot's work: the hot SKU-000001 in every hold, plus one SKU of each half of
-- the rest of the catalogue, 1-5 units each, one round trip (reserve()).
\set nskus 10000
\set d1 random(2, 5000)
\set d2 random(5001, :nskus)
\set q1 random(1, 5)
\set q2 random(1, 5)
\set q3 random(1, 5)
\set rk random(1, 9223372036854775806)
SELECT reserve(md5(:rk::text)::uuid,
  ARRAY['SKU-000001', 'SKU-' || lpad(:d1::text, 6, '0'), 'SKU-' || lpad(:d2::text, 6, '0')],
  ARRAY[:q1::int, :q2::int, :q3::int]);
