-- The service's availability query for 3 random SKUs (what one unbatched
-- CheckInventoryAvailability runs), for comparison with the anchors' C_availability:
--   pgbench -n -M prepared -c 8 -j 2 -T 10 -f crates/loadgen/sql/pgbench_availability.sql "$bench_db"
--   (bench_db: the bench cluster and its seeded database, started as BENCHMARKS.md shows:
--   bench_db="$(PG_PORT=54360 PG_DIR=.dev/bench-pg scripts/pg db bench)")
\set nskus 10000
\set s1 random(1, :nskus)
\set s2 random(1, :nskus)
\set s3 random(1, :nskus)
select i.sku, i.product_id, i.variant_id, coalesce(sum(sl.on_hand - sl.reserved), 0)::bigint
  from inventory.items i
  left join inventory.stock_levels sl on sl.item_id = i.id
 where i.sku = any(ARRAY['SKU-' || lpad(:s1::text, 6, '0'), 'SKU-' || lpad(:s2::text, 6, '0'),
                         'SKU-' || lpad(:s3::text, 6, '0')])
 group by i.id;
