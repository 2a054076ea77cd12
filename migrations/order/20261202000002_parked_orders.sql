-- Sagas that need a person, and orders too old to go on.
--
-- orders.failing_since: when the order's current step first failed (null while steps go
-- through). A step failing for longer than SAGA_PARK_AFTER_MINUTES, or with an error that
-- cannot heal, parks the order.
-- orders.parked_at: set while the order waits for an operator: no automatic retries (the
-- recovery worker skips it), counted in order_saga_parked, listed and resolved through
-- ListParkedOrders / ResolveParkedOrder (each resolution writes a saga_steps row).

alter table orders.orders
    add column failing_since timestamptz,
    add column parked_at timestamptz;

-- The recovery worker's scan leaves parked orders out.
drop index orders.orders_due;
create index orders_due on orders.orders (next_attempt_at)
    where next_action is not null and parked_at is null;

create index orders_parked on orders.orders (parked_at) where parked_at is not null;
