-- A reserve's events in one outbox row (issue 18's benchmark: reserve throughput with the
-- outbox on within 10% of without it).
--
-- The fast path of reserve_holds wrote one outbox row per event: reservation.created per hold
-- and stock.changed per stock row, four rows for a three-line hold, each with a JSON payload
-- built in the reserve's statement, then moved row by row into `events` by the relay. Measured
-- with pgbench on the bench database (8 clients calling reserve_holds, a relay every 50 ms, ten
-- alternations; BENCHMARKS.md "The transactional outbox's cost"): that was 0.79-0.84 of the
-- throughput with the outbox off; this form, 0.89-0.93.
--
-- Now the statement writes ONE row whose `batch` holds what those events say, as the statement
-- already has it, in arrays (no JSON built while the stock rows are locked), and whose `n` is
-- how many events it stands for. The relay numbers a row with n events with the n consecutive
-- positions ending at its `position` (a row keeps its LAST position, so "every row with
-- position > p" finds the row a consumer stopped inside). inventory.event_rows turns a row
-- back into its events, with the payloads and the order the per-event writer gave them
-- (holds by id, then stock rows by id); the log's readers go through it. What a consumer
-- receives is unchanged: the same events, payloads and positions, one by one.
--
-- Every other writer (the triggers, settle_hold_as) still writes one row per event: n = 1,
-- batch null.

create type inventory.reserve_batch as (
    -- The batch's requests: the holds (empty when reservation events are off), their
    -- references and minutes to expiry (expires_at = occurred_at + minutes: both now()).
    hold_ids             uuid[],
    ref_types            text[],
    ref_ids              text[],
    minutes              integer[],
    -- The lines: their request (an index into the arrays above), stock row and quantity.
    line_req             integer[],
    line_row             bigint[],
    line_qty             integer[],
    -- The stock rows the statement raised, by id, with their levels after it; row_event:
    -- whether the row's stock.changed is written.
    row_ids              bigint[],
    row_sku              text[],
    row_wh               text[],
    on_hand              integer[],
    reserved             integer[],
    safety_stock         integer[],
    low_stock_threshold  integer[],
    backorder_limit      integer[],
    row_event            boolean[]
);

alter table inventory.event_outbox
    alter column payload drop not null,
    add column n integer not null default 1,
    add column batch inventory.reserve_batch;

alter table inventory.events
    alter column payload drop not null,
    add column n integer not null default 1,
    add column batch inventory.reserve_batch;

-- The events of one log row, in order, with their positions: the row itself when it is one
-- event, else the events its batch stands for, with the payloads the per-event writer built.
create function inventory.event_rows(
    p_position    bigint,
    p_n           integer,
    p_type        text,
    p_aggregate   text,
    p_payload     jsonb,
    p_occurred_at timestamptz,
    p_batch       inventory.reserve_batch
) returns table ("position" bigint, type text, aggregate_id text, payload jsonb,
                 occurred_at timestamptz)
language sql
stable
as $$
    select p_position, p_type, p_aggregate, p_payload, p_occurred_at
     where p_batch is null
    union all
    select p_position - p_n + row_number() over (order by e.k, e.hold, e.row_id),
           e.type, e.aggregate_id, e.payload, p_occurred_at
      from (select 1 as k, h.id as hold, 0::bigint as row_id, 'reservation.created' as type,
                   h.id::text as aggregate_id,
                   jsonb_build_object('reservation_id', h.id, 'reference_type', h.rt,
                                      'reference_id', h.ri, 'status', 'PENDING',
                                      'expires_at', p_occurred_at + make_interval(mins => h.m),
                                      'lines', h.lines) as payload
              from (select u.id, u.rt, u.ri, u.m,
                           (select jsonb_agg(jsonb_build_object('sku', r.sku,
                                                                'warehouse_id', r.wh,
                                                                'quantity', l.q)
                                             order by l.lv)
                              from unnest((p_batch).line_req, (p_batch).line_row,
                                          (p_batch).line_qty) as l(rq, lv, q)
                              join unnest((p_batch).row_ids, (p_batch).row_sku,
                                          (p_batch).row_wh) as r(id, sku, wh) on r.id = l.lv
                             where l.rq = u.k) as lines
                      from unnest((p_batch).hold_ids, (p_batch).ref_types, (p_batch).ref_ids,
                                  (p_batch).minutes) with ordinality as u(id, rt, ri, m, k)) h
             where h.id is not null and h.lines is not null
            union all
            select 2, null, r.id, 'stock.changed', r.sku || '/' || r.wh,
                   jsonb_build_object('sku', r.sku, 'warehouse_id', r.wh,
                                      'on_hand', r.oh, 'reserved', r.rs,
                                      'safety_stock', r.ss,
                                      'low_stock_threshold', r.lo,
                                      'backorder_limit', r.bl)
              from unnest((p_batch).row_ids, (p_batch).row_sku, (p_batch).row_wh,
                          (p_batch).on_hand, (p_batch).reserved, (p_batch).safety_stock,
                          (p_batch).low_stock_threshold, (p_batch).backorder_limit,
                          (p_batch).row_event) as r(id, sku, wh, oh, rs, ss, lo, bl, ev)
             where r.ev) e
     where p_batch is not null
$$;

-- How many events of each type one log row stands for (the relay's metrics), without
-- building their payloads.
create function inventory.event_types(p_type text, p_batch inventory.reserve_batch)
returns table (type text, n bigint)
language sql
immutable
as $$
    select p_type, 1::bigint
     where p_batch is null
    union all
    select t.type, t.n
      from (select 'reservation.created' as type,
                   (select count(distinct l.rq)
                      from unnest((p_batch).line_req) as l(rq)
                     where (p_batch).hold_ids[l.rq] is not null) as n
            union all
            select 'stock.changed', (select count(*) from unnest((p_batch).row_event) as r(ev)
                                      where r.ev)) t
     where p_batch is not null and t.n > 0
$$;

-- The log as its consumers see it, one row per event (for people and tests reading it with
-- SQL; the servers' reads expand only the rows they send).
create view inventory.logged_events as
select x.position, x.type, x.aggregate_id, x.payload, x.occurred_at, e.published_at
  from inventory.events e
 cross join lateral inventory.event_rows(e.position, e.n, e.type, e.aggregate_id, e.payload,
                                         e.occurred_at, e.batch) x;

-- The fast path as in 20261203000015, but for its events: one outbox row.
create or replace function inventory.reserve_holds(
    p_ids       uuid[],
    p_ref_types text[],
    p_ref_ids   text[],
    p_minutes   integer[],
    p_fps       text[],
    p_owners    text[],
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
    o_available bigint,
    o_fingerprint text,
    o_owner     text
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
    fresh   boolean;
    hold_events  boolean;
    stock_events boolean;
    any_bo  boolean;
    bos     integer[];
begin
    if p_lock_timeout_ms is not null then
        -- Local to this transaction (autocommit: this statement); 0 would mean "no limit".
        perform set_config('lock_timeout', greatest(p_lock_timeout_ms, 1)::text, true);
    end if;
    if n_req > 0 and n_line > 0 and cardinality(array_remove(p_line_ids, null)) = 0 then
        with claimed as (
            insert into inventory.reservations
                   (id, reference_type, reference_id, status, expires_at, request_fingerprint, owner)
            select u.id, u.t, u.r, 'PENDING', now() + make_interval(mins => u.m), u.fp, u.ow
              from unnest(p_ids, p_ref_types, p_ref_ids, p_minutes, p_fps, p_owners)
                   as u(id, t, r, m, fp, ow)
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
                   sl.on_hand - sl.reserved - sl.safety_stock + sl.backorder_limit as available,
                   sl.on_hand - sl.reserved - sl.safety_stock as in_stock, sl.created_at
              from unnest(p_line_req, p_line_refs, p_line_whs, p_line_qtys)
                   with ordinality as l(rq, ref, wh, q, j)
              join inventory.items i on i.sku = l.ref
              join inventory.stock_levels sl on sl.item_id = i.id
             order by sl.id, l.j
               for no key update of sl
        ), per_row as (
            select c.id, sum(c.q) as wanted, min(c.available) as available,
                   min(c.in_stock) as in_stock
              from c group by c.id
        )
        select (select count(*) = n_line and count(distinct (c.rq, c.id)) = n_line
                       and count(distinct c.j) = n_line from c),
               (select coalesce(bool_or(c.wh is not null and c.wh <> c.row_wh), false) from c)
                   or (select coalesce(bool_or(r.wanted > r.available), false) from per_row r),
               (select array_agg(c.id order by c.j) from c),
               (select coalesce(bool_or(c.created_at = now()), false) from c),
               (select coalesce(bool_or(r.wanted > r.in_stock), false) from per_row r)
          into simple, short, levels, fresh, any_bo;

        if simple and short and n_req = 1 then
            delete from inventory.reservations where id = mine[1];
            return query
            select 1, 'short', null::uuid, null::text, i.sku, l.wh, l.q,
                   case when l.wh is not null and l.wh <> sl.warehouse_id then 0
                        else greatest(sl.on_hand - sl.reserved - sl.safety_stock
                                      + sl.backorder_limit, 0) end::bigint,
                   null::text, null::text
              from unnest(p_line_whs, p_line_qtys, levels) with ordinality as l(wh, q, lv, j)
              join inventory.stock_levels sl on sl.id = l.lv
              join inventory.items i on i.id = sl.item_id
             where (l.wh is not null and l.wh <> sl.warehouse_id)
                or sl.on_hand - sl.reserved - sl.safety_stock + sl.backorder_limit < l.q
             order by l.wh is null, l.j;
            return;
        end if;

        if simple and not short then
            -- The outbox triggers stand aside for this statement only (events_inline), which
            -- writes the events they would: reservation.created per hold, stock.changed per
            -- row. A stock row created in this transaction leaves them to the triggers, which
            -- replace its creation's event.
            hold_events := not fresh and inventory.outbox_trigger_on(
                'inventory.reservation_items', 'reservation_items_outbox');
            stock_events := not fresh and inventory.outbox_trigger_on(
                'inventory.stock_levels', 'stock_levels_outbox_update');
            if any_bo then
                -- The units of each line beyond what its row has in stock, the batch's requests
                -- taking in arrival order: only when some row may not cover its lines from stock
                -- (the rows are locked and not yet raised, so they read as `c` read them).
                select array_agg(b.bo order by b.k) into bos
                  from (select t.k,
                               (t.q - greatest(0, least(t.q,
                                   sl.on_hand - sl.reserved - sl.safety_stock
                                   - coalesce(sum(t.q) over (
                                       partition by t.lv order by t.rq, t.k
                                       rows between unbounded preceding and 1 preceding), 0))))
                                   ::integer as bo
                          from unnest(p_line_req, levels, p_line_qtys)
                               with ordinality as t(rq, lv, q, k)
                          join inventory.stock_levels sl on sl.id = t.lv) b;
            end if;
            if not fresh then
                perform set_config('inventory.events_inline', 'on', true);
            end if;
            with raised as (
                update inventory.stock_levels sl
                   set reserved = sl.reserved + t.q, updated_at = now()
                  from (select lv, sum(q)::integer as q
                          from unnest(levels, p_line_qtys) as u(lv, q) group by lv) as t
                 where sl.id = t.lv
                returning sl.id, sl.item_id, sl.warehouse_id, sl.on_hand, sl.reserved, sl.safety_stock,
                          sl.low_stock_threshold, sl.backorder_limit, t.q
            ), lines as (
                insert into inventory.reservation_items
                       (reservation_id, stock_level_id, quantity, backordered)
                select p_ids[t.rq], t.lv, t.q, coalesce(bos[t.k], 0)
                  from unnest(p_line_req, levels, p_line_qtys) with ordinality as t(rq, lv, q, k)
            ), ledger as (
                insert into inventory.movements
                       (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
                select t.lv, 'RESERVE', 0, t.q, p_ids[t.rq]
                  from unnest(p_line_req, levels, p_line_qtys) as t(rq, lv, q)
            ), changed as (
                select r.id, r.warehouse_id, r.on_hand, r.reserved, r.safety_stock,
                       r.low_stock_threshold, r.backorder_limit, r.q, i.sku
                  from raised r
                  join inventory.items i on i.id = r.item_id
            )
            -- One outbox row for the statement's events (see the head of this file): what
            -- the events say, as the statement has it, in arrays; no JSON is built here.
            insert into inventory.event_outbox (type, aggregate_id, payload, n, batch)
            select 'batch', '', null, b.n, b.batch
              from (select (case when hold_events
                                 then (select count(distinct t.rq) from unnest(p_line_req) as t(rq))
                                 else 0 end
                            + case when stock_events
                                   then (select count(*) from changed where q <> 0)
                                   else 0 end)::integer as n,
                           row(case when hold_events then p_ids else '{}' end,
                               p_ref_types, p_ref_ids, p_minutes, p_line_req, levels, p_line_qtys,
                               r.ids, r.skus, r.whs, r.on_hand, r.reserved, r.safety_stock,
                               r.low_stock_threshold, r.backorder_limit, r.evented
                           )::inventory.reserve_batch as batch
                      from (select array_agg(c.id order by c.id) as ids,
                                   array_agg(c.sku order by c.id) as skus,
                                   array_agg(c.warehouse_id order by c.id) as whs,
                                   array_agg(c.on_hand order by c.id) as on_hand,
                                   array_agg(c.reserved order by c.id) as reserved,
                                   array_agg(c.safety_stock order by c.id) as safety_stock,
                                   array_agg(c.low_stock_threshold order by c.id)
                                       as low_stock_threshold,
                                   array_agg(c.backorder_limit order by c.id) as backorder_limit,
                                   array_agg(stock_events and c.q <> 0 order by c.id) as evented
                              from changed c) r) b
             where b.n > 0;
            perform set_config('inventory.events_inline', 'off', true);
            return query select k, 'reserved', p_ids[k], 'PENDING'::text, null::text, null::text,
                                case when any_bo then
                                    (select coalesce(sum(bos[x]), 0)::integer
                                       from generate_series(1, n_line) as x
                                      where p_line_req[x] = k)
                                end,
                                null::bigint, null::text, null::text
                           from generate_series(1, n_req) as k;
            return;
        end if;
    end if;

    if n_claim > 0 then
        delete from inventory.reservations where id = any(mine);
    end if;
    return query select * from inventory.reserve_holds_general(
        p_ids, p_ref_types, p_ref_ids, p_minutes, p_fps, p_owners, p_line_req, p_line_refs,
        p_line_ids, p_line_whs, p_line_qtys);
end
$$;