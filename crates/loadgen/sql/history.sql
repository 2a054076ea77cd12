-- Realistically sized history for a bench database: $1 old CANCELLED holds of 3 lines each
-- over the first $2 SKUs (SKU-000001 ..), each line with its RESERVE and CANCEL movements,
-- dated a day ago. The lines' reserve and cancel movements sum to zero, so every invariant
-- holds (reserved = sum of PENDING lines; ledger sums = on_hand and reserved) and no stock
-- changes. Same spread as the anchors' reset.sql (g * 7 + k * 3331).
with r as (
    insert into inventory.reservations (id, reference_type, reference_id, status, expires_at, created_at, updated_at)
    select md5('bench-history-' || g)::uuid, 'BENCH-HISTORY', 'history-' || g, 'CANCELLED',
           now() - interval '1 day' + interval '30 minutes', now() - interval '1 day', now() - interval '1 day'
      from generate_series(1, $1::bigint) g
    returning id
),
ri as (
    insert into inventory.reservation_items (reservation_id, stock_level_id, quantity)
    select md5('bench-history-' || g)::uuid, sl.id, (1 + (g + k) % 5)::int
      from generate_series(1, $1::bigint) g
     cross join generate_series(0, 2) k
      join inventory.items i on i.sku = 'SKU-' || lpad(((g * 7 + k * 3331) % $2::bigint + 1)::text, 6, '0')
      join inventory.stock_levels sl on sl.item_id = i.id and sl.warehouse_id = 'default'
     where exists (select 1 from r where r.id = md5('bench-history-' || g)::uuid)
    on conflict do nothing
    returning reservation_id, stock_level_id, quantity
)
insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id, created_at)
select ri.stock_level_id, m.kind, 0, m.sign * ri.quantity, ri.reservation_id, now() - interval '1 day'
  from ri
 cross join (values ('RESERVE', 1), ('CANCEL', -1)) as m(kind, sign)
