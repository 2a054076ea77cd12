-- Order status events from a row-level trigger with a WHEN clause (issue 18's benchmark), as
-- inventory's stock.changed (inventory migration 12). The statement-level trigger captured
-- every updated order into transition tables and called its function for every update, also
-- those that change neither status (recording the hold, the payment's id, the trace): a
-- row-level trigger is called only for a row whose status or payment status moved, and
-- writes its event from NEW and OLD. The events are the same.

create function orders.outbox_order_row_changed() returns trigger
    language plpgsql as $$
begin
    insert into orders.event_outbox (type, aggregate_id, payload)
    values (case when new.status <> old.status then 'order.' || lower(new.status)
                 else 'order.payment_status_changed' end,
            new.id::text,
            jsonb_build_object('order_id', new.id, 'previous_status', old.status,
                               'status', new.status, 'reason', new.status_reason,
                               'payment_status', new.payment_status,
                               'previous_payment_status', old.payment_status));
    return null;
end $$;

drop trigger orders_outbox on orders.orders;
drop function orders.outbox_order_changed();

create trigger orders_outbox after update on orders.orders
    for each row
    when (new.status <> old.status or new.payment_status <> old.payment_status)
    execute function orders.outbox_order_row_changed();
