-- outbox_trigger_on in PL/pgSQL: the same answer, planned once per session instead of once
-- per transaction. As a SQL function it cannot be inlined (its body has a subquery), so every
-- call ran it as a function of its own, which plans its query again in each transaction:
-- about 95 us a call against 20 us now (pgbench, one connection, a PL/pgSQL caller once per
-- transaction as reserve_holds and settle_hold_as are). Each of those calls it twice, with the
-- outbox on and off alike, so the benchmark's "off" (what the pair cost before the outbox)
-- carried about 0.35 ms of the outbox's own switch per order.
create or replace function inventory.outbox_trigger_on(p_table regclass, p_trigger name)
    returns boolean
    language plpgsql stable as $$
declare
    v_enabled "char";
begin
    select t.tgenabled into v_enabled
      from pg_catalog.pg_trigger t
     where t.tgrelid = p_table and t.tgname = p_trigger;
    return coalesce(v_enabled <> 'D', false);
end $$;
