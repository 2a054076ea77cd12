-- One stock.changed per change of a stock row: UpsertInventoryItem of a new row creates it at
-- zero and then sets it, two statements of one change. The update now replaces the event the
-- creation wrote in the same transaction (rows created in this transaction have created_at =
-- now(), the transaction's start; txid finds this transaction's outbox rows exactly).

alter table inventory.event_outbox add column txid xid8 not null default pg_current_xact_id();

create or replace function inventory.outbox_stock_changed() returns trigger
    language plpgsql as $$
begin
    if exists (select 1 from new_rows where created_at = now()) then
        delete from inventory.event_outbox o
         using new_rows n
         join inventory.items i on i.id = n.item_id
         where n.created_at = now()
           and o.txid = pg_current_xact_id()
           and o.type = 'stock.changed'
           and o.aggregate_id = i.sku || '/' || n.warehouse_id;
    end if;
    insert into inventory.event_outbox (type, aggregate_id, payload)
    select 'stock.changed', i.sku || '/' || n.warehouse_id,
           jsonb_build_object('sku', i.sku, 'warehouse_id', n.warehouse_id,
                              'on_hand', n.on_hand, 'reserved', n.reserved)
      from new_rows n
      join old_rows o on o.id = n.id
      join inventory.items i on i.id = n.item_id
     where n.on_hand <> o.on_hand or n.reserved <> o.reserved or n.created_at = now()
     order by n.id;
    return null;
end $$;
