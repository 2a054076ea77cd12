-- order.withdrawn: CreateOrder deletes an order its first reserve refused (as if it had never
-- been placed; the request answers with the refusal). Its order.created was already logged,
-- so the delete writes an event too: consumers learn the order no longer exists.

create function orders.outbox_order_withdrawn() returns trigger
    language plpgsql as $$
begin
    insert into orders.event_outbox (type, aggregate_id, payload)
    select 'order.withdrawn', o.id::text,
           jsonb_build_object('order_id', o.id, 'previous_status', o.status,
                              'status', 'WITHDRAWN',
                              'reason', 'withdrawn: its reserve was refused; the order no longer exists',
                              'payment_status', o.payment_status,
                              'previous_payment_status', o.payment_status)
      from old_rows o
     order by o.id;
    return null;
end $$;

create trigger orders_outbox_delete after delete on orders.orders
    referencing old table as old_rows
    for each statement execute function orders.outbox_order_withdrawn();
