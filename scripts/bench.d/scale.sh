# scripts/bench --scale: throughput as server replicas are added on one primary, and checks
# with and without a read replica (issue 16). Sourced by scripts/bench, which owns the
# cluster, the processes and the helpers used here (scenario, start_inventory, result_field).
#
# Every row runs closed loop at --clients workers; the loadgen spreads its connections over
# the replicas of a comma-separated URL list, so workers alternate between them. All
# replicas share the machine's cores with PostgreSQL and the loadgen: the table shows where
# adding servers stops helping, the figure a team needs before it adds hosts.
# shellcheck shell=bash

SCALE_INVENTORY=(1 2 4)
SCALE_ORDER=(1 2)
SCALE_ROWS=()  # "group|configuration|label" per row, for scale_report
INV_ADDRS=()   # every inventory replica's gRPC address (the first is INV_ADDR)
ORDER_ADDRS=() # every order replica's
REPLICA_HA_PORT="${BENCH_HA_PORT:-54620}"
started_ha=0

# start_replicas: inventory-2..4 and order-2 beside the first of each, on the same database.
# Order replica i calls inventory replica i: the pair scales together, as deployed.
start_replicas() {
  section "Replicas: 4 inventory and 2 order servers on one primary"
  local ports i
  read -r -a ports <<<"$(loadgen free-ports 8)"
  INV_ADDRS=("$INV_ADDR") ORDER_ADDRS=("$ORDER_ADDR")
  for i in 2 3 4; do
    INV_ADDRS+=("127.0.0.1:${ports[2 * i - 4]}")
    start_inventory "inventory-$i" "${INV_ADDRS[i - 1]}" "127.0.0.1:${ports[2 * i - 3]}" \
      "$DATABASE_URL"
  done
  ORDER_ADDRS+=("127.0.0.1:${ports[6]}")
  start_order order-2 "${ORDER_ADDRS[1]}" "127.0.0.1:${ports[7]}" "${INV_ADDRS[1]}"
}

# urls_of N ADDR...: the first N addresses as an http:// list.
urls_of() {
  local n="$1" out='' i
  shift
  local addrs=("$@")
  for ((i = 0; i < n; i++)); do out+="${out:+,}http://${addrs[i]}"; done
  echo "$out"
}

# pids_of PREFIX N: --rss-pid arguments for the first N servers named PREFIX, PREFIX-2, ...
pids_of() {
  local i name
  for ((i = 1; i <= $2; i++)); do
    name="$1"
    ((i > 1)) && name="$1-$i"
    printf -- '--rss-pid\n%s\n' "${PIDS[$name]}"
  done
}

# scale_row GROUP CONFIGURATION LABEL SCENARIO ANCHOR_REGEX PIDS_PREFIX N [loadgen args...]
scale_row() {
  local group="$1" config="$2" label="$3" name="$4" regex="$5" prefix="$6" n="$7" pids=()
  shift 7
  mapfile -t pids < <(pids_of "$prefix" "$n")
  if [[ -n "$regex" ]]; then
    scenario "$label" "$regex" 1 --scenario "$name" --label "$label" "${pids[@]}" "$@"
  else
    scenario "$label" '' 1 --scenario "$name" --label "$label" "${pids[@]}" \
      "${LAST_ANCHOR_ARGS[@]}" "$@"
  fi
  SCALE_ROWS+=("$group|$config|$label")
}

scale_replica_counts() {
  local n
  for n in "${SCALE_INVENTORY[@]}"; do
    INV_URLS="$(urls_of "$n" "${INV_ADDRS[@]}")"
    scale_row check "inventory x$n" "check/inventory x$n" check \
      "$( ((n == 1)) && echo '^C_availability$')" inventory "$n"
  done
  for n in "${SCALE_INVENTORY[@]}"; do
    INV_URLS="$(urls_of "$n" "${INV_ADDRS[@]}")"
    scale_row reserve-uniform "inventory x$n" "reserve-uniform/inventory x$n" reserve-uniform \
      "$( ((n == 1)) && echo '^A_fn_reserve$')" inventory "$n"
  done
  INV_URLS="http://$INV_ADDR"
  local inventory_pids=()
  for n in "${SCALE_ORDER[@]}"; do
    ORDER_URLS="$(urls_of "$n" "${ORDER_ADDRS[@]}")"
    mapfile -t inventory_pids < <(pids_of inventory "$n")
    scale_row create-order "order x$n (+ inventory x$n)" "create-order/order x$n" create-order \
      "$( ((n == 1)) && echo '^O_order_min$')" order "$n" "${inventory_pids[@]}"
  done
  ORDER_URLS="http://$ORDER_ADDR"
}

ha() { HA_PORT="$REPLICA_HA_PORT" HA_SYNC=off HA_DIR="$REPO_ROOT/.dev/bench-ha" \
  bash "$REPO_ROOT/scripts/ha" "$@"; }

# reads_of METRICS_ADDR: "replica primary" of db_reads_total on that server now.
reads_of() {
  curl -fsS --max-time 10 "http://$1/metrics" | awk '
    /^db_reads_total\{pool="replica"\}/ { r = $2 } /^db_reads_total\{pool="primary"\}/ { p = $2 }
    END { printf "%d %d\n", r, p }'
}

# scale_read_replica: a primary and an asynchronous standby under Patroni (scripts/ha): one
# inventory server reads from the primary only, another with READ_DATABASE_URL on the
# standby; check runs against each. The standby runs on the same two cores: what the pair
# shows is the routing's cost and the primary's share of the work, not a second machine.
scale_read_replica() {
  section "Read replica: Patroni primary + asynchronous standby on 127.0.0.1:$REPLICA_HA_PORT"
  local primary_url replica_url ports before after bench_url="$DATABASE_URL" standby ticks0 ticks1 t0 t1
  started_ha=1
  primary_url="$(ha start)"
  replica_url="$(ha replica-url)"
  read -r -a ports <<<"$(loadgen free-ports 4)"
  start_inventory inventory-primary "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "$primary_url"
  start_inventory inventory-replica "127.0.0.1:${ports[2]}" "127.0.0.1:${ports[3]}" \
    "$primary_url" READ_DATABASE_URL="$replica_url"
  loadgen seed --inventory-url "http://127.0.0.1:${ports[0]}" --database-url "$primary_url" \
    --skus 10000 --history 100000 --history-via sql
  DATABASE_URL="$primary_url"
  # The anchors ran on the bench cluster, not on this one: these rows compare with each other.
  LAST_ANCHOR_ARGS=()
  INV_URLS="http://127.0.0.1:${ports[0]}"
  scale_row check-replica "primary only" "check/ha primary" check '' inventory-primary 1
  INV_URLS="http://127.0.0.1:${ports[2]}"
  before="$(reads_of "127.0.0.1:${ports[3]}")"
  standby="$(postmaster_of "$replica_url")"
  ticks0="$(cpu_ticks "$standby")" t0="$(date +%s.%N)"
  scale_row check-replica "READ_DATABASE_URL standby" "check/ha read replica" check '' \
    inventory-replica 1
  ticks1="$(cpu_ticks "$standby")" t1="$(date +%s.%N)"
  after="$(reads_of "127.0.0.1:${ports[3]}")"
  STANDBY_CORES="$(awk -v a="$ticks0" -v b="$ticks1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.2f", (b - a) / hz / (t1 - t0) }')"
  REPLICA_SHARE="$(awk -v a="$before" -v b="$after" 'BEGIN { split(a, x, " "); split(b, y, " ")
    r = y[1] - x[1]; p = y[2] - x[2]; if (r + p > 0) printf "%.1f", 100 * r / (r + p); else print "-" }')"
  info "reads answered by the standby: $REPLICA_SHARE%"
  DATABASE_URL="$bench_url" INV_URLS="http://$INV_ADDR"
  stop_server inventory-replica
  stop_server inventory-primary
}
REPLICA_SHARE='-' STANDBY_CORES='-'

# postmaster_of URL: the PID of the postmaster serving URL (its data directory's
# postmaster.pid; the cluster runs on this machine).
postmaster_of() {
  local dir
  dir="$("$(bash "$REPO_ROOT/scripts/pg" bindir)/psql" -X -At -d "$1" -c 'show data_directory')"
  head -n1 "$dir/postmaster.pid"
}

# cpu_ticks PID: clock ticks a postmaster and its processes used (its own, what its exited
# children left in its counters, and its live children's).
cpu_ticks() {
  {
    awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"
    local child
    for child in $(pgrep -P "$1"); do awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || true; done
  } | awk '{ s += $1 } END { print s + 0 }'
}

stop_ha() {
  if ((started_ha)); then
    info "removing the bench HA stack"
    ha reset >/dev/null 2>&1 || true
  fi
}

# scale_report: throughput per configuration as a ratio to its group's first row.
scale_report() {
  local line group config label ops base='' last_group='' p99 scores pgcores ratio
  section "Results: scale"
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
  {
    echo "| scenario | configuration | ops/s | vs. first row | vs. anchor | p99 ms | server cores | PostgreSQL cores |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for line in "${SCALE_ROWS[@]}"; do
      IFS='|' read -r group config label <<<"$line"
      ops="$(result_field "$label" closed service_ops_per_s)"
      if [[ "$group" != "$last_group" ]]; then base="$ops" last_group="$group"; fi
      ratio="$(result_field "$label" closed ratio)"
      p99="$(result_field "$label" closed p99_ms)"
      scores="$(result_field "$label" closed server_cpu_cores)"
      pgcores="$(result_field "$label" closed postgres_cpu_cores)"
      awk -v g="$group" -v c="$config" -v o="$ops" -v b="$base" -v r="$ratio" -v p="$p99" \
        -v s="$scores" -v q="$pgcores" 'function num(x, f) { return x ~ /^-?[0-9]/ ? sprintf(f, x) : "-" }
        BEGIN { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", g, c, num(o, "%.0f"),
          (b > 0 && o ~ /^[0-9]/) ? sprintf("%.2f", o / b) : "-", num(r, "%.2f"), num(p, "%.1f"),
          num(s, "%.2f"), num(q, "%.2f") }'
    done
    echo
    echo "PostgreSQL cores are the primary's. The read-replica row: $REPLICA_SHARE% of its reads"
    echo "answered by the standby, whose processes kept $STANDBY_CORES cores busy (warm-up included)."
  } | tee "$OUT/scale.md"
}

scale_main() {
  setup
  start_replicas
  scale_replica_counts
  scale_read_replica
  check_invariants_at_end
  stop_ha
  scale_report
  finish "$OUT/scale.md"
}
