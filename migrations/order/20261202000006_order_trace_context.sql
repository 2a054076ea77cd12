-- The W3C trace context (traceparent, tracestate) of the request that created the order, so
-- that a saga run the recovery worker resumes later starts a trace linked to the original
-- one. Null for orders placed without tracing (and before this migration).
--
-- Nullable columns without a default: adding them rewrites nothing. The length checks are
-- NOT VALID so that adding them does not scan the table under its lock: the old rows are all
-- null, and every new or updated row is checked. The server never writes more (it drops an
-- oversized tracestate and keeps the link).

alter table orders.orders
    add column trace_parent text,
    add column trace_state text;

alter table orders.orders
    add constraint orders_trace_parent_length check (char_length(trace_parent) <= 128) not valid,
    add constraint orders_trace_state_length check (char_length(trace_state) <= 512) not valid;
