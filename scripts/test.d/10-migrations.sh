#!/usr/bin/env bash
# A migration that has landed is never edited: a database that applied it would refuse the
# new text (sqlx compares checksums at every start) or, worse, never run the change. Every
# file under migrations/ is listed with its SHA-256 in migrations/landed.sha256; this check
# fails when a listed file changed or went away, or when a migration is not listed.
#
# Adding a migration: create the new file, then append its line to the list in the same
# commit (`(cd migrations && sha256sum DIR/FILE.sql) >> migrations/landed.sha256`). From then
# on it is frozen like the others: a change is another new migration.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT/migrations"

list=landed.sha256
[[ -f "$list" ]] || die "migrations/$list is missing"

if ! out="$(sha256sum --check --quiet "$list" 2>&1)"; then
  die "a landed migration changed or went away (add a new migration instead):"$'\n'"$out"
fi
unlisted=()
for file in */*.sql; do
  grep -q "  $file\$" "$list" || unlisted+=("$file")
done
if ((${#unlisted[@]})); then
  die "not in migrations/$list (append its sha256sum line when you add a migration): ${unlisted[*]}"
fi
info "$(grep -c . "$list") migrations, none edited after it landed"
