-- ReserveInventory in one database round trip, for one request or a batch of concurrent ones.
--
-- inventory.reserve_many(...) does, inside the caller's statement (autocommit: one
-- transaction, one commit for the whole batch), what the service used to do in seven round
-- trips while holding row locks:
--   1. claims each distinct reference once, in (reference_type, reference_id) order, by
--      inserting its PENDING row ON CONFLICT DO NOTHING on the partial unique index of live
--      holds: a racing retry of the same reference waits here for the first attempt, then
--      finds its hold. A reference held by another transaction is answered 'existing' (or
--      'vanished' when that hold ended between the conflict and the read);
--   2. locks every stock row of every item the claiming requests name, in ONE statement
--      ORDER BY stock_levels.id FOR NO KEY UPDATE: reservation rows before stock rows, stock
--      rows by ascending id, the one global lock order (ARCHITECTURE.md), across the whole
--      batch. NO KEY UPDATE is the lock an UPDATE takes: it excludes every other writer of
--      the row (their FOR UPDATE / UPDATE wait) but not the foreign-key checks of rows that
--      merely reference it;
--   3. evaluates the requests in arrival order, all-or-nothing each, against what is left
--      after the earlier ones, with exactly the algorithm of domain::allocation::allocate
--      (tests/system/inventory/differential.rs compares the two): lines naming a warehouse
--      are served first, then "any warehouse" lines, each group in line order; a named line
--      takes only from its warehouse; an "any" line from the warehouse with the most left
--      first, ties by warehouse id (byte order), then row id; several lines of one item share
--      its stock; a line naming no known item makes the request 'unknown' (every such ref,
--      in that order), else a line without enough stock makes it 'short' (every short line,
--      with what was left for it). A refused request takes nothing; the later ones go on;
--   4. writes everything in one statement: reserved raised, reservation lines and RESERVE
--      movements inserted (one per hold and stock row); claims that no request took are
--      deleted (never visible outside).
--
-- Written for speed (it is the hot path; see BENCHMARKS.md): plain loops over small arrays,
-- each line's candidate rows as a linked list in row id order, what each hold takes summed
-- per stock row as it is taken, and only three statements for a single request.
--
-- Arguments: per request (1-based, arrival order) its new hold id, reference and expiry in
-- minutes; per line the 1-based index of its request (a request's lines are contiguous and
-- requests appear in order), the item as given (matched against SKUs), the same as an item
-- id when it parses as a UUID (else null), the warehouse (null: any) and the quantity.
--
-- Returns, in request order, one row per request for 'reserved' / 'existing' / 'vanished'
-- (o_hold, o_status), one row per unknown line for 'unknown' (o_item = the ref) and one row
-- per short line for 'short' (o_item = SKU, o_warehouse, o_requested, o_available).
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
as $$
declare
    n_req    integer := coalesce(cardinality(p_ids), 0);
    n_line   integer := coalesce(cardinality(p_line_req), 0);
    claim    uuid[];            -- per request: the claim row of its reference taken here
    one      uuid;
    n_claim  integer;
    live_id  uuid[];            -- per request whose reference is held elsewhere: that hold
    live_st  text[];
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
        insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
        values (p_ids[1], p_ref_types[1], p_ref_ids[1], 'PENDING',
                now() + make_interval(mins => p_minutes[1]))
        on conflict (reference_type, reference_id) where status in ('PENDING', 'COMMITTED')
        do nothing
        returning id into one;
        claim := array[one];
    else
        with wanted as (
            select distinct on (u.t, u.r) u.t, u.r, u.id, u.m
              from unnest(p_ref_types, p_ref_ids, p_ids, p_minutes) with ordinality as u(t, r, id, m, k)
             order by u.t, u.r, u.k
        ), claimed as (
            insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
            select w.id, w.t, w.r, 'PENDING', now() + make_interval(mins => w.m)
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
        select array_agg(h.id order by u.k), array_agg(h.status order by u.k)
          from unnest(p_ref_types, p_ref_ids, claim) with ordinality as u(t, r, c, k)
          left join inventory.reservations h
            on u.c is null and h.reference_type = u.t and h.reference_id = u.r
           and h.status in ('PENDING', 'COMMITTED')
          into live_id, live_st;
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

        if claim[k] is null then
            -- The reference has a live hold from another transaction (or had one).
            o_outcome := case when live_id[k] is null then 'vanished' else 'existing' end;
            o_hold := live_id[k];
            o_status := live_st[k];
            return next;
            continue;
        end if;
        if claim[k] = any(won) then
            -- A retry of a reference an earlier request of this call took.
            o_outcome := 'existing'; o_hold := claim[k]; o_status := 'PENDING';
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
               set expires_at = now() + make_interval(mins => p_minutes[k])
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
