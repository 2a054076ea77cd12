#!/usr/bin/env bash
# Checks docker-compose.yml and its overrides offline, with no container engine:
#   1. against the Compose specification:
#        check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
#   2. beyond the schema: every bind-mounted file or directory exists, every depends_on names
#      a service, every image built here packages a binary of the workspace, and the four Rust
#      services get their settings through DESIGN.md's environment names (scripts/compose.py).
#   3. each override docker-compose.*.yml (docker-compose.tls.yml): the file alone against the
#      specification, then merged onto docker-compose.yml as `docker compose -f
#      docker-compose.yml -f OVERRIDE` merges it (mappings and environment by key, volumes by
#      target, other lists appended, command/entrypoint/healthcheck.test replaced), and the
#      merged file through 1 and 2. When the merged file serves TLS (any TLS_CERT_PATH), also:
#      every gRPC server has TLS_CERT_PATH and TLS_KEY_PATH, every peer URL to a TLS server is
#      https:// with PEER_TLS_CA_PATH (and a client certificate where the peer requires one),
#      every TLS and token file is under a bind mount whose source holds it, every peer's
#      certificate names the URL's host (openssl), and the inventory and order services have
#      an admin token. The certificates come from scripts/dev-certs, run first when an override
#      mounts .dev/tls (made once, reused).
# check-jsonschema comes from PyPI into a virtualenv under .dev/ (created once, reused).
#
# Environment:
#   CHECK_JSONSCHEMA=/path/to/check-jsonschema   use that binary instead
#   COMPOSE_FILE_TO_CHECK=path                   check only that file (default: docker-compose.yml
#                                                and each docker-compose.*.yml merged onto it)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

base_file="${COMPOSE_FILE_TO_CHECK:-docker-compose.yml}"
[[ -f "$base_file" ]] || die "$base_file not found"
overrides=()
if [[ -z "${COMPOSE_FILE_TO_CHECK:-}" ]]; then
  for file in docker-compose.*.yml; do
    [[ -f "$file" ]] && overrides+=("$file")
  done
fi

# Bumping it re-creates the virtualenv's install on the next run.
CHECK_JSONSCHEMA_VERSION=0.39.0
venv="$REPO_ROOT/.dev/venv/check-jsonschema"

if [[ -n "${CHECK_JSONSCHEMA:-}" ]]; then
  command -v "$CHECK_JSONSCHEMA" >/dev/null || die "CHECK_JSONSCHEMA=$CHECK_JSONSCHEMA not found"
  checker="$CHECK_JSONSCHEMA"
  python=python3
else
  pip_venv check-jsonschema "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  checker="$venv/bin/check-jsonschema"
  python="$venv/bin/python"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The merge of an override and the cross-checks (steps 2 and 3): scripts/compose.py.
compose_py=("$python" "$REPO_ROOT/scripts/compose.py")

# check_file FILE [LABEL]: steps 1 and 2 on FILE.
check_file() {
  local file="$1" label="${2:-$1}"
  info "check-jsonschema --builtin-schema vendor.compose-spec $label"
  "$checker" --builtin-schema vendor.compose-spec "$file"
  info "$label: bind mounts, depends_on, build arguments, environment names, peers"
  "${compose_py[@]}" check "$file" "$label"
}

# --- 1 and 2. The base file ------------------------------------------------------------------
check_file "$base_file"

# --- 3. Overrides, alone and merged ------------------------------------------------------------
for override in "${overrides[@]}"; do
  if grep -q '\.dev/tls' "$override"; then
    bash "$REPO_ROOT/scripts/dev-certs"
  fi
  info "check-jsonschema --builtin-schema vendor.compose-spec $override (alone)"
  "$checker" --builtin-schema vendor.compose-spec "$override"
  merged="$work/merged-${override##*/}.json"
  "${compose_py[@]}" merge "$merged" "$base_file" "$override"
  check_file "$merged" "$base_file + $override"
done
