#!/usr/bin/env bash
# Container smoke test with podman, daemonless (no Docker engine needed):
#   1. installs podman, buildah, runc and debootstrap with apt when missing (root);
#   2. writes a containers.conf (CONTAINERS_CONF): runc, cgroupfs, file events, explicit
#      ulimits (crun and the default ulimits fail on some kernels);
#   3. makes the base image localhost/debian:<host codename> without any registry:
#      debootstrap --variant=minbase from the mirror apt already uses, then podman import
#      (about a minute, once: kept while the image exists);
#   4. builds the Dockerfile's `runtime-prebuilt` target (`podman build --pull=never
#      --format docker`) for inventory-service, order-service, product-standin and
#      payment-standin from binaries compiled on the host (`cargo build --bins`, debug by default);
#   5. creates the database `smoke` in TEST_DATABASE_URL's cluster with
#      deploy/postgres/roles-and-schemas.psql (the compose init script: one role per schema),
#      runs the four containers with --network host on free ports, waits for each image's
#      HEALTHCHECK (`podman healthcheck run`), checks the roles cannot read each other's schema,
#      sets stock and places one order with target/debug/shopctl, and expects CONFIRMED;
#   6. stops the containers with SIGTERM, expecting exit code 0 (graceful shutdown as PID 1),
#      and removes them (always, also on failure), the database and the roles (on success).
#
# It is run by scripts/test (which exports TEST_DATABASE_URL). Alone:
#   TEST_DATABASE_URL=$(scripts/pg start) bash scripts/test.d/50-container-smoke.sh
#
# Environment:
#   SKIP_CONTAINER_SMOKE=1    skip this test
#   SMOKE_PROFILE=release     package target/release binaries (default debug)
#   SMOKE_PORT_BASE=N         first port to try for the servers (default 61100: above Linux's
#                             ephemeral range 32768-60999, where any outgoing connection, e.g.
#                             a container's to PostgreSQL, may take a port between our check
#                             and the server's bind); busy ports are skipped
#   SMOKE_KEEP=1              keep the containers and the database after the run
# The test prints "SKIPPED: <reason>" and exits 0 only when this machine cannot run
# containers at all (tools not installable, podman unable to start a trivial container);
# any failure of the images or services themselves fails it.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

if [[ "${SKIP_CONTAINER_SMOKE:-}" == 1 ]]; then
  info "SKIPPED: SKIP_CONTAINER_SMOKE=1"
  exit 0
fi

started_at=$SECONDS

: "${TEST_DATABASE_URL:?TEST_DATABASE_URL is not set (run it through scripts/test, or TEST_DATABASE_URL=\$(scripts/pg start))}"
profile="${SMOKE_PROFILE:-debug}"
case "$profile" in
  debug) cargo_profile=() ;;
  release) cargo_profile=(--release) ;;
  *) die "SMOKE_PROFILE must be debug or release, got '$profile'" ;;
esac
state="$REPO_ROOT/.dev/container"
mkdir -p "$state"

# --- 1. Tools ------------------------------------------------------------------------------
missing=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  is_root || skipped "${missing[*]} not installed and not root to install them (apt-get install -y podman buildah runc debootstrap)"
  command -v apt-get >/dev/null || skipped "${missing[*]} not installed and no apt-get"
  if ! (apt_install podman buildah runc debootstrap); then
    skipped "apt-get install podman buildah runc debootstrap failed (see above)"
  fi
fi
command -v psql >/dev/null || PATH="$(bash scripts/pg bindir):$PATH"
step "$(podman --version), $(runc --version | head -n 1)"

# --- 2. containers.conf ----------------------------------------------------------------------
nofile="$(ulimit -Hn)"
[[ "$nofile" == unlimited ]] && nofile=1048576
export CONTAINERS_CONF="$state/containers.conf"
cat >"$CONTAINERS_CONF" <<EOF
# Written by scripts/test.d/50-container-smoke.sh on each run.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# --- 3. Base image -------------------------------------------------------------------------------
# apt_mirror SUITE: the first "deb" URI apt uses for SUITE (deb822 .sources or one-line .list).
apt_mirror() {
  local suite="$1" file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    awk -v suite="$suite" '
      function flush() {
        if (deb && uri != "" && (" " suites " ") ~ (" " suite " ")) { print uri; found = 1; exit }
        deb = 0; uri = ""; suites = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      END { if (!found) flush() }
    ' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$file" ]] || continue
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) print $i
      }
    ' "$file"
  done
}

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
base_image="localhost/debian:$codename"
if podman image exists "$base_image"; then
  step "base image $base_image: cached"
else
  mirror="$(apt_mirror "$codename" | head -n 1)"
  [[ -n "$mirror" ]] || skipped "no apt source for suite $codename to debootstrap from"
  rootfs="$state/rootfs-$codename"
  rm -rf "$rootfs"
  info "debootstrap --variant=minbase $codename from $mirror (about a minute)"
  if ! debootstrap --variant=minbase "$codename" "$rootfs" "$mirror" >"$state/debootstrap.log" 2>&1; then
    tail -n 20 "$state/debootstrap.log" >&2
    rm -rf "$rootfs"
    skipped "debootstrap of $codename from $mirror failed (log: ${state#"$REPO_ROOT"/}/debootstrap.log)"
  fi
  tar -C "$rootfs" -c . | podman import --quiet - "$base_image" >/dev/null
  rm -rf "$rootfs"
  step "base image $base_image: imported"
fi

# Can this machine run a container at all? Anything failing here is the environment.
if ! probe_out="$(podman run --rm --network host --pull=never "$base_image" true 2>&1)"; then
  printf '%s\n' "$probe_out" >&2
  skipped "podman cannot run a trivial container here (podman run $base_image true failed, see above)"
fi
step "podman runs containers"

# --- 4. Images from host-built binaries -----------------------------------------------------------
# Every binary of the workspace, as scripts/up and the docs build them (`cargo build --bins`):
# one set of compiled dependencies for this test, 55-compose-tls.sh and 60-doc-commands.sh (a
# build of some packages only would compile shared crates again with other features).
cargo build --locked --quiet "${cargo_profile[@]}" --bins
target_dir="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin_dir="$target_dir/$profile"
shopctl="$bin_dir/shopctl"
step "cargo build ($profile)"

work="$(mktemp -d)"
containers=()
run_id="$$"
# The inventory refuses to start with its admin RPCs open by accident; shopctl sends this.
admin_token="smoke-admin-${run_id}-${RANDOM}"
cleanup() {
  local rc=$?
  if ((${#containers[@]})); then
    if ((rc != 0)); then
      local c
      for c in "${containers[@]}"; do
        warn "last log lines of $c:"
        podman logs --tail 15 "$c" >&2 2>&1 || true
      done
    fi
    if [[ "${SMOKE_KEEP:-}" == 1 ]]; then
      info "SMOKE_KEEP=1: containers kept: ${containers[*]}"
    else
      podman rm --force --time 5 "${containers[@]}" >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

context="$work/context"
mkdir -p "$context"
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp /etc/ssl/certs/ca-certificates.crt "$context/"
else
  : >"$context/ca-certificates.crt" # no TLS peer in this test
fi

declare -A grpc_port_of=([inventory-service]=50051 [order-service]=50052
  [product-standin]=50053 [payment-standin]=50054)
declare -A metrics_port_of=([inventory-service]=9101 [order-service]=9102
  [product-standin]='' [payment-standin]='')
binaries=(inventory-service order-service product-standin payment-standin)
for bin in "${binaries[@]}"; do
  # Without debug info: a quarter of the size, so layers commit faster.
  if command -v strip >/dev/null; then
    strip --strip-debug -o "$context/$bin" "$bin_dir/$bin"
  else
    cp "$bin_dir/$bin" "$context/$bin"
  fi
  tag="localhost/order-inventory-smoke/$bin:latest"
  old_id="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
  podman build --quiet --pull=never --format docker --network host \
    --file "$REPO_ROOT/Dockerfile" --target runtime-prebuilt \
    --build-arg BASE_IMAGE="$base_image" --build-arg BIN="$bin" --build-arg PREBUILT_DIR=. \
    --build-arg GRPC_PORT="${grpc_port_of[$bin]}" --build-arg METRICS_PORT="${metrics_port_of[$bin]}" \
    --tag "$tag" "$context" >/dev/null
  rm -f "$context/$bin"
  # The previous build of this tag, now untagged: remove it so runs do not pile up images.
  if [[ -n "$old_id" && "$old_id" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true
  fi
done
step "podman build --target runtime-prebuilt: ${binaries[*]}"

# The image must carry what the Dockerfile promises.
image_inventory="localhost/order-inventory-smoke/inventory-service:latest"
hc="$(podman image inspect --format '{{json .HealthCheck}}' "$image_inventory")"
[[ "$hc" == *'"/usr/local/bin/app","healthcheck"'* ]] || die "no HEALTHCHECK in $image_inventory: $hc"
user="$(podman image inspect --format '{{.User}}' "$image_inventory")"
[[ -n "$user" && "$user" != root && "$user" != 0* ]] || die "$image_inventory runs as '$user', not a non-root user"

# --- 5. Database, containers, one order ------------------------------------------------------
# Host, port and superuser of the test cluster, from postgres://user[:pw]@host:port/db.
db_rest="${TEST_DATABASE_URL#*://}"
db_userinfo="${db_rest%%@*}"
db_hostport="${db_rest#*@}"
db_hostport="${db_hostport%%/*}"
admin_url="${TEST_DATABASE_URL%/*}/postgres"
smoke_db=smoke
[[ "$db_userinfo" != "$db_rest" ]] || die "TEST_DATABASE_URL has no user: $TEST_DATABASE_URL"

export PGOPTIONS="-c client_min_messages=warning"
psql -X -q -v ON_ERROR_STOP=1 "$admin_url" \
  -c "drop database if exists $smoke_db with (force)" -c "create database $smoke_db" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -v inventory_password=inventory_dev -v order_password=order_dev \
  -f deploy/postgres/roles-and-schemas.psql "${TEST_DATABASE_URL%/*}/$smoke_db" >/dev/null
step "database $smoke_db with roles inventory_svc, order_svc (deploy/postgres/roles-and-schemas.psql)"

# free_port START: the first port from START on where nothing listens on 127.0.0.1.
free_port() {
  local port="$1"
  while (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || [[ " ${taken[*]} " == *" $port "* ]]; do
    port=$((port + 1))
  done
  taken+=("$port")
  echo "$port"
}
taken=()
port_base="${SMOKE_PORT_BASE:-61100}"
inv_grpc="$(free_port "$port_base")"
inv_metrics="$(free_port "$((inv_grpc + 1))")"
ord_grpc="$(free_port "$((inv_metrics + 1))")"
ord_metrics="$(free_port "$((ord_grpc + 1))")"
product_grpc="$(free_port "$((ord_metrics + 1))")"
payment_grpc="$(free_port "$((product_grpc + 1))")"

# run_container NAME BIN ENV...: starts BIN's image detached on the host network.
run_container() {
  local name="smoke-$1-$run_id" bin="$2"
  shift 2
  local env_args=() kv
  for kv in "$@"; do env_args+=(--env "$kv"); done
  containers+=("$name")
  # --health-interval=disable: no systemd timer (there may be no systemd); the image's
  # HEALTHCHECK stays and `podman healthcheck run` below runs it.
  podman run --detach --name "$name" --network host --pull=never --health-interval=disable \
    --env LOG_FORMAT=json --env RUST_LOG=info "${env_args[@]}" \
    "localhost/order-inventory-smoke/$bin:latest" 2> >(without_timer_noise) >/dev/null
}

db_at="$db_hostport/$smoke_db"
run_container product product-standin "GRPC_ADDR=127.0.0.1:$product_grpc"
run_container payment payment-standin "GRPC_ADDR=127.0.0.1:$payment_grpc"
run_container inventory inventory-service \
  "DATABASE_URL=postgres://inventory_svc:inventory_dev@$db_at" \
  "GRPC_ADDR=127.0.0.1:$inv_grpc" "METRICS_ADDR=127.0.0.1:$inv_metrics" \
  "ADMIN_TOKEN=$admin_token"
run_container order order-service \
  "DATABASE_URL=postgres://order_svc:order_dev@$db_at" \
  "GRPC_ADDR=127.0.0.1:$ord_grpc" "METRICS_ADDR=127.0.0.1:$ord_metrics" \
  "INVENTORY_SERVICE_URL=http://127.0.0.1:$inv_grpc" \
  "PRODUCT_SERVICE_URL=http://127.0.0.1:$product_grpc" \
  "PAYMENT_SERVICE_URL=http://127.0.0.1:$payment_grpc"
step "started ${containers[*]} (gRPC ports $inv_grpc, $ord_grpc, $product_grpc, $payment_grpc)"

# wait_healthy NAME: polls the image's HEALTHCHECK (liveness) and then readiness (`app
# healthcheck --ready`: migrated, database writable) until both pass (60 s at most).
wait_healthy() {
  local name="$1" deadline=$((SECONDS + 60)) state
  while :; do
    state="$(podman inspect --format '{{.State.Status}}' "$name")"
    [[ "$state" == running ]] || die "$name is $state, not running"
    if podman healthcheck run "$name" >/dev/null 2>&1 &&
      podman exec "$name" /usr/local/bin/app healthcheck --ready >/dev/null 2>&1; then
      return 0
    fi
    ((SECONDS < deadline)) || die "$name not healthy after 60 s"
    sleep 0.5
  done
}
for c in "${containers[@]}"; do wait_healthy "$c"; done
step "healthy: ${containers[*]}"

# Each role sees only its own schema (the services already migrated as those roles).
for check in "inventory_svc:inventory_dev orders.orders" "order_svc:order_dev inventory.items"; do
  read -r login table <<<"$check"
  role="${login%%:*}"
  if out="$(psql -X -q -At "postgres://$login@$db_at" -c "select 1 from $table limit 1" 2>&1)"; then
    die "role $role can read $table: $out"
  fi
  [[ "$out" == *"permission denied"* ]] || die "role $role reading $table: unexpected error: $out"
done

"$shopctl" --inventory-url "http://127.0.0.1:$inv_grpc" --token "$admin_token" \
  stock set MUG-CLASSIC 5 --product prod-mug >/dev/null
order_json="$("$shopctl" --json --order-url "http://127.0.0.1:$ord_grpc" \
  order place --user smoke-user --key "smoke-$run_id" prod-mug=1)"
status="$(sed -n 's/.*"status"[[:space:]]*:[[:space:]]*"\([A-Z_]*\)".*/\1/p' <<<"$order_json" | head -n 1)"
[[ "$status" == CONFIRMED ]] || die "order status '$status', expected CONFIRMED: $order_json"
item_json="$("$shopctl" --json --inventory-url "http://127.0.0.1:$inv_grpc" stock show MUG-CLASSIC)"
tr -d ' \n' <<<"$item_json" | grep -q '"onHand":4' ||
  die "MUG-CLASSIC should have 4 on hand after the order: $item_json"
order_id="$(sed -n 's/.*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$order_json" | head -n 1)"
step "order $order_id placed through the containers: CONFIRMED, MUG-CLASSIC on hand 5 -> 4"

# --- 6. Cleanup ----------------------------------------------------------------------------------
if [[ "${SMOKE_KEEP:-}" != 1 ]]; then
  # SIGTERM as PID 1: each server must drain and exit 0 by itself.
  podman stop --time 15 "${containers[@]}" 2> >(without_timer_noise) >/dev/null
  for c in "${containers[@]}"; do
    code="$(podman inspect --format '{{.State.ExitCode}}' "$c")"
    [[ "$code" == 0 ]] || die "$c exited with $code after SIGTERM"
  done
  podman rm "${containers[@]}" 2> >(without_timer_noise) >/dev/null
  containers=()
  # The roles are cluster-wide; without the database they own nothing and can go too.
  psql -X -q "$admin_url" -c "drop database if exists $smoke_db with (force)" \
    -c "drop role if exists inventory_svc" -c "drop role if exists order_svc" >/dev/null ||
    warn "could not drop the database $smoke_db or the roles inventory_svc, order_svc"
  step "containers stopped by SIGTERM (exit 0) and removed"
fi
info "container smoke test passed in $((SECONDS - started_at)) s"
