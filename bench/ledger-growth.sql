-- Grows the bench ledger for `scripts/bench --history` (psql, variables :first and :pairs):
-- :pairs pairs of movements, pair g (g = :first .. :first + :pairs - 1) on the stock row of
-- rank g * 7 mod n, RESERVE +q then CANCEL -q reserved (q = 1 + g mod 5), as the seed's
-- cancelled holds (crates/loadgen/sql/history.sql) leave them. Each pair sums to zero, so
-- on_hand, reserved and every invariant stay as they are. No hold rows are written and
-- reservation_id stays null, because the reconciler and retention read neither: that saves
-- ~0.4 GB at 10M rows (16 bytes a row, and its partial index skips nulls), the rows are that
-- much narrower than a hold's, which flatters the full verification by a little.
-- created_at: ~300 days ago
-- plus g seconds, ascending in insert order (retention keeps 400 days by default, so it
-- removes none of them, and created_at's BRIN index stays tight).
-- txid takes its default, this statement's transaction: the next reconciler pass reads the
-- whole batch as its tail once and folds it into the checkpoints, as it would after a bulk
-- import.
with sl as (
    select array_agg(id order by id) as ids, count(*) as n
      from inventory.stock_levels
     where warehouse_id = 'default'
)
insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id, created_at)
select sl.ids[1 + (g * 7) % sl.n], m.kind, 0, m.sign * (1 + g % 5)::int,
       null,
       now() - interval '300 days' + g * interval '1 second'
  from sl
 cross join generate_series(:first::bigint, :first::bigint + :pairs::bigint - 1) g
 cross join (values ('RESERVE', 1), ('CANCEL', -1)) as m (kind, sign)
 where sl.n > 0;
