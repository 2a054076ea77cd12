#!/usr/bin/env bash
# docker-compose.tls.yml for real, with podman (no Docker engine): mutual TLS on every gRPC
# hop, as the override configures it, must carry an order end to end.
#   1. merges docker-compose.tls.yml onto docker-compose.yml (scripts/compose.py) and makes the
#      certificates (scripts/dev-certs);
#   2. runs inventory, order and the product and payment stand-ins, each in the image
#      50-container-smoke.sh built (run it first; scripts/test does), with the merged file's
#      environment, its bind mount of .dev/tls at /run/tls (read by the image's non-root user)
#      and `--add-host NAME:127.0.0.1` for every service name, so the peer URLs keep their host
#      names and the certificates are checked against them. Only what cannot be the same on a
#      shared host network is rewritten: ports (free ones; the URLs follow), the database
#      (TEST_DATABASE_URL's cluster, with compose's roles) and ${...} interpolation (compose's
#      defaults, ADMIN_TOKEN from .dev/tls/admin-token);
#   3. waits for the merged file's healthcheck (`app healthcheck --ready`, which must speak
#      mutual TLS by itself) in each container;
#   4. with target/debug/shopctl over https: sets stock as ops-admin (an identity on
#      ADMIN_ALLOWED_IDENTITIES), places an order (CONFIRMED: order -> product, inventory and
#      payment over mutual TLS), lists parked orders (operator RPC); and expects refusals for
#      a call without a client certificate, a plaintext call, and an admin call of an identity
#      not on the list without the token (the same call with the token passes);
#   5. stops the containers with SIGTERM (exit 0 expected) and removes them, the database and
#      the roles.
#
# It is run by scripts/test after 50-container-smoke.sh. Alone (after that one):
#   TEST_DATABASE_URL=$(scripts/pg start) bash scripts/test.d/55-compose-tls.sh
#
# Environment:
#   SKIP_CONTAINER_SMOKE=1   skip this test too
#   SMOKE_PORT_BASE=N        first port to try (default 61200); busy ports are skipped
# Prints "SKIPPED: <reason>" and exits 0 only when 50-container-smoke.sh could not make its
# images (no container engine); any failure of the services fails it.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

started_at=$SECONDS

if [[ "${SKIP_CONTAINER_SMOKE:-}" == 1 ]]; then
  info "SKIPPED: SKIP_CONTAINER_SMOKE=1"
  exit 0
fi
: "${TEST_DATABASE_URL:?TEST_DATABASE_URL is not set (run it through scripts/test, or TEST_DATABASE_URL=\$(scripts/pg start))}"

# --- Images and tools of 50-container-smoke.sh ---------------------------------------------------
command -v podman >/dev/null || skipped "no podman (50-container-smoke.sh installs it)"
export CONTAINERS_CONF="$REPO_ROOT/.dev/container/containers.conf"
[[ -f "$CONTAINERS_CONF" ]] || skipped "no ${CONTAINERS_CONF#"$REPO_ROOT"/} (run 50-container-smoke.sh first)"
declare -A image_of=()
for bin in inventory-service order-service product-standin payment-standin; do
  image_of[$bin]="localhost/order-inventory-smoke/$bin:latest"
  podman image exists "${image_of[$bin]}" ||
    skipped "no image ${image_of[$bin]} (run 50-container-smoke.sh first)"
done
command -v psql >/dev/null || PATH="$(bash scripts/pg bindir):$PATH"
python="$REPO_ROOT/.dev/venv/check-jsonschema/bin/python"
if [[ ! -x "$python" ]]; then
  bash scripts/test.d/20-compose.sh >/dev/null # creates the virtualenv (ruamel.yaml)
fi
# What 50-container-smoke.sh builds, so nothing is compiled again.
cargo build --locked --quiet --bins
shopctl_bin="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/shopctl"

# --- 1. Merged file, certificates -------------------------------------------------------------------
bash scripts/dev-certs
ADMIN_TOKEN="$(cat .dev/tls/admin-token)"
export ADMIN_TOKEN
tls=.dev/tls
work="$(mktemp -d)"
containers=()
run_id="$$"
db=compose_tls
db_rest="${TEST_DATABASE_URL#*://}"
db_hostport="${db_rest#*@}"
db_hostport="${db_hostport%%/*}"
admin_url="${TEST_DATABASE_URL%/*}/postgres"
cleanup() {
  local rc=$? c
  if ((${#containers[@]})); then
    if ((rc != 0)); then
      for c in "${containers[@]}"; do
        warn "last log lines of $c:"
        podman logs --tail 15 "$c" >&2 2>&1 || true
      done
    fi
    podman rm --force --time 5 "${containers[@]}" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" scripts/compose.py merge "$work/merged.json" docker-compose.yml docker-compose.tls.yml

# free_port START: the first port from START on where nothing listens on 127.0.0.1.
taken=()
free_port() {
  local port="$1"
  while (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || [[ " ${taken[*]} " == *" $port "* ]]; do
    port=$((port + 1))
  done
  taken+=("$port")
  echo "$port"
}
port=$((${SMOKE_PORT_BASE:-61200} - 1))
port_map=''
for compose_port in 50051 50052 50053 50054 9101 9102; do
  port="$(free_port "$((port + 1))")"
  port_map+="${port_map:+,}\"$compose_port\": $port"
done

# One line per service: NAME BIN ENV-FILE HEALTHCHECK-ARGS (JSON); env files and mounts beside.
"$python" - "$work" "$work/merged.json" "{$port_map}" "$db_hostport" "$db" <<'PY' >"$work/services"
"""The merged file's four Rust services as podman arguments, with only ports, database and
interpolation rewritten (see the header of 55-compose-tls.sh)."""
import json
import os
import re
import sys

work, merged, port_map, db_hostport, db = sys.argv[1:6]
port_map = json.loads(port_map)
doc = json.load(open(merged))
names = sorted(doc["services"])


def interpolate(value):
    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = os.environ.get(name, "")
        if op == ":-" and not value:
            return arg
        if op == ":?" and not value:
            sys.exit(f"{name} is required: {arg}")
        return value
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, str(value))


def repoint(key, value):
    if key == "DATABASE_URL":
        return re.sub(r"@postgres:5432/shop$", f"@{db_hostport}/{db}", value)
    if key in ("GRPC_ADDR", "METRICS_ADDR"):
        host, _, port = value.rpartition(":")
        return f"127.0.0.1:{port_map[port]}"
    m = re.match(r"^(https?://[a-z0-9-]+):(\d+)$", value) if key.endswith("_URL") else None
    return f"{m.group(1)}:{port_map[m.group(2)]}" if m else value


for name in ("product-standin", "payment-standin", "inventory", "order"):
    service = doc["services"][name]
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    path = os.path.join(work, f"{name}.env")
    with open(path, "w") as f:
        for key, value in env.items():
            f.write(f"{key}={repoint(key, interpolate(value))}\n")
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("type") == "bind":
            mode = ":ro" if volume.get("read_only") else ""
            mounts.append(f"{os.path.abspath(volume['source'])}:{volume['target']}{mode}")
    with open(os.path.join(work, f"{name}.mounts"), "w") as f:
        f.write("\n".join(mounts) + ("\n" if mounts else ""))
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test
    print(name, service["build"]["args"]["BIN"], path, json.dumps(test[1:]))
with open(os.path.join(work, "hosts"), "w") as f:
    f.write("\n".join(names) + "\n")
PY
declare -A compose_port_to_host=()
IFS=, read -ra pairs <<<"$port_map"
for pair in "${pairs[@]}"; do
  compose_port_to_host[$(tr -d '" ' <<<"${pair%%:*}")]="$(tr -d ' ' <<<"${pair#*:}")"
done
inv_port="${compose_port_to_host[50051]}"
ord_port="${compose_port_to_host[50052]}"
step "merged docker-compose.yml + docker-compose.tls.yml; ports 50051-50054 -> $inv_port, $ord_port, ${compose_port_to_host[50053]}, ${compose_port_to_host[50054]}"

# --- Database with compose's roles ----------------------------------------------------------------
export PGOPTIONS="-c client_min_messages=warning"
psql -X -q -v ON_ERROR_STOP=1 "$admin_url" \
  -c "drop database if exists $db with (force)" -c "create database $db" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -v inventory_password="${INVENTORY_DB_PASSWORD:-inventory_dev}" \
  -v order_password="${ORDER_DB_PASSWORD:-order_dev}" \
  -f deploy/postgres/roles-and-schemas.psql "${TEST_DATABASE_URL%/*}/$db" >/dev/null

# --- 2. Containers -----------------------------------------------------------------------------------
add_hosts=()
while read -r host; do add_hosts+=(--add-host "$host:127.0.0.1"); done <"$work/hosts"
declare -A health_of=()
while read -r name bin env_file health; do
  mounts=()
  while read -r mount; do [[ -n "$mount" ]] && mounts+=(-v "$mount"); done <"$work/$name.mounts"
  c="tls-$name-$run_id"
  containers+=("$c")
  health_of[$c]="$health"
  podman run --detach --name "$c" --network host --pull=never --health-interval=disable \
    "${add_hosts[@]}" --env-file "$env_file" "${mounts[@]}" "${image_of[$bin]}" \
    2> >(without_timer_noise) >/dev/null
done <"$work/services"
step "started ${containers[*]}"

# --- 3. The merged file's healthchecks ------------------------------------------------------------
for c in "${containers[@]}"; do
  mapfile -t check < <("$python" -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "${health_of[$c]}")
  deadline=$((SECONDS + 60))
  until podman exec "$c" "${check[@]}" >"$work/health.out" 2>&1; do
    [[ "$(podman inspect --format '{{.State.Status}}' "$c")" == running ]] || die "$c exited"
    if ((SECONDS >= deadline)); then
      cat "$work/health.out" >&2
      die "$c: '${check[*]}' did not pass within 60 s"
    fi
    sleep 0.5
  done
done
step "healthy (${check[*]}, mutual TLS): ${containers[*]}"

# --- 4. Calls over TLS ------------------------------------------------------------------------------
ops=(--tls-ca "$tls/ca.pem" --tls-cert "$tls/ops-admin.pem" --tls-key "$tls/ops-admin.key")
inv="https://127.0.0.1:$inv_port"
ord="https://127.0.0.1:$ord_port"
# shopctl reads ADMIN_TOKEN from the environment; these calls must pass by identity alone.
no_token() { env -u ADMIN_TOKEN "$shopctl_bin" "$@"; }

no_token --inventory-url "$inv" "${ops[@]}" stock set MUG-CLASSIC 5 --product prod-mug >/dev/null
order_json="$(no_token --json --order-url "$ord" "${ops[@]}" order place --user tls-user --key "tls-$run_id" prod-mug=1)"
status="$(sed -n 's/.*"status"[[:space:]]*:[[:space:]]*"\([A-Z_]*\)".*/\1/p' <<<"$order_json" | head -n 1)"
[[ "$status" == CONFIRMED ]] || die "order status '$status', expected CONFIRMED: $order_json"
no_token --order-url "$ord" "${ops[@]}" order parked >/dev/null
step "as ops-admin over mutual TLS: stock set, order CONFIRMED (order -> product, inventory, payment), order parked"

# refused WHAT CMD...: CMD must fail.
refused() {
  local what="$1"
  shift
  if out="$("$@" 2>&1)"; then die "$what was accepted: $out"; fi
  info "refused as expected: $what ($(tail -n 1 <<<"$out" | cut -c1-120))"
}
refused "a call without a client certificate" \
  no_token --inventory-url "$inv" --tls-ca "$tls/ca.pem" stock show MUG-CLASSIC
refused "a plaintext call" no_token --inventory-url "http://127.0.0.1:$inv_port" stock show MUG-CLASSIC
order_cert=(--tls-ca "$tls/ca.pem" --tls-cert "$tls/order.pem" --tls-key "$tls/order.key")
refused "an admin call of order-service (not on ADMIN_ALLOWED_IDENTITIES) without the token" \
  no_token --inventory-url "$inv" "${order_cert[@]}" stock adjust MUG-CLASSIC 1 --reason tls-check
"$shopctl_bin" --inventory-url "$inv" "${order_cert[@]}" --token "$ADMIN_TOKEN" \
  stock adjust MUG-CLASSIC 1 --reason tls-check >/dev/null
step "refusals as expected; the same admin call with the token passes"

# --- 5. Stop ----------------------------------------------------------------------------------------
podman stop --time 15 "${containers[@]}" 2> >(without_timer_noise) >/dev/null
for c in "${containers[@]}"; do
  code="$(podman inspect --format '{{.State.ExitCode}}' "$c")"
  [[ "$code" == 0 ]] || die "$c exited with $code after SIGTERM"
done
podman rm "${containers[@]}" 2> >(without_timer_noise) >/dev/null
containers=()
psql -X -q "$admin_url" -c "drop database if exists $db with (force)" \
  -c "drop role if exists inventory_svc" -c "drop role if exists order_svc" >/dev/null ||
  warn "could not drop the database $db or the roles inventory_svc, order_svc"
step "containers stopped by SIGTERM (exit 0) and removed"
info "compose TLS test passed in $((SECONDS - started_at)) s"
