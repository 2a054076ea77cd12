-- Generic plans for the hot-path functions, planned once per connection.
--
-- PL/pgSQL caches each statement's plan, but by default (plan_cache_mode = auto) a statement
-- with parameters is planned anew for each of its first five runs and then kept on custom
-- plans whenever the generic plan's estimate looks costlier, which array parameters
-- (unnest($1)) always make it look. So every call re-planned every statement: about 40% of
-- inventory.reserve_many's time (perf; see BENCHMARKS.md). Their generic plans are the same
-- index lookups, so force them.
alter function inventory.reserve_many(uuid[], text[], text[], integer[], integer[], text[], uuid[], text[], integer[])
    set plan_cache_mode = force_generic_plan;
alter function inventory.settle_hold(uuid, boolean)
    set plan_cache_mode = force_generic_plan;
