-- The transactional outbox and the event log (issue 18).
--
-- Triggers write an outbox row in the same statement as every change others care about, so
-- no change commits without its event and a rolled-back change leaves none, whatever path
-- made it (the reserve functions, settle, the sweeper, admin RPCs, returns).
--
-- event_outbox rows have no position yet: transactions commit in any order, so a number
-- taken at insert would let a consumer read position 8 before 7 commits and skip 7 for
-- good. The relay (common::events::relay) moves committed outbox rows into `events`,
-- numbering them event_log.last_position + 1, + 2, ... under event_log's row lock: one relay
-- at a time over all replicas, positions consecutive and in the order they became visible,
-- never reused. Retention removes the oldest events and records the last removed position
-- in event_log.removed_through (a consumer behind it is told, not silently skipped).

create table inventory.event_outbox (
    id            bigserial primary key,
    type          text not null,
    aggregate_id  text not null,
    payload       jsonb not null,
    occurred_at   timestamptz not null default now()
);

create table inventory.events (
    position      bigint primary key,
    type          text not null,
    aggregate_id  text not null,
    payload       jsonb not null,
    occurred_at   timestamptz not null,
    published_at  timestamptz not null default now()
);

create table inventory.event_log (
    singleton        boolean primary key default true check (singleton),
    last_position    bigint not null default 0,
    removed_through  bigint not null default 0 check (removed_through <= last_position)
);

insert into inventory.event_log default values;

-- stock.changed, one per stock row a statement created or whose on_hand or reserved it
-- changed (an updated_at-only touch is no event).
create function inventory.outbox_stock_created() returns trigger
    language plpgsql as $$
begin
    insert into inventory.event_outbox (type, aggregate_id, payload)
    select 'stock.changed', i.sku || '/' || n.warehouse_id,
           jsonb_build_object('sku', i.sku, 'warehouse_id', n.warehouse_id,
                              'on_hand', n.on_hand, 'reserved', n.reserved)
      from new_rows n
      join inventory.items i on i.id = n.item_id
     order by n.id;
    return null;
end $$;

create function inventory.outbox_stock_changed() returns trigger
    language plpgsql as $$
begin
    insert into inventory.event_outbox (type, aggregate_id, payload)
    select 'stock.changed', i.sku || '/' || n.warehouse_id,
           jsonb_build_object('sku', i.sku, 'warehouse_id', n.warehouse_id,
                              'on_hand', n.on_hand, 'reserved', n.reserved)
      from new_rows n
      join old_rows o on o.id = n.id
      join inventory.items i on i.id = n.item_id
     where n.on_hand <> o.on_hand or n.reserved <> o.reserved
     order by n.id;
    return null;
end $$;

create trigger stock_levels_outbox_insert after insert on inventory.stock_levels
    referencing new table as new_rows
    for each statement execute function inventory.outbox_stock_created();
create trigger stock_levels_outbox_update after update on inventory.stock_levels
    referencing old table as old_rows new table as new_rows
    for each statement execute function inventory.outbox_stock_changed();

-- reservation.created, from the hold's lines: the reserve functions insert a claim row for
-- every request and delete the claims that got nothing, so a hold exists for others only
-- once it has lines (always in one statement per hold).
create function inventory.outbox_hold_created() returns trigger
    language plpgsql as $$
begin
    insert into inventory.event_outbox (type, aggregate_id, payload)
    select 'reservation.created', r.id::text,
           jsonb_build_object('reservation_id', r.id, 'reference_type', r.reference_type,
                              'reference_id', r.reference_id, 'status', r.status,
                              'expires_at', r.expires_at,
                              'lines', l.lines)
      from (select n.reservation_id,
                   jsonb_agg(jsonb_build_object('sku', i.sku, 'warehouse_id', sl.warehouse_id,
                                                'quantity', n.quantity)
                             order by sl.id) as lines
              from new_rows n
              join inventory.stock_levels sl on sl.id = n.stock_level_id
              join inventory.items i on i.id = sl.item_id
             group by n.reservation_id) l
      join inventory.reservations r on r.id = l.reservation_id
     order by r.id;
    return null;
end $$;

create trigger reservation_items_outbox after insert on inventory.reservation_items
    referencing new table as new_rows
    for each statement execute function inventory.outbox_hold_created();

-- reservation.committed / .cancelled / .expired: a hold's status changed.
create function inventory.outbox_hold_settled() returns trigger
    language plpgsql as $$
begin
    insert into inventory.event_outbox (type, aggregate_id, payload)
    select 'reservation.' || lower(n.status), n.id::text,
           jsonb_build_object('reservation_id', n.id, 'reference_type', n.reference_type,
                              'reference_id', n.reference_id, 'status', n.status,
                              'expires_at', n.expires_at)
      from new_rows n
      join old_rows o on o.id = n.id
     where n.status <> o.status
     order by n.id;
    return null;
end $$;

create trigger reservations_outbox after update on inventory.reservations
    referencing old table as old_rows new table as new_rows
    for each statement execute function inventory.outbox_hold_settled();

-- stock.returned, one per return (its lines are written in one statement).
create function inventory.outbox_stock_returned() returns trigger
    language plpgsql as $$
begin
    insert into inventory.event_outbox (type, aggregate_id, payload)
    select 'stock.returned', r.id::text,
           jsonb_build_object('return_id', r.id, 'reservation_id', r.reservation_id,
                              'reason', coalesce(r.reason, ''), 'lines', l.lines)
      from (select n.return_id,
                   jsonb_agg(jsonb_build_object('sku', i.sku, 'warehouse_id', sl.warehouse_id,
                                                'quantity', n.quantity, 'restocked', n.restock)
                             order by sl.id, n.restock) as lines
              from new_rows n
              join inventory.stock_levels sl on sl.id = n.stock_level_id
              join inventory.items i on i.id = sl.item_id
             group by n.return_id) l
      join inventory.stock_returns r on r.id = l.return_id
     order by r.id;
    return null;
end $$;

create trigger stock_return_lines_outbox after insert on inventory.stock_return_lines
    referencing new table as new_rows
    for each statement execute function inventory.outbox_stock_returned();
