-- The service's own SQL limit for reserve-uniform: pgbench of inventory.reserve_holds with the
-- arguments the server passes for one 3-SKU hold (a request fingerprint, no caller identity) (the same SKU spread as the anchors'
-- A_fn_reserve). Run it against a bench database (10k SKUs and the old-hold history):
--   pgbench -n -M prepared -c 8 -j 2 -T 10 -f crates/loadgen/sql/pgbench_reserve_many.sql "$bench_db"
--   (bench_db: the bench cluster and its seeded database, started as BENCHMARKS.md shows:
--   bench_db="$(PG_PORT=54360 PG_DIR=.dev/bench-pg scripts/pg db bench)")
-- and A_fn_reserve right after on the same cluster; BENCHMARKS.md reports the ratio.
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
SELECT * FROM inventory.reserve_holds(ARRAY[md5(:rk::text)::uuid], ARRAY['PGBENCH'], ARRAY[:rk::text], ARRAY[30],
  ARRAY[md5('lines' || :rk::text) || md5(:rk::text)], ARRAY[NULL]::text[],
  ARRAY[1, 1, 1],
  ARRAY['SKU-' || lpad(:a::text, 6, '0'), 'SKU-' || lpad(:b::text, 6, '0'), 'SKU-' || lpad(:c::text, 6, '0')],
  ARRAY[NULL, NULL, NULL]::uuid[], ARRAY[NULL, NULL, NULL]::text[],
  ARRAY[:q1::int, :q2::int, :q3::int]);
