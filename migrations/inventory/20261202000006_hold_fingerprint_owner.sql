-- A reference holds one request, and a hold remembers who took it.
--
-- reservations.request_fingerprint: a hash of the request's lines (item as given, warehouse,
-- quantity; computed by the server, order-insensitive). A retry of the same request under a
-- live reference gets the hold back; a different request under it is refused by the server
-- (ALREADY_EXISTS), which needs the live hold's fingerprint: 'existing' rows now return it.
-- reservations.owner: the client identity (mutual TLS) that took the hold, null without one.
-- Commit, cancel and reads by another identity are refused (PERMISSION_DENIED) unless the
-- caller may settle any hold. Holds taken before this migration have neither (null): any
-- retry matches them and any caller may settle them, as before.
--
-- The functions are those of 20261124000002 (general algorithm), 20261125000005 (fast path)
-- and 20261124000003 (settle) with the two columns written and returned; the allocation is
-- unchanged (tests/system/inventory/differential.rs). They take new names, so that a replica
-- of the previous release, still calling inventory.reserve_many / settle_hold during a rolling
-- upgrade, keeps working until it is replaced; a later migration drops the old functions.
--
-- inventory.reserve_holds(...) and inventory.reserve_holds_general(...): the arguments of
-- reserve_many plus, per request, p_fps (its fingerprint) and p_owners (its caller, or null);
-- returned rows add o_fingerprint and o_owner, set on 'existing' rows only (the live hold's).
-- inventory.settle_hold_as(id, commit, caller): as settle_hold, but with a non-null caller a
-- hold owned by someone else is left as it is; o_owner tells the server whose it is.

alter table inventory.reservations
    add column request_fingerprint text,
    add column owner text;

create function inventory.reserve_holds_general(
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
    rem      bigint[] := '{}';  -- units of the row still free for this call
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
        for v_j, v_id, v_sku, v_wh, v_av, v_byid in
            select l.j::integer, sl.id, it.sku, sl.warehouse_id,
                   greatest(sl.on_hand - sl.reserved, 0)::bigint, it.by_id
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
                    want := want - take;
                    if s_req[best] = k then
                        w_qty[s_at[best]] := w_qty[s_at[best]] + take;
                    else
                        n_w := n_w + 1;
                        w_res[n_w] := claim[k];
                        w_slot[n_w] := best;
                        w_level[n_w] := s_id[best];
                        w_qty[n_w] := take;
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
            insert into inventory.reservation_items (reservation_id, stock_level_id, quantity)
            select * from unnest(w_res[1:n_w], w_level[1:n_w], w_qty[1:n_w])
        )
        insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
        select t.lv, 'RESERVE', 0, t.q, t.r from unnest(w_level[1:n_w], w_qty[1:n_w], w_res[1:n_w]) as t(lv, q, r);
    end if;
    if cardinality(won) < n_claim then
        delete from inventory.reservations where id = any(claim) and id <> all(won);
    end if;
end
$$;

create function inventory.reserve_holds(
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

create function inventory.settle_hold_as(p_id uuid, p_commit boolean, p_caller text)
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

    perform 1
       from inventory.stock_levels sl
      where sl.id in (select ri.stock_level_id from inventory.reservation_items ri
                       where ri.reservation_id = p_id)
      order by sl.id
        for update;

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
    ), r as (
        update inventory.reservations set status = o_now, updated_at = now() where id = p_id
    )
    insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
    select ri.stock_level_id, v_kind, -(v_consumes * ri.quantity), -ri.quantity, p_id from ri;

    return next;
end
$$;
