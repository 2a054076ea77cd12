-- (A_fn) reserve-uniform's work: 3 distinct random SKUs of 10k, 1-5 units each, a fresh
-- hold id, in one round trip (reserve()), autocommit. b is in the 4,999 SKUs after a, c in
-- the 4,999 after those, so the three always differ.
\set nskus 10000
\set a random(1, :nskus)
\set d1 random(1, 4999)
\set d2 random(1, 4999)
\set b (:a + :d1 - 1) % :nskus + 1
\set c (:a + 4999 + :d2 - 1) % :nskus + 1
\set q1 random(1, 5)
\set q2 random(1, 5)
\set q3 random(1, 5)
\set rk random(1, 9223372036854775806)
SELECT reserve(md5(:rk::text)::uuid,
  ARRAY['SKU-' || lpad(:a::text, 6, '0'), 'SKU-' || lpad(:b::text, 6, '0'), 'SKU-' || lpad(:c::text, 6, '0')],
  ARRAY[:q1::int, :q2::int, :q3::int]);
