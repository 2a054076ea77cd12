# scripts/bench --outbox: what the transactional outbox costs the write paths (issue 18).
# Sourced by scripts/bench, which owns the cluster, the processes and the helpers used here
# (scenario, result_field); the rows and their table come from scale.sh (scale_row).
#
# The same servers run reserve-uniform and create-order in rounds of four rows: with the outbox
# on (the triggers write an event row in every change's statement, the relay numbers them),
# off (the outbox triggers disabled in the bench database, so no event rows and nothing to
# relay: what the pair cost before issue 18), off again, on again; even rounds run off, on, on,
# off. Either order puts each state's two rows at the same mean time, so a steady drift of the
# machine within a round cancels out of its ratio, and alternating it leaves neither state
# always first; the summary gives each round's ratio, their median and the ratio of the means
# over all rows.
# The seed's history (100k holds written in SQL) goes through the outbox too: the runs wait
# until the relay has numbered it. Only the bench database's triggers are switched; servers have no
# such setting (a change without its event is exactly what the outbox exists to prevent).
# shellcheck shell=bash

OUTBOX_TRIGGERS=(
  inventory.stock_levels:stock_levels_outbox_insert
  inventory.stock_levels:stock_levels_outbox_update
  inventory.stock_levels:stock_levels_outbox_update_low
  inventory.reservation_items:reservation_items_outbox
  inventory.reservations:reservations_outbox
  inventory.stock_return_lines:stock_return_lines_outbox
  orders.order_items:order_items_outbox
  orders.orders:orders_outbox
  orders.orders:orders_outbox_delete
  orders.order_returns:order_returns_outbox_insert
  orders.order_returns:order_returns_outbox_update
)

# outbox_switch enable|disable: the outbox triggers of both schemas, in one transaction.
outbox_switch() {
  local sql='' entry
  for entry in "${OUTBOX_TRIGGERS[@]}"; do
    sql+="alter table ${entry%%:*} $1 trigger ${entry#*:}; "
  done
  bench_sql -c "begin; $sql commit;" >/dev/null
  info "outbox triggers: $1d"
}

# outbox_drained: waits (up to 5 minutes) until both outboxes are empty.
outbox_drained() {
  local waiting i
  for ((i = 0; i < 300; i++)); do
    waiting="$(bench_sql -c "select (select count(*) from inventory.event_outbox) + (select count(*) from orders.event_outbox)")"
    ((waiting == 0)) && return 0
    sleep 1
  done
  die "the relay left $waiting outbox rows after 5 minutes"
}

# Rounds of on, off, off, on per scenario (even rounds off, on, on, off). This VM's throughput
# wanders by a third within a few minutes (checkpoints, autovacuum of the growing tables, its
# neighbours), more than the effect measured: one round compared two rows of each state, four
# compare eight, two rounds in each order.
OUTBOX_ROUNDS="${OUTBOX_ROUNDS:-4}"

# outbox_states ROUND: the four rows of ROUND, one per line, as the report lists them.
outbox_states() {
  printf '%s\n' "on $1.1" "off $1.1" "off $1.2" "on $1.2"
}

# outbox_run_order ROUND: the same rows in the order they run: on, off, off, on in odd rounds,
# off, on, on, off in even ones, so neither state always runs first in its round (the first
# row after a group's anchor, or after the previous round's last, meets what they left: a
# checkpoint, autovacuum of the tables they grew).
outbox_run_order() {
  if (($1 % 2)); then
    outbox_states "$1"
  else
    printf '%s\n' "off $1.1" "on $1.1" "on $1.2" "off $1.2"
  fi
}

# outbox_group SCENARIO ANCHOR_REGEX [loadgen args...]: SCENARIO closed loop in
# OUTBOX_ROUNDS rounds of outbox on (the first after its anchor), off, off, on (even rounds:
# off, on, on, off). Each group
# runs whole before the next, so the rows without their own anchor compare with the group's
# anchor.
outbox_group() {
  local name="$1" regex="$2" state states round first=1
  shift 2
  section "$name: $OUTBOX_ROUNDS rounds of outbox on, off (triggers disabled in the bench database), off, on (even rounds off, on, on, off)"
  for ((round = 1; round <= OUTBOX_ROUNDS; round++)); do
    mapfile -t states < <(outbox_run_order "$round")
    for state in "${states[@]}"; do
      if [[ "$state" == off* ]]; then outbox_switch disable; else outbox_switch enable; fi
      outbox_drained
      scale_row "$name" "outbox $state" "$name/outbox $state" "$name" \
        "$( ((first)) && echo "$regex")" "$( [[ $name == create-order ]] && echo order || echo inventory)" 1 "$@"
      first=0
    done
  done
  outbox_switch enable
}

outbox_report() {
  local line group config label ops base='' last_group='' ratio p99 pgcores
  section "Results: outbox"
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
  {
    echo "| scenario | outbox | ops/s | vs. first row | vs. anchor | p99 ms | PostgreSQL cores |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for line in "${SCALE_ROWS[@]}"; do
      IFS='|' read -r group config label <<<"$line"
      ops="$(result_field "$label" closed service_ops_per_s)"
      if [[ "$group" != "$last_group" ]]; then base="$ops" last_group="$group"; fi
      ratio="$(result_field "$label" closed ratio)"
      p99="$(result_field "$label" closed p99_ms)"
      pgcores="$(result_field "$label" closed postgres_cpu_cores)"
      awk -v g="$group" -v c="${config#outbox }" -v o="$ops" -v b="$base" -v r="$ratio" \
        -v p="$p99" -v q="$pgcores" 'function num(x, f) { return x ~ /^-?[0-9]/ ? sprintf(f, x) : "-" }
        BEGIN { printf "| %s | %s | %s | %s | %s | %s | %s |\n", g, c, num(o, "%.0f"),
          (b > 0 && o ~ /^[0-9]/) ? sprintf("%.2f", o / b) : "-", num(r, "%.2f"), num(p, "%.1f"),
          num(q, "%.2f") }'
    done
    echo
    local round rows states
    for group in reserve-uniform create-order; do
      rows=''
      for ((round = 1; round <= OUTBOX_ROUNDS; round++)); do
        rows+="$round"
        mapfile -t states < <(outbox_states "$round")
        for state in "${states[@]}"; do
          rows+=" $(result_field "$group/outbox $state" closed service_ops_per_s)"
        done
        rows+=$'\n'
      done
      # Each round's on/off cancels a steady drift within it; the median of the rounds is what
      # one slow or fast round cannot move, the means over all rows the overall figure.
      awk -v g="$group" 'NF == 5 { r = ($2 + $5) / ($3 + $4); ratios[++n] = r; list = list sprintf(" %.2f", r)
          on += $2 + $5; off += $3 + $4 }
        END { if (n == 0 || off == 0) exit
          for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (ratios[j] < ratios[i]) { t = ratios[i]; ratios[i] = ratios[j]; ratios[j] = t }
          median = n % 2 ? ratios[(n + 1) / 2] : (ratios[n / 2] + ratios[n / 2 + 1]) / 2
          printf "%s: outbox on %.0f ops/s, off %.0f ops/s (means of %d rows each): on/off %.2f; per round%s, median %.2f\n",
            g, on / (2 * n), off / (2 * n), 2 * n, on / off, list, median }' <<<"$rows"
      # The work per operation does not move with the host's speed as throughput does (this
      # VM's rows wander by a third): CPU of the servers, PostgreSQL and the load generator per
      # operation, and PostgreSQL's WAL per operation, each state's rows pooled.
      for ((round = 1; round <= OUTBOX_ROUNDS; round++)); do
        mapfile -t states < <(outbox_states "$round")
        for state in "${states[@]}"; do
          echo "${state%% *} $(result_field "$group/outbox $state" closed service_ops_per_s)" \
            "$(result_field "$group/outbox $state" closed server_cpu_cores)" \
            "$(result_field "$group/outbox $state" closed postgres_cpu_cores)" \
            "$(result_field "$group/outbox $state" closed loadgen_cpu_cores)" \
            "$(result_field "$group/outbox $state" closed wal_bytes_per_op)"
        done
      done | awk -v g="$group" '$2 ~ /^[0-9]/ && $2 > 0 && $3$4$5$6 !~ /-/ {
          ops[$1] += $2; cores[$1] += $3 + $4 + $5; pg[$1] += $4; wal[$1] += $6 * $2 }
        END { if (!ops["on"] || !ops["off"]) exit
          for (s in ops) { cpu[s] = 1000 * cores[s] / ops[s]; pgms[s] = 1000 * pg[s] / ops[s]; w[s] = wal[s] / ops[s] }
          printf "%s: CPU per operation on %.2f ms, off %.2f ms (off/on %.2f; PostgreSQL alone %.2f / %.2f ms, off/on %.2f); WAL per operation on %.0f, off %.0f bytes\n",
            g, cpu["on"], cpu["off"], cpu["off"] / cpu["on"], pgms["on"], pgms["off"], pgms["off"] / pgms["on"], w["on"], w["off"] }'
    done
  } | tee "$OUT/outbox.md"
}

outbox_main() {
  setup
  outbox_group reserve-uniform '^A_fn_reserve$'
  outbox_group create-order '^O_order_min$' --rss-pid "${PIDS[inventory]}"
  check_invariants_at_end
  outbox_report
  finish "$OUT/outbox.md"
}
