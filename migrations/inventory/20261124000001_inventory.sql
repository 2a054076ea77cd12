-- Inventory schema: items (a SKU), their stock per warehouse, holds on that stock, and an
-- append-only ledger of every change to on_hand or reserved.

create table inventory.items (
    id          uuid primary key,
    sku         text not null unique check (length(sku) between 1 and 64),
    product_id  text not null,
    variant_id  text,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create index items_product on inventory.items (product_id, variant_id);

-- bigserial id: every statement that locks several levels locks them in id order, which is
-- the one global order that keeps concurrent multi-SKU holds free of deadlocks.
create table inventory.stock_levels (
    id            bigserial primary key,
    item_id       uuid not null references inventory.items (id),
    warehouse_id  text not null check (length(warehouse_id) between 1 and 64),
    on_hand       integer not null,
    reserved      integer not null default 0,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint stock_levels_item_warehouse_key unique (item_id, warehouse_id),
    constraint stock_levels_reserved_within_on_hand check (reserved >= 0 and reserved <= on_hand)
);

create table inventory.reservations (
    id              uuid primary key,
    reference_type  text not null,
    reference_id    text not null,
    status          text not null check (status in ('PENDING', 'COMMITTED', 'CANCELLED', 'EXPIRED')),
    expires_at      timestamptz not null,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

-- A retried reserve for the same reference finds the live hold instead of taking a second.
create unique index reservations_live_reference
    on inventory.reservations (reference_type, reference_id)
    where status in ('PENDING', 'COMMITTED');

create index reservations_pending_expiry
    on inventory.reservations (expires_at)
    where status = 'PENDING';

create table inventory.reservation_items (
    reservation_id  uuid not null references inventory.reservations (id),
    stock_level_id  bigint not null references inventory.stock_levels (id),
    quantity        integer not null check (quantity > 0),
    primary key (reservation_id, stock_level_id)
);

create index reservation_items_level on inventory.reservation_items (stock_level_id);

-- Applied AdjustStock requests, so that the same idempotency key changes stock once.
create table inventory.adjustments (
    idempotency_key  text primary key,
    stock_level_id   bigint not null references inventory.stock_levels (id),
    delta            integer not null,
    reason           text not null,
    created_at       timestamptz not null default now()
);

-- Append-only: sum(on_hand_delta) = on_hand and sum(reserved_delta) = reserved per level.
create table inventory.movements (
    id              bigserial primary key,
    stock_level_id  bigint not null references inventory.stock_levels (id),
    kind            text not null check (kind in ('SET', 'ADJUST', 'RESERVE', 'COMMIT', 'CANCEL', 'EXPIRE')),
    on_hand_delta   integer not null,
    reserved_delta  integer not null,
    reservation_id  uuid,
    reason          text,
    created_at      timestamptz not null default now()
);

create index movements_level on inventory.movements (stock_level_id);
create index movements_reservation on inventory.movements (reservation_id) where reservation_id is not null;
