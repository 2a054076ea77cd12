-- Returns of committed stock (ReturnStock), and holds named by their reference.
--
-- stock_returns: one row per applied return, keyed by the caller's idempotency key (a retry
-- finds it and applies nothing; a different request under the key is refused by comparing
-- request_fingerprint). stock_return_lines: what it took back per stock row; restock = false
-- marks damaged goods (recorded, on_hand unchanged). What a hold's row may still give back is
-- its committed quantity minus the sum of its return lines, checked under the hold's row
-- lock. Retention removes a settled hold with its returns (a return touches the hold's
-- updated_at, so a hold is kept for the whole period after its last return).
--
-- Movements of kind RETURN add the restocked units to on_hand; RETURN_NO_RESTOCK records
-- damaged units with zero deltas, so the ledger lists every return line.

alter table inventory.movements drop constraint movements_kind_check;
alter table inventory.movements add constraint movements_kind_check check (kind in
    ('SET', 'ADJUST', 'RESERVE', 'COMMIT', 'CANCEL', 'EXPIRE', 'RETURN', 'RETURN_NO_RESTOCK'));

create table inventory.stock_returns (
    id                   uuid primary key,
    reservation_id       uuid not null references inventory.reservations (id),
    idempotency_key      text not null unique,
    request_fingerprint  text not null,
    reason               text,
    created_at           timestamptz not null default now()
);

create index stock_returns_reservation on inventory.stock_returns (reservation_id);

create table inventory.stock_return_lines (
    return_id       uuid not null references inventory.stock_returns (id),
    stock_level_id  bigint not null references inventory.stock_levels (id),
    quantity        integer not null check (quantity > 0),
    restock         boolean not null,
    primary key (return_id, stock_level_id, restock)
);

-- Cancel and get by reference find the reference's latest hold, settled ones included.
create index reservations_reference
    on inventory.reservations (reference_type, reference_id, created_at desc);
