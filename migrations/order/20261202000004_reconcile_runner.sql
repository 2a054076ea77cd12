-- One order reconciler at a time: the replica holding this row's lease walks the confirmed
-- orders and stores its count here; every other replica exports the stored count. A runner
-- that dies lets its lease lapse (three intervals) and the next replica takes over, starting
-- its walk from the first order.

create table orders.reconcile_runner (
    singleton        boolean primary key default true check (singleton),
    owner            uuid,
    leased_until     timestamptz,
    inconsistencies  bigint not null default 0,
    finished_at      timestamptz
);

insert into orders.reconcile_runner default values;
