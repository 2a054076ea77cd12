-- Stock policies (issue 19): per stock row, safety stock, a low-stock threshold, and bounded
-- backorders with an expected restock date (pre-orders).
--
-- safety_stock: units never offered for sale. It is a rule of what is offered, not of what
-- the row may hold: raising it above what is free leaves existing holds alone (they may still
-- be committed or cancelled), which is why it is no part of the row's CHECK constraint.
-- low_stock_threshold: the row is "low" while what it has in stock (on_hand - reserved -
-- safety_stock) is below it; 0 is no threshold. Low rows are counted per warehouse
-- (inventory_low_stock_rows), listed by ListLowStock, and a row crossing below its threshold
-- writes a stock.low event.
-- backorder_limit: how far below zero on_hand may go once the backordered units are
-- committed (0: not at all, as before). The CHECK below is the bound itself, so no path,
-- present or future, commits a unit beyond it: reserved >= 0 and on_hand - reserved >=
-- -backorder_limit (with backorder_limit 0: 0 <= reserved <= on_hand, the seed's rule, under
-- its old name).
-- restock_date: when the next delivery is expected (a pre-order's date), or null.
-- Defaults (0, 0, 0, null) keep every row exactly as it behaved before.
--
-- A row offers on_hand - reserved - safety_stock + backorder_limit (never below zero):
-- availability (CheckInventoryAvailability, the `available` of reads and events) and every
-- reservation path. The three allocation paths hold the same rule: the fast path and the
-- general algorithm here, the Rust reference model through the snapshot it is given
-- (tests/system/inventory/differential.rs draws policies into its scenarios).
--
-- reservation_items.backordered: of a hold's units on a row, those beyond what the row had in
-- stock (on_hand - reserved - safety_stock) when they were taken, the batch's requests
-- taking in arrival order. A restock (on_hand raised: UpsertInventoryItem, AdjustStock, a
-- return) settles backorders first, in the ledger (movements of kind BACKORDER_FILL, no
-- deltas): units owed to committed backorders (on_hand below zero) first, then the pending
-- holds' backordered units, oldest hold first (reservation_items.backordered goes down).
-- Committed holds keep their figure: it records what was sold on backorder. A cancelled
-- in-stock hold does not move another hold's backordered units into stock: only restocks do.
--
-- The functions are those of 20261202000006 (reserve_holds_general) and 20261203000013
-- (reserve_holds, settle_hold_as) with the rule written in, each (hold, row) recording its
-- backordered units, and the policy in their stock.changed payloads. A 'reserved' answer's
-- o_requested is the hold's backordered units (null or 0: none), so the server asks for the
-- lines only when there are some.

alter table inventory.stock_levels
    add column safety_stock integer not null default 0
        constraint stock_levels_safety_stock_not_negative check (safety_stock >= 0),
    add column low_stock_threshold integer not null default 0
        constraint stock_levels_low_stock_threshold_not_negative check (low_stock_threshold >= 0);

alter table inventory.stock_levels
    add column backorder_limit integer not null default 0
        constraint stock_levels_backorder_limit_not_negative check (backorder_limit >= 0),
    add column restock_date date;

alter table inventory.stock_levels drop constraint stock_levels_reserved_within_on_hand;
alter table inventory.stock_levels add constraint stock_levels_reserved_within_on_hand
    check (reserved >= 0 and on_hand::bigint - reserved >= -backorder_limit);

alter table inventory.reservation_items
    add column backordered integer not null default 0,
    add constraint reservation_items_backordered_within_quantity
        check (backordered >= 0 and backordered <= quantity);

alter table inventory.movements drop constraint movements_kind_check;
alter table inventory.movements add constraint movements_kind_check check (kind in
    ('SET', 'ADJUST', 'RESERVE', 'COMMIT', 'CANCEL', 'EXPIRE', 'RETURN', 'RETURN_NO_RESTOCK',
     'BACKORDER_FILL'));

-- The rows with a threshold: what the low-stock gauge and ListLowStock read, without a scan of
-- every row.
create index stock_levels_with_threshold on inventory.stock_levels (warehouse_id)
    where low_stock_threshold > 0;

-- The policy's ledger: every change of a row's policy, with what it was before, who made it
-- and why. A SetStockPolicy that changes nothing writes nothing.
create table inventory.stock_policy_changes (
    id                            bigserial primary key,
    stock_level_id                bigint not null references inventory.stock_levels (id),
    safety_stock                  integer not null,
    low_stock_threshold           integer not null,
    previous_safety_stock         integer not null,
    previous_low_stock_threshold  integer not null,
    backorder_limit               integer,
    previous_backorder_limit      integer,
    restock_date                  date,
    previous_restock_date         date,
    reason                        text not null,
    changed_by                    text,
    created_at                    timestamptz not null default now()
);

create index stock_policy_changes_level on inventory.stock_policy_changes (stock_level_id, id);

-- A restock settles backorders first (see above). Runs in the restock's own statement, under
-- the row's lock, so no hold on the row can be committed or cancelled meanwhile.
create function inventory.fill_backorders() returns trigger
    language plpgsql as $$
declare
    units integer := new.on_hand - old.on_hand;
    owed  integer := least(units, greatest(-old.on_hand, 0));
    rest  integer := units - owed;
begin
    if owed > 0 then
        insert into inventory.movements
               (stock_level_id, kind, on_hand_delta, reserved_delta, reason)
        values (new.id, 'BACKORDER_FILL', 0, 0,
                format('%s units owed to committed backorders delivered', owed));
    end if;
    if rest > 0 then
        with pending as (
            select ri.reservation_id, ri.backordered,
                   coalesce(sum(ri.backordered) over (
                       order by r.created_at, r.id
                       rows between unbounded preceding and 1 preceding), 0) as before
              from inventory.reservation_items ri
              join inventory.reservations r on r.id = ri.reservation_id
             where ri.stock_level_id = new.id and ri.backordered > 0 and r.status = 'PENDING'
        ), filled as (
            select p.reservation_id, least(p.backordered, rest - p.before)::integer as n
              from pending p
             where p.before < rest
        ), settled as (
            update inventory.reservation_items ri
               set backordered = ri.backordered - f.n
              from filled f
             where ri.reservation_id = f.reservation_id and ri.stock_level_id = new.id
        )
        insert into inventory.movements
               (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id, reason)
        select new.id, 'BACKORDER_FILL', 0, 0, f.reservation_id,
               format('%s backordered units of the hold now in stock', f.n)
          from filled f;
    end if;
    return null;
end $$;

create trigger stock_levels_fill_backorders after update of on_hand on inventory.stock_levels
    for each row
    when (new.on_hand > old.on_hand)
    execute function inventory.fill_backorders();

-- stock.changed carries the policy too (an event's `available` is what the row offers), and a
-- policy change is a change of what the row offers: it writes its event as a change of levels does.
create or replace function inventory.outbox_stock_row_changed() returns trigger
    language plpgsql as $$
declare
    item_sku text;
    stock    text;
begin
    select sku into strict item_sku from inventory.items where id = new.item_id;
    stock := item_sku || '/' || new.warehouse_id;
    if new.created_at = now() then
        delete from inventory.event_outbox
         where txid = pg_current_xact_id() and type = 'stock.changed' and aggregate_id = stock;
    end if;
    insert into inventory.event_outbox (type, aggregate_id, payload)
    values ('stock.changed', stock,
            jsonb_build_object('sku', item_sku, 'warehouse_id', new.warehouse_id,
                               'on_hand', new.on_hand, 'reserved', new.reserved,
                               'safety_stock', new.safety_stock,
                               'low_stock_threshold', new.low_stock_threshold,
                               'backorder_limit', new.backorder_limit));
    return null;
end $$;

drop trigger stock_levels_outbox_update on inventory.stock_levels;
create trigger stock_levels_outbox_update after update on inventory.stock_levels
    for each row
    when ((new.on_hand <> old.on_hand or new.reserved <> old.reserved or new.created_at = now()
           or new.safety_stock <> old.safety_stock
           or new.low_stock_threshold <> old.low_stock_threshold
           or new.backorder_limit <> old.backorder_limit)
          and current_setting('inventory.events_inline', true) is distinct from 'on')
    execute function inventory.outbox_stock_row_changed();

-- stock.low: a row went from not low to low (any path: a reserve, a commit, an adjustment, a
-- policy change). Not in events_inline's care: it fires after the statement's own events, so
-- a consumer sees the stock.changed that made the row low first (the trigger's name sorts
-- after stock_levels_outbox_update for the same reason). Rows without a threshold never call
-- it: the WHEN clause is all they pay.
create function inventory.outbox_stock_low() returns trigger
    language plpgsql as $$
declare
    item_sku text;
begin
    select sku into strict item_sku from inventory.items where id = new.item_id;
    insert into inventory.event_outbox (type, aggregate_id, payload)
    values ('stock.low', item_sku || '/' || new.warehouse_id,
            jsonb_build_object('sku', item_sku, 'warehouse_id', new.warehouse_id,
                               'on_hand', new.on_hand, 'reserved', new.reserved,
                               'safety_stock', new.safety_stock,
                               'low_stock_threshold', new.low_stock_threshold,
                               'backorder_limit', new.backorder_limit));
    return null;
end $$;

create trigger stock_levels_outbox_update_low after update on inventory.stock_levels
    for each row
    when (new.low_stock_threshold > 0
          and new.on_hand - new.reserved - new.safety_stock < new.low_stock_threshold
          and not (old.low_stock_threshold > 0
                   and old.on_hand - old.reserved - old.safety_stock < old.low_stock_threshold))
    execute function inventory.outbox_stock_low();

create or replace function inventory.reserve_holds_general(
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
    p_line_qtys integer[]
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
set plan_cache_mode = force_generic_plan
as $$
declare
    n_req    integer := coalesce(cardinality(p_ids), 0);
    n_line   integer := coalesce(cardinality(p_line_req), 0);
    claim    uuid[];            -- per request: the claim row of its reference taken here
    one      uuid;
    n_claim  integer;
    live_id  uuid[];            -- per request whose reference is held elsewhere: that hold
    live_st  text[];
    live_fp  text[];
    live_ow  text[];
    won      uuid[] := '{}';    -- claims a request of this call turned into a hold
    -- locked stock rows ("slots"), in id order
    n_slot   integer := 0;
    s_id     bigint[] := '{}';
    s_sku    text[] := '{}';
    s_wh     text[] := '{}';
    s_init   bigint[] := '{}';
    rem      bigint[] := '{}';  -- units of the row still offered to this call (backorders too)
    s_free   bigint[] := '{}';  -- of them, units in stock (may be negative): the rest is backordered
    s_req    integer[] := '{}'; -- the request that last took from the row, and where
    s_at     integer[] := '{}';
    -- (line, row) candidate pairs: each line's list, in row id order
    n_pair   integer := 0;
    p_slot   integer[] := '{}';
    p_next   integer[] := '{}';
    p_byid   boolean[] := '{}';  -- the pair's item is the one whose id the line gives
    l_head   integer[];
    l_tail   integer[];
    l_byid   boolean[];          -- the line resolved to an item by id
    -- what the winning requests take, one entry per (hold, row)
    n_w      integer := 0;
    w_res    uuid[] := '{}';
    w_slot   integer[] := '{}';
    w_level  bigint[] := '{}';
    w_qty    integer[] := '{}';
    w_bo     integer[] := '{}';  -- of w_qty, the units taken on backorder
    -- the request being evaluated: its unknown refs and short lines
    u_refs   text[];
    f_sku    text[];
    f_wh     text[];
    f_req    integer[];
    f_av     bigint[];
    v_j      integer;
    v_id     bigint;
    v_sku    text;
    v_wh     text;
    v_av     bigint;
    v_byid   boolean;
    v_free   bigint;
    bo       bigint;
    only_id  boolean;
    k        integer;
    j        integer := 1;
    lo       integer;
    hi       integer;
    w_start  integer;
    ln       integer;
    pass     integer;
    x        integer;
    sl       integer;
    best     integer;
    wh       text;
    want     bigint;
    total    bigint;
    take     bigint;
begin
    if n_req = 0 then
        return;
    end if;

    -- 1. Claim each distinct reference once (for its first request), in reference order.
    if n_req = 1 then
        insert into inventory.reservations
               (id, reference_type, reference_id, status, expires_at, request_fingerprint, owner)
        values (p_ids[1], p_ref_types[1], p_ref_ids[1], 'PENDING',
                now() + make_interval(mins => p_minutes[1]), p_fps[1], p_owners[1])
        on conflict (reference_type, reference_id) where status in ('PENDING', 'COMMITTED')
        do nothing
        returning id into one;
        claim := array[one];
    else
        with wanted as (
            select distinct on (u.t, u.r) u.t, u.r, u.id, u.m, u.fp, u.ow
              from unnest(p_ref_types, p_ref_ids, p_ids, p_minutes, p_fps, p_owners)
                   with ordinality as u(t, r, id, m, fp, ow, k)
             order by u.t, u.r, u.k
        ), claimed as (
            insert into inventory.reservations
                   (id, reference_type, reference_id, status, expires_at, request_fingerprint, owner)
            select w.id, w.t, w.r, 'PENDING', now() + make_interval(mins => w.m), w.fp, w.ow
              from wanted w
             order by w.t, w.r
            on conflict (reference_type, reference_id) where status in ('PENDING', 'COMMITTED')
            do nothing
            returning id, reference_type, reference_id
        )
        select array_agg(c.id order by u.k)
          from unnest(p_ref_types, p_ref_ids) with ordinality as u(t, r, k)
          left join claimed c on c.reference_type = u.t and c.reference_id = u.r
          into claim;
    end if;

    n_claim := cardinality(array_remove(claim, null));
    if n_claim < n_req then
        -- A new statement, a new snapshot: it sees the hold our claim conflicted with.
        select array_agg(h.id order by u.k), array_agg(h.status order by u.k),
               array_agg(h.request_fingerprint order by u.k), array_agg(h.owner order by u.k)
          from unnest(p_ref_types, p_ref_ids, claim) with ordinality as u(t, r, c, k)
          left join inventory.reservations h
            on u.c is null and h.reference_type = u.t and h.reference_id = u.r
           and h.status in ('PENDING', 'COMMITTED')
          into live_id, live_st, live_fp, live_ow;
    end if;

    -- 2. Lock every candidate stock row of the claiming requests, in id order; note each
    --    line's candidates. A line names one item: the item with that id when the ref is
    --    the id of an item with stock rows, else the item with that SKU (so a UUID-shaped
    --    SKU of one item never makes a line draw on two items). Both are locked.
    l_head := array_fill(null::integer, array[greatest(n_line, 1)]);
    l_tail := l_head;
    l_byid := array_fill(false, array[greatest(n_line, 1)]);
    if n_claim > 0 then
        for v_j, v_id, v_sku, v_wh, v_av, v_byid, v_free in
            select l.j::integer, sl.id, it.sku, sl.warehouse_id,
                   greatest(sl.on_hand - sl.reserved - sl.safety_stock + sl.backorder_limit, 0)::bigint,
                   it.by_id, (sl.on_hand - sl.reserved - sl.safety_stock)::bigint
              from unnest(p_line_req, p_line_refs, p_line_ids) with ordinality as l(rq, ref, iid, j)
             cross join lateral (
                   select i.id, i.sku, true as by_id
                     from inventory.items i where l.iid is not null and i.id = l.iid
                   union all
                   select i.id, i.sku, false
                     from inventory.items i where i.sku = l.ref and i.id is distinct from l.iid
                   ) it
              join inventory.stock_levels sl on sl.item_id = it.id
             where claim[l.rq] is not null
             order by sl.id, l.j
               for no key update of sl
        loop
            if n_slot = 0 or s_id[n_slot] <> v_id then
                n_slot := n_slot + 1;
                s_id[n_slot] := v_id;
                s_sku[n_slot] := v_sku;
                s_wh[n_slot] := v_wh;
                s_init[n_slot] := v_av;
                rem[n_slot] := v_av;
                s_free[n_slot] := v_free;
                s_req[n_slot] := 0;
                s_at[n_slot] := 0;
            end if;
            n_pair := n_pair + 1;
            p_slot[n_pair] := n_slot;
            p_next[n_pair] := null;
            p_byid[n_pair] := v_byid;
            if v_byid then
                l_byid[v_j] := true;
            end if;
            if l_head[v_j] is null then
                l_head[v_j] := n_pair;
            else
                p_next[l_tail[v_j]] := n_pair;
            end if;
            l_tail[v_j] := n_pair;
        end loop;
    end if;

    -- 3. Each request in arrival order, all-or-nothing, against what is left.
    for k in 1 .. n_req loop
        lo := j;
        while j <= n_line and p_line_req[j] = k loop
            j := j + 1;
        end loop;
        hi := j - 1;
        o_req := k;
        o_item := null; o_warehouse := null; o_requested := null; o_available := null;
        o_fingerprint := null; o_owner := null;

        if claim[k] is null then
            -- The reference has a live hold from another transaction (or had one).
            o_outcome := case when live_id[k] is null then 'vanished' else 'existing' end;
            o_hold := live_id[k];
            o_status := live_st[k];
            o_fingerprint := live_fp[k];
            o_owner := live_ow[k];
            return next;
            continue;
        end if;
        if claim[k] = any(won) then
            -- A retry of a reference an earlier request of this call took.
            o_outcome := 'existing'; o_hold := claim[k]; o_status := 'PENDING';
            select r.request_fingerprint, r.owner into o_fingerprint, o_owner
              from inventory.reservations r where r.id = claim[k];
            return next;
            continue;
        end if;

        w_start := n_w;
        u_refs := '{}'; f_sku := '{}'; f_wh := '{}'; f_req := '{}'; f_av := '{}';
        -- Lines naming a warehouse first (their demand is fixed), then "any warehouse" lines.
        for pass in 1 .. 2 loop
            for ln in lo .. hi loop
                wh := p_line_whs[ln];
                if (wh is not null) <> (pass = 1) then
                    continue;
                end if;
                x := l_head[ln];
                if x is null then
                    u_refs := u_refs || p_line_refs[ln];
                    continue;
                end if;
                want := p_line_qtys[ln];
                total := 0;
                best := null;
                only_id := l_byid[ln];
                v_sku := null;
                -- The candidates in row id order; the fullest (ties: warehouse id in byte
                -- order, then row id) is the first to take from.
                while x is not null loop
                    sl := p_slot[x];
                    if only_id and not p_byid[x] then
                        x := p_next[x];
                        continue;
                    end if;
                    if v_sku is null then
                        v_sku := s_sku[sl];
                    end if;
                    if wh is null or s_wh[sl] = wh then
                        total := total + rem[sl];
                        if rem[sl] > 0 and (best is null or rem[sl] > rem[best]
                               or (rem[sl] = rem[best] and s_wh[sl] collate "C" < s_wh[best] collate "C")) then
                            best := sl;
                        end if;
                    end if;
                    x := p_next[x];
                end loop;
                if total < want then
                    f_sku := f_sku || v_sku;
                    f_wh := f_wh || wh;
                    f_req := f_req || p_line_qtys[ln];
                    f_av := f_av || total;
                    continue;
                end if;
                loop
                    take := least(want, rem[best]);
                    rem[best] := rem[best] - take;
                    bo := take - greatest(0, least(take, s_free[best]));
                    s_free[best] := s_free[best] - take;
                    want := want - take;
                    if s_req[best] = k then
                        w_qty[s_at[best]] := w_qty[s_at[best]] + take;
                        w_bo[s_at[best]] := w_bo[s_at[best]] + bo;
                    else
                        n_w := n_w + 1;
                        w_res[n_w] := claim[k];
                        w_slot[n_w] := best;
                        w_level[n_w] := s_id[best];
                        w_qty[n_w] := take;
                        w_bo[n_w] := bo;
                        s_req[best] := k;
                        s_at[best] := n_w;
                    end if;
                    exit when want = 0;
                    -- The next fullest.
                    best := null;
                    x := l_head[ln];
                    while x is not null loop
                        sl := p_slot[x];
                        if (wh is null or s_wh[sl] = wh) and rem[sl] > 0
                           and (p_byid[x] or not only_id)
                           and (best is null or rem[sl] > rem[best]
                                or (rem[sl] = rem[best] and s_wh[sl] collate "C" < s_wh[best] collate "C")) then
                            best := sl;
                        end if;
                        x := p_next[x];
                    end loop;
                end loop;
            end loop;
        end loop;

        if cardinality(u_refs) > 0 or cardinality(f_sku) > 0 then
            -- Refused: give back what the request's lines took.
            for x in w_start + 1 .. n_w loop
                rem[w_slot[x]] := rem[w_slot[x]] + w_qty[x];
                s_free[w_slot[x]] := s_free[w_slot[x]] + w_qty[x];
                s_req[w_slot[x]] := 0;
            end loop;
            n_w := w_start;
            o_hold := null; o_status := null;
            if cardinality(u_refs) > 0 then
                o_outcome := 'unknown';
                for x in 1 .. cardinality(u_refs) loop
                    o_item := u_refs[x];
                    return next;
                end loop;
            else
                o_outcome := 'short';
                for x in 1 .. cardinality(f_sku) loop
                    o_item := f_sku[x]; o_warehouse := f_wh[x];
                    o_requested := f_req[x]; o_available := f_av[x];
                    return next;
                end loop;
            end if;
            continue;
        end if;

        won := won || claim[k];
        if claim[k] <> p_ids[k] then
            -- An earlier request of this reference was refused; this one took its claim.
            update inventory.reservations
               set expires_at = now() + make_interval(mins => p_minutes[k]),
                   request_fingerprint = p_fps[k], owner = p_owners[k]
             where id = claim[k];
        end if;
        o_outcome := 'reserved'; o_hold := claim[k]; o_status := 'PENDING';
        o_requested := 0;
        for x in w_start + 1 .. n_w loop
            o_requested := o_requested + w_bo[x];
        end loop;
        return next;
    end loop;

    -- 4. Write what the winners took; drop the claims nobody took.
    if n_w > 0 then
        with u as (
            update inventory.stock_levels sl
               set reserved = sl.reserved + (t.init - t.rest)::integer, updated_at = now()
              from unnest(s_id, s_init, rem) as t(id, init, rest)
             where sl.id = t.id and t.rest < t.init
        ), i as (
            insert into inventory.reservation_items
                   (reservation_id, stock_level_id, quantity, backordered)
            select * from unnest(w_res[1:n_w], w_level[1:n_w], w_qty[1:n_w], w_bo[1:n_w])
        )
        insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
        select t.lv, 'RESERVE', 0, t.q, t.r from unnest(w_level[1:n_w], w_qty[1:n_w], w_res[1:n_w]) as t(lv, q, r);
    end if;
    if cardinality(won) < n_claim then
        delete from inventory.reservations where id = any(claim) and id <> all(won);
    end if;
end
$$;

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
                                              'on_hand', r.on_hand, 'reserved', r.reserved,
                                              'safety_stock', r.safety_stock,
                                              'low_stock_threshold', r.low_stock_threshold,
                                              'backorder_limit', r.backorder_limit)
                      from changed r
                     where stock_events and r.q <> 0) e
             order by e.k, e.hold, e.row_id;
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
        returning sl.id, sl.item_id, sl.warehouse_id, sl.on_hand, sl.reserved, sl.safety_stock,
                  sl.low_stock_threshold, sl.backorder_limit, ri.quantity
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
                                      'on_hand', u.on_hand, 'reserved', u.reserved,
                                      'safety_stock', u.safety_stock,
                                      'low_stock_threshold', u.low_stock_threshold,
                                      'backorder_limit', u.backorder_limit)
              from u
              join inventory.items i on i.id = u.item_id
             where v_stock_events and u.quantity <> 0) e
     order by e.k, e.row_id;
    perform set_config('inventory.events_inline', 'off', true);

    return next;
end
$$;
