-- The outbox is a queue: every row is deleted by the relay within milliseconds of its
-- commit. With the default thresholds (20% of a table that is nearly always empty) autovacuum
-- would still wait for its next round while dead rows pile up in the heap and the index the
-- relay walks; vacuum it after a fixed number of dead rows, without cost-based pauses.
alter table inventory.event_outbox set (
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_cost_delay = 0
);
