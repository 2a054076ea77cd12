-- The transactional outbox and the event log (issue 18).
--
-- Triggers write an outbox row in the same statement as every change others care about, so
-- no change commits without its event and a rolled-back change leaves none, whatever path
-- made it (CreateOrder, the saga's guarded saves, cancels, operator resolutions, returns).
-- The log's tables and rules are the inventory schema's (see its migration of the same name).
--
-- event_outbox rows have no position yet: transactions commit in any order, so a number
-- taken at insert would let a consumer read position 8 before 7 commits and skip 7 for
-- good. The relay (common::events::relay) moves committed outbox rows into `events`,
-- numbering them event_log.last_position + 1, + 2, ... under event_log's row lock: one relay
-- at a time over all replicas, positions consecutive and in the order they became visible,
-- never reused. Retention removes the oldest events and records the last removed position
-- in event_log.removed_through (a consumer behind it is told, not silently skipped).

create table orders.event_outbox (
    id            bigserial primary key,
    type          text not null,
    aggregate_id  text not null,
    payload       jsonb not null,
    occurred_at   timestamptz not null default now()
);

create table orders.events (
    position      bigint primary key,
    type          text not null,
    aggregate_id  text not null,
    payload       jsonb not null,
    occurred_at   timestamptz not null,
    published_at  timestamptz not null default now()
);

create table orders.event_log (
    singleton        boolean primary key default true check (singleton),
    last_position    bigint not null default 0,
    removed_through  bigint not null default 0 check (removed_through <= last_position)
);

insert into orders.event_log default values;

-- order.created, from the order's lines (written in the statement that writes the order).
create function orders.outbox_order_created() returns trigger
    language plpgsql as $$
begin
    insert into orders.event_outbox (type, aggregate_id, payload)
    select 'order.created', o.id::text,
           jsonb_build_object('order_id', o.id, 'user_id', o.user_id, 'status', o.status,
                              'currency', o.currency,
                              'total_amount_minor', o.total_amount_minor, 'lines', l.lines)
      from (select n.order_id,
                   jsonb_agg(jsonb_build_object('sku', n.sku, 'quantity', n.quantity,
                                                'unit_price_minor', n.unit_price_minor,
                                                'product_id', n.product_id,
                                                'variant_id', coalesce(n.variant_id, ''))
                             order by n.line) as lines
              from new_rows n
             group by n.order_id) l
      join orders.orders o on o.id = l.order_id
     order by o.id;
    return null;
end $$;

create trigger order_items_outbox after insert on orders.order_items
    referencing new table as new_rows
    for each statement execute function orders.outbox_order_created();

-- order.<status>, or order.payment_status_changed when only the payment status moved.
create function orders.outbox_order_changed() returns trigger
    language plpgsql as $$
begin
    insert into orders.event_outbox (type, aggregate_id, payload)
    select case when n.status <> o.status then 'order.' || lower(n.status)
                else 'order.payment_status_changed' end,
           n.id::text,
           jsonb_build_object('order_id', n.id, 'previous_status', o.status,
                              'status', n.status, 'reason', n.status_reason,
                              'payment_status', n.payment_status,
                              'previous_payment_status', o.payment_status)
      from new_rows n
      join old_rows o on o.id = n.id
     where n.status <> o.status or n.payment_status <> o.payment_status
     order by n.id;
    return null;
end $$;

create trigger orders_outbox after update on orders.orders
    referencing old table as old_rows new table as new_rows
    for each statement execute function orders.outbox_order_changed();

-- order_return.created and order_return.<status>.
create function orders.outbox_return_created() returns trigger
    language plpgsql as $$
begin
    insert into orders.event_outbox (type, aggregate_id, payload)
    select 'order_return.created', n.id::text,
           jsonb_build_object('return_id', n.id, 'order_id', n.order_id, 'status', n.status,
                              'reason', n.reason, 'refund_amount_minor', n.refund_amount_minor,
                              'currency', n.currency)
      from new_rows n
     order by n.id;
    return null;
end $$;

create function orders.outbox_return_changed() returns trigger
    language plpgsql as $$
begin
    insert into orders.event_outbox (type, aggregate_id, payload)
    select 'order_return.' || lower(n.status), n.id::text,
           jsonb_build_object('return_id', n.id, 'order_id', n.order_id, 'status', n.status,
                              'reason', n.status_reason,
                              'refund_amount_minor', n.refund_amount_minor,
                              'currency', n.currency)
      from new_rows n
      join old_rows o on o.id = n.id
     where n.status <> o.status
     order by n.id;
    return null;
end $$;

create trigger order_returns_outbox_insert after insert on orders.order_returns
    referencing new table as new_rows
    for each statement execute function orders.outbox_return_created();
create trigger order_returns_outbox_update after update on orders.order_returns
    referencing old table as old_rows new table as new_rows
    for each statement execute function orders.outbox_return_changed();
