#!/usr/bin/env bash
# The raw-SQL limit of this workload: pgbench scripts doing the SQL work of the hot paths with
# no gRPC and no service in between (README.md beside this file says what each measures).
#
# Usage: PGHOST=... PGPORT=... PGUSER=... PGDATABASE=<scratch db> run.sh [seconds] [clients] [regex]
#   seconds  duration of each script (20)
#   clients  pgbench clients (8); threads: min(2, clients)
#   regex    which scripts to run (extended regex on the name; all by default)
# Prints one line per script: `NAME tps=T lat_ms=L failed=F`, then one line of six numbers
# from check_invariants.sql. The database gets its own tables (schema.sql, recreated each
# time): never point it at a service's database.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
seconds="${1:-20}" clients="${2:-8}" filter="${3:-.}"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: seconds must be a positive whole number" >&2; exit 2; }
[[ "$clients" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: clients must be a positive whole number" >&2; exit 2; }
threads=$((clients < 2 ? clients : 2))

# pgbench and psql from PATH, else from the newest PostgreSQL under /usr/lib/postgresql.
if command -v pgbench >/dev/null; then
  bin="$(dirname "$(command -v pgbench)")"
else
  bin="$(find /usr/lib/postgresql -path '*/bin/pgbench' 2>/dev/null | sort -V | tail -n1 | xargs -r dirname)"
  [[ -n "$bin" ]] || { echo "run.sh: pgbench not found (install postgresql-client)" >&2; exit 1; }
fi
# Notices of DROP ... IF EXISTS and of VACUUM would drown the figures.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

psql -f "$here/schema.sql" >/dev/null
psql -f "$here/reserve_fn.sql" >/dev/null
for name in A_uniform_reserve A_fn_reserve B_hot_reserve B_hotlast_reserve B_fn_reserve \
  B2_hot_single B2_fn_single C_availability O_order_min; do
  grep -qE "$filter" <<<"$name" || continue
  psql -f "$here/reset.sql" >/dev/null
  out="$("$bin/pgbench" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" -f "$here/$name.sql" 2>&1)" || {
    printf '%s\n' "$out" >&2
    echo "run.sh: pgbench of $name failed" >&2
    exit 1
  }
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")"
  lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")"
  fail="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")"
  printf '%-20s tps=%s lat_ms=%s failed=%s\n' "$name" "$tps" "$lat" "${fail:-0}"
done
psql -At -F' ' -f "$here/check_invariants.sql"
