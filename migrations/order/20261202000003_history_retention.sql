-- Retention of the order side's history: saga audit rows and idempotency keys of settled
-- orders leave after their keep period (SAGA_STEP_RETENTION_DAYS,
-- IDEMPOTENCY_KEY_RETENTION_DAYS), in small batches. Both are found by age through BRIN
-- indexes: rows are appended in time order, so a few pages find the old ones without a btree
-- to maintain on every insert.

create index saga_steps_created_brin on orders.saga_steps using brin (created_at);
create index orders_created_brin on orders.orders using brin (created_at);
