-- Returns of confirmed orders (ReturnOrder). A return is a saga of its own, like an order's:
-- written with its lease in the transaction that checked what is left to return, then driven
-- (restock at the inventory, then refund at the payment service) by the request that wrote it
-- and, after any crash or failed step, by the recovery worker. Every step is idempotent on the
-- peer, keyed by the return's id, so the row only records what to do next.
--
-- The order keeps status CONFIRMED; its returns are listed on it and the refunds of completed
-- returns add up to its refunded amount.

create table orders.order_returns (
    id                   uuid primary key,
    order_id             uuid not null references orders.orders (id),
    idempotency_key      text not null check (length(idempotency_key) between 1 and 128),
    -- Hash of the request's lines as sent (empty = everything left): the same request again
    -- answers this return, a different one under the key is refused.
    request_fingerprint  bytea not null,
    reason               text not null check (length(reason) between 1 and 500),
    status               text not null check (status in
                             ('REQUESTED', 'RESTOCKED', 'COMPLETED', 'NEEDS_OPERATOR')),
    -- The step still to do; null once COMPLETED. A NEEDS_OPERATOR return keeps the step that
    -- was refused, which the same ReturnOrder request again re-arms.
    next_action          text check (next_action in ('restock', 'refund')),
    refund_amount_minor  bigint not null check (refund_amount_minor >= 0),
    currency             text not null check (currency ~ '^[A-Z]{3}$'),
    refund_id            text,
    status_reason        text not null default '',
    attempts             integer not null default 0,
    next_attempt_at      timestamptz not null default now(),
    last_error           text,
    lease_owner          uuid,
    leased_until         timestamptz,
    version              bigint not null default 1,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    constraint order_returns_key unique (order_id, idempotency_key),
    constraint order_returns_done check ((status = 'COMPLETED') = (next_action is null))
);

-- What the recovery worker scans: returns with a step to do that no operator must look at.
create index order_returns_due on orders.order_returns (next_attempt_at)
    where next_action is not null and status <> 'NEEDS_OPERATOR';

-- The gauge of returns needing an operator.
create index order_returns_needing_operator on orders.order_returns (updated_at)
    where status = 'NEEDS_OPERATOR';

-- One row per order line a return takes units of: what was returned and at which price.
create table orders.order_return_items (
    return_id         uuid not null references orders.order_returns (id),
    order_line        integer not null check (order_line >= 0),
    sku               text not null,
    quantity          integer not null check (quantity > 0),
    do_not_restock    boolean not null default false,
    unit_price_minor  bigint not null check (unit_price_minor >= 0),
    primary key (return_id, order_line)
);
