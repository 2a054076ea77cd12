-- After a run: the anchors' own correctness, one line of six numbers (run.sh prints it, and
-- scripts/bench reads the six fields in this order):
--   live holds, their lines, oversold or negative rows (must be 0), rows whose reserved
--   differs from the sum of their live holds' lines (must be 0), the hot SKU's reserved, and
--   how often reservations was read by a sequential scan (the history trap in reset.sql).
SELECT
  (SELECT count(*) FROM reservations WHERE status = 'HELD')                AS held_reservations,
  (SELECT count(*) FROM reservation_items ri JOIN reservations r USING (reservation_id)
    WHERE r.status = 'HELD')                                               AS held_items,
  (SELECT count(*) FROM inventory_items WHERE reserved > on_hand OR reserved < 0) AS oversold_rows,
  (SELECT count(*) FROM inventory_items i
     LEFT JOIN (SELECT ri.sku, sum(ri.qty) s FROM reservation_items ri
                  JOIN reservations r USING (reservation_id)
                 WHERE r.status = 'HELD' GROUP BY ri.sku) h USING (sku)
    WHERE i.reserved <> coalesce(h.s, 0))                                  AS ledger_mismatch_rows,
  (SELECT reserved FROM inventory_items WHERE sku = 'SKU-000001')          AS hot_reserved,
  (SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'reservations') AS reservations_seq_scans;
