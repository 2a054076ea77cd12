-- Orders schema: orders with their saga state, their lines, and an append-only audit of every
-- saga step. The saga state (next_action, attempts, next_attempt_at, lease) is what makes a
-- crash at any point resumable: a row always names a step that is safe to repeat.

create table orders.orders (
    id                   uuid primary key,
    user_id              text not null check (length(user_id) between 1 and 128),
    idempotency_key      text check (length(idempotency_key) between 1 and 128),
    -- Hash of the normalised request: a key reused for a different request is refused.
    request_fingerprint  text not null,
    status               text not null check (status in
                             ('PENDING', 'RESERVED', 'CONFIRMED', 'REJECTED', 'PAYMENT_FAILED', 'CANCELLED')),
    status_reason        text not null default '',
    currency             text not null check (currency ~ '^[A-Z]{3}$'),
    payment_method       text not null,
    total_amount_minor   bigint not null check (total_amount_minor >= 0),
    payment_status       text not null default ''
                             check (payment_status in ('', 'SUCCEEDED', 'DECLINED', 'REFUNDED')),
    payment_id           text,
    reservation_id       uuid,
    -- The saga step still to do; null once the order has settled.
    next_action          text check (next_action in ('reserve', 'pay', 'commit', 'release_hold', 'refund')),
    attempts             integer not null default 0,
    next_attempt_at      timestamptz not null default now(),
    last_error           text,
    -- Whoever drives the saga holds the row until leased_until; a lapsed lease means its
    -- driver died and the recovery worker may take over.
    leased_until         timestamptz,
    lease_owner          uuid,
    -- Optimistic concurrency: every saga write is guarded by the version it read.
    version              bigint not null default 1,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    -- Null keys never conflict, so orders without a key are never deduplicated.
    constraint orders_user_idempotency_key unique (user_id, idempotency_key)
);

-- What the recovery worker scans: only unsettled orders, by when they are due.
create index orders_due on orders.orders (next_attempt_at) where next_action is not null;

-- ListOrders: a user's orders newest first, keyset-paginated on (created_at, id).
create index orders_by_user on orders.orders (user_id, created_at desc, id desc);

create table orders.order_items (
    order_id          uuid not null references orders.orders (id),
    line              integer not null check (line >= 0),
    product_id        text not null,
    variant_id        text,
    sku               text not null,
    quantity          integer not null check (quantity > 0),
    unit_price_minor  bigint not null check (unit_price_minor >= 0),
    primary key (order_id, line)
);

-- Append-only: one row per saga step outcome (and per cancel request), for audit and support.
create table orders.saga_steps (
    id          bigserial primary key,
    order_id    uuid not null references orders.orders (id),
    action      text not null,
    outcome     text not null,
    detail      text not null default '',
    created_at  timestamptz not null default now()
);

create index saga_steps_order on orders.saga_steps (order_id, id);
