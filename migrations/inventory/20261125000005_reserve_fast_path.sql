-- A fast path for the common reservation: requests whose lines each name a SKU with exactly
-- one stock row, no two lines of a request on the same row, and, for a batch, distinct
-- references and enough stock on every row for all of them together.
--
-- inventory.reserve_many (20261124000002) interprets its allocation loops in PL/pgSQL, and
-- PL/pgSQL sets up every expression it evaluates once per transaction: with autocommit that
-- is once per call, ~40% of the function's time for a 3-line hold (perf; BENCHMARKS.md).
-- The fast path does the same work in three SQL statements and a handful of expressions:
--   1. claims the references (as before: reservation rows first, in (reference_type,
--      reference_id) order: the global lock order);
--   2. locks every stock row of every named SKU in ONE statement ordered by stock_levels.id
--      (the same rows, in the same order, as the general path would lock) and reads whether
--      the requests are of the simple shape and whether any line is short;
--   3. writes reserved, the lines and the RESERVE movements in one statement.
-- When every request fits, arrival order cannot change any answer, so all of them are
-- reserved at once. Any other case (an item given by id, a SKU with several warehouses or
-- none, two lines of a request on one row, a reference held already or twice in the batch,
-- a short line in a batch) goes to the general algorithm, renamed
-- inventory.reserve_many_general. When that shows only after step 1 or 2, the claims are
-- deleted first (the general path claims again; our own deleted rows are no conflict) and
-- the general path locks exactly the rows already held, so falling back takes no lock out of
-- order. A lone request that is short is answered here.
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
    p_line_qtys integer[],
    -- When set, no lock is waited for longer (ms): the batcher passes the latest deadline of
    -- its callers, so a batch stuck behind a lock gives up instead of committing holds its
    -- callers were told they did not get.
    p_lock_timeout_ms integer default null
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
    n_req   integer := coalesce(cardinality(p_ids), 0);
    n_line  integer := coalesce(cardinality(p_line_req), 0);
    n_claim integer := 0;
    mine    uuid[];
    simple  boolean;
    short   boolean;
    levels  bigint[];
begin
    if p_lock_timeout_ms is not null then
        -- Local to this transaction (autocommit: this statement); 0 would mean "no limit".
        perform set_config('lock_timeout', greatest(p_lock_timeout_ms, 1)::text, true);
    end if;
    if n_req > 0 and n_line > 0 and cardinality(array_remove(p_line_ids, null)) = 0 then
        with claimed as (
            insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
            select u.id, u.t, u.r, 'PENDING', now() + make_interval(mins => u.m)
              from unnest(p_ids, p_ref_types, p_ref_ids, p_minutes) as u(id, t, r, m)
             order by u.t, u.r
            on conflict (reference_type, reference_id) where status in ('PENDING', 'COMMITTED')
            do nothing
            returning id
        )
        select count(*), array_agg(id) into n_claim, mine from claimed;
    end if;

    if n_claim = n_req and n_req > 0 then
        with c as (
            select l.j, l.rq, sl.id, sl.warehouse_id as row_wh, l.wh, l.q,
                   sl.on_hand - sl.reserved as available
              from unnest(p_line_req, p_line_refs, p_line_whs, p_line_qtys)
                   with ordinality as l(rq, ref, wh, q, j)
              join inventory.items i on i.sku = l.ref
              join inventory.stock_levels sl on sl.item_id = i.id
             order by sl.id, l.j
               for no key update of sl
        ), per_row as (
            select c.id, sum(c.q) as wanted, min(c.available) as available from c group by c.id
        )
        select (select count(*) = n_line and count(distinct (c.rq, c.id)) = n_line
                       and count(distinct c.j) = n_line from c),
               (select coalesce(bool_or(c.wh is not null and c.wh <> c.row_wh), false) from c)
                   or (select coalesce(bool_or(r.wanted > r.available), false) from per_row r),
               (select array_agg(c.id order by c.j) from c)
          into simple, short, levels;

        if simple and short and n_req = 1 then
            delete from inventory.reservations where id = mine[1];
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

        if simple and not short then
            with raised as (
                update inventory.stock_levels sl
                   set reserved = sl.reserved + t.q, updated_at = now()
                  from (select lv, sum(q)::integer as q
                          from unnest(levels, p_line_qtys) as u(lv, q) group by lv) as t
                 where sl.id = t.lv
            ), lines as (
                insert into inventory.reservation_items (reservation_id, stock_level_id, quantity)
                select p_ids[t.rq], t.lv, t.q
                  from unnest(p_line_req, levels, p_line_qtys) as t(rq, lv, q)
            )
            insert into inventory.movements
                   (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
            select t.lv, 'RESERVE', 0, t.q, p_ids[t.rq]
              from unnest(p_line_req, levels, p_line_qtys) as t(rq, lv, q);
            return query select k, 'reserved', p_ids[k], 'PENDING'::text, null::text, null::text,
                                null::integer, null::bigint
                           from generate_series(1, n_req) as k;
            return;
        end if;
    end if;

    if n_claim > 0 then
        delete from inventory.reservations where id = any(mine);
    end if;
    return query select * from inventory.reserve_many_general(
        p_ids, p_ref_types, p_ref_ids, p_minutes, p_line_req, p_line_refs, p_line_ids,
        p_line_whs, p_line_qtys);
end
$$;

-- Nothing reads movements by reservation (the reconciler sums them per stock row), and the
-- index cost three index insertions per hold.
drop index inventory.movements_reservation;
