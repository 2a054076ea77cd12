-- Costs that stay flat as history grows: the reconciler checks the ledger against checkpoints
-- and reads only the movements recorded since, and retention may remove old movements, holds
-- and adjustment keys without breaking the ledger's proof.
--
-- movements.txid: the transaction that recorded the movement (pg_current_xact_id(), the
-- top-level xid even inside a subtransaction). A movement id cannot mark "everything before
-- is final": ids are taken at insert and committed in another order. A transaction id can:
-- every transaction below the xmin of a snapshot has ended, so the movements with a txid
-- below it that the snapshot sees are all there will ever be. The column is added without a
-- default first (no table rewrite) and the default set after: rows recorded before this
-- migration keep null and are summed into the first checkpoints below.
--
-- ledger_horizon.through_txid: the checkpoints hold, per stock row, the sum of every movement
-- with txid null or below it (removed ones included). The reconciler advances it to its
-- snapshot's xmin, one pass at a time (an advisory lock).
-- ledger_base: per stock row, the sum of the movements retention removed. A full
-- verification proves on_hand = base + every remaining movement, and checkpoint = base +
-- every remaining movement below the horizon.
-- reconcile_results: what the last pass counted, per kind, so that every replica exports it
-- although only one runs a pass.

alter table inventory.movements add column txid xid8;
alter table inventory.movements alter column txid set default pg_current_xact_id();

-- The tail since the horizon, read by every pass.
create index movements_txid on inventory.movements (txid);
-- Retention's range by age: movements are appended in time order, so a BRIN index of a few
-- pages finds the old ones without a btree to maintain on every insert.
create index movements_created_brin on inventory.movements using brin (created_at);
-- The same for settled holds and adjustment keys.
create index reservations_updated_brin on inventory.reservations using brin (updated_at);
create index adjustments_created_brin on inventory.adjustments using brin (created_at);

create table inventory.ledger_horizon (
    singleton     boolean primary key default true check (singleton),
    through_txid  xid8 not null,
    advanced_at   timestamptz not null default now(),
    full_at       timestamptz
);

create table inventory.ledger_checkpoints (
    stock_level_id  bigint primary key references inventory.stock_levels (id),
    on_hand         bigint not null,
    reserved        bigint not null
);

create table inventory.ledger_base (
    stock_level_id  bigint primary key references inventory.stock_levels (id),
    on_hand         bigint not null,
    reserved        bigint not null
);

create table inventory.reconcile_results (
    kind         text primary key,
    count        bigint not null,
    full_pass    boolean not null,
    finished_at  timestamptz not null
);

-- The ALTER TABLE above holds movements' exclusive lock until commit: every transaction that
-- recorded a movement without a txid has ended, and none can record one until this commits.
insert into inventory.ledger_checkpoints (stock_level_id, on_hand, reserved)
select stock_level_id, sum(on_hand_delta), sum(reserved_delta)
  from inventory.movements
 group by stock_level_id;

-- '0': every movement recorded from now on (txid not null) is in the tail until the first pass.
insert into inventory.ledger_horizon (through_txid) values ('0'::xid8);
