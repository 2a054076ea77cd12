#!/usr/bin/env bash
# Checks docker-compose.yml offline, with no container engine:
#   1. against the Compose specification:
#        check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
#   2. beyond the schema: every bind-mounted file or directory exists, every depends_on names
#      a service, every image built here packages a binary of the workspace, and the four Rust
#      services get their settings through DESIGN.md's environment names.
# check-jsonschema comes from PyPI into a virtualenv under .dev/ (created once, reused).
#
# Environment:
#   CHECK_JSONSCHEMA=/path/to/check-jsonschema   use that binary instead
#   COMPOSE_FILE_TO_CHECK=path                   check another file (default docker-compose.yml)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

compose_file="${COMPOSE_FILE_TO_CHECK:-docker-compose.yml}"
[[ -f "$compose_file" ]] || die "$compose_file not found"

# Bumping it re-creates the virtualenv's install on the next run.
CHECK_JSONSCHEMA_VERSION=0.39.0
venv="$REPO_ROOT/.dev/venv/check-jsonschema"

# --- Tool --------------------------------------------------------------------------------
ensure_venv() {
  local stamp="$venv/.installed-$CHECK_JSONSCHEMA_VERSION"
  [[ -f "$stamp" && -x "$venv/bin/check-jsonschema" ]] && return 0
  command -v python3 >/dev/null || apt_install python3 python3-venv
  if [[ ! -x "$venv/bin/python" ]]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  info "installing check-jsonschema $CHECK_JSONSCHEMA_VERSION from PyPI into ${venv#"$REPO_ROOT"/}"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
}

if [[ -n "${CHECK_JSONSCHEMA:-}" ]]; then
  command -v "$CHECK_JSONSCHEMA" >/dev/null || die "CHECK_JSONSCHEMA=$CHECK_JSONSCHEMA not found"
  checker="$CHECK_JSONSCHEMA"
  python=python3
else
  ensure_venv
  checker="$venv/bin/check-jsonschema"
  python="$venv/bin/python"
fi

# --- 1. Compose specification ---------------------------------------------------------------
info "check-jsonschema --builtin-schema vendor.compose-spec $compose_file"
"$checker" --builtin-schema vendor.compose-spec "$compose_file"

# --- 2. Beyond the schema ---------------------------------------------------------------------
info "bind mounts, depends_on, build arguments, environment names"
"$python" - "$compose_file" <<'PY'
"""Cross-checks the schema cannot make. Reads YAML with ruamel (a check-jsonschema dependency)."""
import os
import re
import sys

from ruamel.yaml import YAML

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    doc = YAML(typ="safe").load(f)
services = doc.get("services") or {}
errors = []

BINARIES = {"inventory-service", "order-service", "product-standin", "payment-standin",
            "user-standin"}
# Every setting a binary reads: the `env = "NAME"` of its clap arguments.
KNOWN_ENV = set()
for root, _dirs, files in os.walk("crates"):
    for file in files:
        if file.endswith(".rs"):
            with open(os.path.join(root, file), encoding="utf-8") as f:
                KNOWN_ENV.update(re.findall(r'\benv\s*=\s*"([A-Z0-9_]+)"', f.read()))
REQUIRED_ENV = {
    "inventory-service": {"DATABASE_URL", "GRPC_ADDR", "METRICS_ADDR", "LOG_FORMAT", "RUST_LOG"},
    "order-service": {"DATABASE_URL", "GRPC_ADDR", "METRICS_ADDR", "INVENTORY_SERVICE_URL",
                      "PRODUCT_SERVICE_URL", "PAYMENT_SERVICE_URL", "LOG_FORMAT", "RUST_LOG"},
    "product-standin": {"GRPC_ADDR", "LOG_FORMAT"},
    "payment-standin": {"GRPC_ADDR", "LOG_FORMAT"},
}


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


for name, service in services.items():
    where = f"services.{name}"
    # Bind mounts: relative sources must exist in the repository.
    for volume in service.get("volumes") or []:
        source = volume.get("source") if isinstance(volume, dict) else volume.split(":", 1)[0]
        if source and source.startswith((".", "/")) and not os.path.exists(source):
            errors.append(f"{where}.volumes: {source} does not exist")
    # depends_on: only services of this file.
    depends = service.get("depends_on") or []
    for dep in depends if isinstance(depends, list) else depends.keys():
        if dep not in services:
            errors.append(f"{where}.depends_on: no service {dep!r}")
    build = service.get("build")
    if build is None:
        continue
    args = (build.get("args") or {}) if isinstance(build, dict) else {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) for item in args)
    binary = args.get("BIN")
    if binary not in BINARIES:
        errors.append(f"{where}.build.args.BIN: {binary!r} is not one of {sorted(BINARIES)}")
        continue
    env = env_of(service)
    for key in sorted(set(env) - KNOWN_ENV):
        errors.append(f"{where}.environment: {key} is not a setting of the servers")
    for key in sorted(REQUIRED_ENV.get(binary, set()) - set(env)):
        errors.append(f"{where}.environment: {key} is not set")
    if env.get("LOG_FORMAT") not in (None, "json"):
        errors.append(f"{where}.environment.LOG_FORMAT: containers log json")
    grpc_port = str(args.get("GRPC_PORT", ""))
    grpc_addr = str(env.get("GRPC_ADDR", ""))
    if grpc_port and not grpc_addr.endswith(f":{grpc_port}"):
        errors.append(f"{where}: GRPC_ADDR {grpc_addr!r} does not listen on GRPC_PORT {grpc_port}")
    url = str(env.get("DATABASE_URL", ""))
    if url and not re.match(r"^postgres(ql)?://[a-z_]+_svc:", url):
        errors.append(f"{where}.environment.DATABASE_URL: use the service's own role (*_svc)")

# Peer URLs point at services of this file, on the port they listen on.
for name, service in services.items():
    for key, value in env_of(service).items():
        m = re.match(r"^http://([a-z0-9-]+):(\d+)$", str(value)) if key.endswith("_URL") else None
        if not m:
            continue
        peer, port = m.groups()
        if peer not in services:
            errors.append(f"services.{name}.environment.{key}: no service {peer!r}")
        elif not str(env_of(services[peer]).get("GRPC_ADDR", "")).endswith(f":{port}"):
            errors.append(f"services.{name}.environment.{key}: {peer} does not listen on {port}")

if errors:
    print(f"{path}:", *errors, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"{path}: {len(services)} services, cross-checks ok")
PY
