-- The hot paths write their events in their own statement (issue 18's benchmark). A reserve
-- of one hold with three lines called four trigger functions (three stock rows, one hold),
-- each a PL/pgSQL call with its own lookups; the reserve's statement already has the rows,
-- their SKUs and the holds, and writes the same events as one more insert. pgbench, reserve
-- of one hold of three lines with the relay every 50 ms, against the outbox off: 0.89 of its
-- throughput written inline, 0.78 through the triggers (BENCHMARKS.md, "The transactional
-- outbox's cost").
--
-- The triggers stay, for every other path (admin changes, returns, the general reserve, rows
-- created in the same transaction); they stand aside while inventory.events_inline is 'on',
-- which reserve_holds and settle_hold_as set (transaction-local, so a rolled-back savepoint
-- or transaction restores it) for their one statement and set 'off' after it. The events are
-- the same as the triggers' (a system test compares the two). A disabled outbox trigger still
-- turns its events off on every path (outbox_trigger_on): that is how the benchmark measures
-- the pair without the outbox.

-- Whether the outbox trigger `p_trigger` on `p_table` is enabled.
create function inventory.outbox_trigger_on(p_table regclass, p_trigger name) returns boolean
    language sql stable as $$
    select coalesce((select t.tgenabled <> 'D' from pg_catalog.pg_trigger t
                      where t.tgrelid = p_table and t.tgname = p_trigger), false)
$$;

drop trigger stock_levels_outbox_update on inventory.stock_levels;
create trigger stock_levels_outbox_update after update on inventory.stock_levels
    for each row
    when ((new.on_hand <> old.on_hand or new.reserved <> old.reserved or new.created_at = now())
          and current_setting('inventory.events_inline', true) is distinct from 'on')
    execute function inventory.outbox_stock_row_changed();

drop trigger reservation_items_outbox on inventory.reservation_items;
create trigger reservation_items_outbox after insert on inventory.reservation_items
    referencing new table as new_rows
    for each statement
    when (current_setting('inventory.events_inline', true) is distinct from 'on')
    execute function inventory.outbox_hold_created();

drop trigger reservations_outbox on inventory.reservations;
create trigger reservations_outbox after update on inventory.reservations
    referencing old table as old_rows new table as new_rows
    for each statement
    when (current_setting('inventory.events_inline', true) is distinct from 'on')
    execute function inventory.outbox_hold_settled();

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
                   sl.on_hand - sl.reserved as available, sl.created_at
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
               (select array_agg(c.id order by c.j) from c),
               (select coalesce(bool_or(c.created_at = now()), false) from c)
          into simple, short, levels, fresh;

        if simple and short and n_req = 1 then
            delete from inventory.reservations where id = mine[1];
            return query
            select 1, 'short', null::uuid, null::text, i.sku, l.wh, l.q,
                   case when l.wh is not null and l.wh <> sl.warehouse_id then 0
                        else greatest(sl.on_hand - sl.reserved, 0) end::bigint,
                   null::text, null::text
              from unnest(p_line_whs, p_line_qtys, levels) with ordinality as l(wh, q, lv, j)
              join inventory.stock_levels sl on sl.id = l.lv
              join inventory.items i on i.id = sl.item_id
             where (l.wh is not null and l.wh <> sl.warehouse_id)
                or sl.on_hand - sl.reserved < l.q
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
            if not fresh then
                perform set_config('inventory.events_inline', 'on', true);
            end if;
            with raised as (
                update inventory.stock_levels sl
                   set reserved = sl.reserved + t.q, updated_at = now()
                  from (select lv, sum(q)::integer as q
                          from unnest(levels, p_line_qtys) as u(lv, q) group by lv) as t
                 where sl.id = t.lv
                returning sl.id, sl.item_id, sl.warehouse_id, sl.on_hand, sl.reserved, t.q
            ), lines as (
                insert into inventory.reservation_items (reservation_id, stock_level_id, quantity)
                select p_ids[t.rq], t.lv, t.q
                  from unnest(p_line_req, levels, p_line_qtys) as t(rq, lv, q)
            ), ledger as (
                insert into inventory.movements
                       (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
                select t.lv, 'RESERVE', 0, t.q, p_ids[t.rq]
                  from unnest(p_line_req, levels, p_line_qtys) as t(rq, lv, q)
            ), changed as (
                select r.id, r.warehouse_id, r.on_hand, r.reserved, r.q, i.sku
                  from raised r
                  join inventory.items i on i.id = r.item_id
            ), holds as (
                select t.rq,
                       jsonb_agg(jsonb_build_object('sku', r.sku, 'warehouse_id', r.warehouse_id,
                                                    'quantity', t.q)
                                 order by t.lv) as lines
                  from unnest(p_line_req, levels, p_line_qtys) as t(rq, lv, q)
                  join changed r on r.id = t.lv
                 group by t.rq
            )
            insert into inventory.event_outbox (type, aggregate_id, payload)
            select e.type, e.aggregate_id, e.payload
              from (select 1 as k, p_ids[h.rq] as hold, 0::bigint as row_id,
                           'reservation.created' as type, p_ids[h.rq]::text as aggregate_id,
                           jsonb_build_object('reservation_id', p_ids[h.rq],
                                              'reference_type', p_ref_types[h.rq],
                                              'reference_id', p_ref_ids[h.rq],
                                              'status', 'PENDING',
                                              'expires_at',
                                              now() + make_interval(mins => p_minutes[h.rq]),
                                              'lines', h.lines) as payload
                      from holds h
                     where hold_events
                    union all
                    select 2, null, r.id, 'stock.changed', r.sku || '/' || r.warehouse_id,
                           jsonb_build_object('sku', r.sku, 'warehouse_id', r.warehouse_id,
                                              'on_hand', r.on_hand, 'reserved', r.reserved)
                      from changed r
                     where stock_events and r.q <> 0) e
             order by e.k, e.hold, e.row_id;
            perform set_config('inventory.events_inline', 'off', true);
            return query select k, 'reserved', p_ids[k], 'PENDING'::text, null::text, null::text,
                                null::integer, null::bigint, null::text, null::text
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

create or replace function inventory.settle_hold_as(p_id uuid, p_commit boolean, p_caller text)
returns table (o_was text, o_now text, o_owner text)
language plpgsql
volatile
set plan_cache_mode = force_generic_plan
as $$
declare
    v_status   text;
    v_lapsed   boolean;
    v_consumes integer;
    v_kind     text;
    v_fresh    boolean;
    v_hold_events  boolean;
    v_stock_events boolean;
begin
    select r.status, r.expires_at <= now(), r.owner into v_status, v_lapsed, o_owner
      from inventory.reservations r
     where r.id = p_id
       for update;
    if not found then
        return;
    end if;
    o_was := v_status;
    -- Another caller's hold: reported (o_owner), never moved.
    if v_status <> 'PENDING' or (p_caller is not null and o_owner is distinct from p_caller
                                 and o_owner is not null) then
        o_now := null;
        return next;
        return;
    end if;

    if p_commit and not v_lapsed then
        o_now := 'COMMITTED'; v_kind := 'COMMIT'; v_consumes := 1;
    elsif p_commit then
        o_now := 'EXPIRED'; v_kind := 'EXPIRE'; v_consumes := 0;
    else
        o_now := 'CANCELLED'; v_kind := 'CANCEL'; v_consumes := 0;
    end if;

    select coalesce(bool_or(locked.fresh), false) into v_fresh
      from (select sl.created_at = now() as fresh
              from inventory.stock_levels sl
             where sl.id in (select ri.stock_level_id from inventory.reservation_items ri
                              where ri.reservation_id = p_id)
             order by sl.id
               for update) locked;
    -- The outbox triggers stand aside for this statement only (events_inline), which writes the
    -- events they would: reservation.<status>, then stock.changed per row. A stock row created
    -- in this transaction leaves them to the triggers, which replace its creation's event.
    v_hold_events := not v_fresh and inventory.outbox_trigger_on(
        'inventory.reservations', 'reservations_outbox');
    v_stock_events := not v_fresh and inventory.outbox_trigger_on(
        'inventory.stock_levels', 'stock_levels_outbox_update');
    if not v_fresh then
        perform set_config('inventory.events_inline', 'on', true);
    end if;
    with ri as (
        select ri.stock_level_id, ri.quantity
          from inventory.reservation_items ri
         where ri.reservation_id = p_id
    ), u as (
        update inventory.stock_levels sl
           set on_hand = sl.on_hand - v_consumes * ri.quantity,
               reserved = sl.reserved - ri.quantity,
               updated_at = now()
          from ri
         where sl.id = ri.stock_level_id
        returning sl.id, sl.item_id, sl.warehouse_id, sl.on_hand, sl.reserved, ri.quantity
    ), r as (
        update inventory.reservations set status = o_now, updated_at = now() where id = p_id
        returning id, reference_type, reference_id, status, expires_at
    ), ledger as (
        insert into inventory.movements
               (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
        select ri.stock_level_id, v_kind, -(v_consumes * ri.quantity), -ri.quantity, p_id from ri
    )
    insert into inventory.event_outbox (type, aggregate_id, payload)
    select e.type, e.aggregate_id, e.payload
      from (select 1 as k, 0::bigint as row_id, 'reservation.' || lower(r.status) as type,
                   r.id::text as aggregate_id,
                   jsonb_build_object('reservation_id', r.id, 'reference_type', r.reference_type,
                                      'reference_id', r.reference_id, 'status', r.status,
                                      'expires_at', r.expires_at) as payload
              from r
             where v_hold_events
            union all
            select 2, u.id, 'stock.changed', i.sku || '/' || u.warehouse_id,
                   jsonb_build_object('sku', i.sku, 'warehouse_id', u.warehouse_id,
                                      'on_hand', u.on_hand, 'reserved', u.reserved)
              from u
              join inventory.items i on i.id = u.item_id
             where v_stock_events and u.quantity <> 0) e
     order by e.k, e.row_id;
    perform set_config('inventory.events_inline', 'off', true);

    return next;
end
$$;
