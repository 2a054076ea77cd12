-- A fast path for the common reservation: one request whose lines each name a SKU with
-- exactly one stock row, no two lines on the same row.
--
-- inventory.reserve_many (20261124000002) interprets its allocation loops in PL/pgSQL, and
-- PL/pgSQL sets up every expression it evaluates once per transaction: with autocommit that
-- is once per call, ~40% of the function's time for a 3-line hold (perf; BENCHMARKS.md).
-- The fast path does the same work in three SQL statements and a handful of expressions:
--   1. claims the reference (as before: the reservation row first, the global lock order);
--   2. locks every stock row of every named SKU in ONE statement ordered by stock_levels.id
--      (the same rows, in the same order, as the general path would lock) and reads whether
--      the request is of the simple shape and whether any line is short;
--   3. writes reserved, the lines and the RESERVE movements in one statement.
-- Any other shape (a batch, an item given by id, a SKU with several warehouses or none, two
-- lines on one row) goes to the general algorithm, renamed inventory.reserve_many_general.
-- When the shape shows only after step 2, the claim is deleted first (the general path
-- claims again; our own deleted row is no conflict) and the general path locks exactly the
-- rows already held, so falling back takes no lock out of order.
--
-- Outcomes are those of the general path: 'reserved', or 'short' rows (SKU, the line's
-- warehouse, requested, available: 0 for a line naming another warehouse) with the lines
-- naming a warehouse first, then the others, each group in line order.
alter function inventory.reserve_many(uuid[], text[], text[], integer[], integer[], text[], uuid[], text[], integer[])
    rename to reserve_many_general;

create function inventory.reserve_many(
    p_ids       uuid[],
    p_ref_types text[],
    p_ref_ids   text[],
    p_minutes   integer[],
    p_line_req  integer[],
    p_line_refs text[],
    p_line_ids  uuid[],
    p_line_whs  text[],
    p_line_qtys integer[]
) returns table (
    o_req       integer,
    o_outcome   text,
    o_hold      uuid,
    o_status    text,
    o_item      text,
    o_warehouse text,
    o_requested integer,
    o_available bigint
)
language plpgsql
volatile
-- See 20261124000004: without it every statement here is planned anew on every call.
set plan_cache_mode = force_generic_plan
as $$
declare
    n_line  integer := coalesce(cardinality(p_line_req), 0);
    claimed uuid;
    simple  boolean;
    short   boolean;
    levels  bigint[];
begin
    if coalesce(cardinality(p_ids), 0) = 1 and n_line > 0
       and cardinality(array_remove(p_line_ids, null)) = 0 then
        insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
        values (p_ids[1], p_ref_types[1], p_ref_ids[1], 'PENDING',
                now() + make_interval(mins => p_minutes[1]))
        on conflict (reference_type, reference_id) where status in ('PENDING', 'COMMITTED')
        do nothing
        returning id into claimed;
    end if;

    if claimed is not null then
        select count(*) = n_line and count(distinct c.id) = n_line
                   and count(distinct c.j) = n_line,
               bool_or((c.wh is not null and c.wh <> c.row_wh) or c.available < c.q),
               array_agg(c.id order by c.j)
          into simple, short, levels
          from (select l.j, sl.id, sl.warehouse_id as row_wh, l.wh, l.q,
                       sl.on_hand - sl.reserved as available
                  from unnest(p_line_refs, p_line_whs, p_line_qtys)
                       with ordinality as l(ref, wh, q, j)
                  join inventory.items i on i.sku = l.ref
                  join inventory.stock_levels sl on sl.item_id = i.id
                 order by sl.id, l.j
                   for no key update of sl) c;

        if simple and short then
            delete from inventory.reservations where id = claimed;
            return query
            select 1, 'short', null::uuid, null::text, i.sku, l.wh, l.q,
                   case when l.wh is not null and l.wh <> sl.warehouse_id then 0
                        else greatest(sl.on_hand - sl.reserved, 0) end::bigint
              from unnest(p_line_whs, p_line_qtys, levels) with ordinality as l(wh, q, lv, j)
              join inventory.stock_levels sl on sl.id = l.lv
              join inventory.items i on i.id = sl.item_id
             where (l.wh is not null and l.wh <> sl.warehouse_id)
                or sl.on_hand - sl.reserved < l.q
             order by l.wh is null, l.j;
            return;
        end if;

        if simple then
            with raised as (
                update inventory.stock_levels sl
                   set reserved = sl.reserved + t.q, updated_at = now()
                  from unnest(levels, p_line_qtys) as t(id, q)
                 where sl.id = t.id
            ), lines as (
                insert into inventory.reservation_items (reservation_id, stock_level_id, quantity)
                select claimed, t.id, t.q from unnest(levels, p_line_qtys) as t(id, q)
            )
            insert into inventory.movements
                   (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
            select t.id, 'RESERVE', 0, t.q, claimed from unnest(levels, p_line_qtys) as t(id, q);
            return query select 1, 'reserved', claimed, 'PENDING'::text, null::text, null::text,
                                null::integer, null::bigint;
            return;
        end if;

        delete from inventory.reservations where id = claimed;
    end if;

    return query select * from inventory.reserve_many_general(
        p_ids, p_ref_types, p_ref_ids, p_minutes, p_line_req, p_line_refs, p_line_ids,
        p_line_whs, p_line_qtys);
end
$$;

-- Nothing reads movements by reservation (the reconciler sums them per stock row), and the
-- index cost three index insertions per hold.
drop index inventory.movements_reservation;
