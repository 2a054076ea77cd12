#!/usr/bin/env bash
# Checks the monitoring files under deploy/ with promtool, offline:
#   1. promtool check config deploy/prometheus/prometheus.yml (also loads alerts.yml)
#   2. promtool check rules  deploy/prometheus/alerts.yml
#   3. promtool test rules   deploy/prometheus/alerts_test.yml (firing and not firing cases)
#   4. Grafana: every dashboard under deploy/grafana/dashboards/ is valid JSON with a uid,
#      uses the provisioned datasource, and every PromQL query in it parses (promtool check
#      rules on a throwaway file holding each query as a recording rule)
#   5. every metric named by the alert rules and the dashboards is one the servers register
#      (a string literal in crates/*/src), every alert has unit tests and a runbook section
#      (docs/runbook.md, at the anchor of its runbook_url)
#   6. the dashboard and the alerts in step: every alert has a panel titled "<alert>: ..." that
#      queries every metric of the alert's expression and draws each of its non-zero thresholds
#      (Grafana threshold steps), and every metric the servers register is on some panel
# promtool comes from the Debian package `prometheus`, installed with apt when missing
# (as root). PROMTOOL=/path/to/promtool uses another binary.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

PROM_DIR=deploy/prometheus

# --- Tools -------------------------------------------------------------------------------
PROMTOOL="${PROMTOOL:-promtool}"
if ! command -v "$PROMTOOL" >/dev/null; then
  [[ "$PROMTOOL" == promtool ]] || die "PROMTOOL=$PROMTOOL is not an executable"
  # The package may try to start a prometheus service; in containers policy-rc.d stops it.
  apt_install prometheus
  command -v promtool >/dev/null || die "the prometheus package did not provide promtool"
fi
if ! command -v python3 >/dev/null; then
  apt_install python3
fi
info "$("$PROMTOOL" --version 2>&1 | head -n 1)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- Prometheus --------------------------------------------------------------------------
section "promtool check config $PROM_DIR/prometheus.yml"
"$PROMTOOL" check config "$PROM_DIR/prometheus.yml"

section "promtool check rules $PROM_DIR/alerts.yml"
"$PROMTOOL" check rules "$PROM_DIR/alerts.yml"

section "promtool test rules $PROM_DIR/alerts_test.yml"
"$PROMTOOL" test rules "$PROM_DIR/alerts_test.yml"

# --- Grafana dashboards and cross-checks ---------------------------------------------------
section "Grafana dashboards, metric names, runbook anchors"
python3 - "$work/dashboard_rules.yml" <<'PY'
"""Validates the dashboards and writes their queries as recording rules for promtool."""
import glob
import json
import re
import sys

out_path = sys.argv[1]
errors = []

# The datasource the provisioning file declares; dashboards must point at it by uid.
provisioning = open("deploy/grafana/provisioning/datasources/prometheus.yml").read()
m = re.search(r"^\s*uid:\s*([\w-]+)\s*$", provisioning, re.M)
if not m:
    sys.exit("deploy/grafana/provisioning/datasources/prometheus.yml declares no uid")
ds_uid = m.group(1)

# Grafana's template variables, replaced by a plausible value so the query parses.
GRAFANA_VARS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


exprs = []  # (where, expr)
panel_info = []  # (title, [expr...], {threshold values})
dashboards = sorted(glob.glob("deploy/grafana/dashboards/*.json"))
if not dashboards:
    errors.append("no dashboard under deploy/grafana/dashboards/")
uids = {}
for path in dashboards:
    try:
        dash = json.load(open(path))
    except ValueError as err:
        errors.append(f"{path}: invalid JSON: {err}")
        continue
    uid = dash.get("uid")
    if not uid or not dash.get("title"):
        errors.append(f"{path}: dashboard needs a uid and a title")
    elif uid in uids:
        errors.append(f"{path}: uid {uid} is also used by {uids[uid]}")
    uids[uid] = path
    ids = set()
    for p in panels(dash.get("panels", [])):
        where = f"{path}: panel {p.get('id')} ({p.get('title')!r})"
        if p.get("id") in ids:
            errors.append(f"{where}: duplicate panel id")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            errors.append(f"{where}: no gridPos")
        if p.get("type") == "row":
            continue
        for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
            if not isinstance(ds, dict) or ds.get("uid") != ds_uid or ds.get("type") != "prometheus":
                errors.append(f"{where}: datasource must be {{type: prometheus, uid: {ds_uid}}}, got {ds!r}")
        if not p.get("targets"):
            errors.append(f"{where}: no query")
        steps = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds", {}).get("steps", [])
        panel_info.append((p.get("title") or "", [t.get("expr") or "" for t in p.get("targets", [])],
                           {float(s["value"]) for s in steps if s.get("value") is not None}))
        for t in p.get("targets", []):
            if not t.get("expr"):
                errors.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            exprs.append((f"{where} target {t.get('refId')}", t["expr"]))

with open(out_path, "w") as out:
    out.write("groups:\n  - name: dashboard-queries\n    rules:\n")
    for i, (where, expr) in enumerate(exprs):
        out.write(f"      # {where}\n")
        out.write(f"      - record: dashboard:query_{i}\n")
        out.write(f"        expr: {json.dumps(GRAFANA_VARS.sub('5m', expr))}\n")
print(f"{len(dashboards)} dashboard(s), {len(exprs)} queries", file=sys.stderr)

# Metric names the alert rules and dashboards use must be registered by some server.
rules_text = open("deploy/prometheus/alerts.yml").read()
# The whole rule file without its comments; annotations are quoted, so they drop out below.
rules_code = re.sub(r"^\s*#.*$", "", rules_text, flags=re.M)
source = "".join(open(f).read() for f in glob.glob("crates/*/src/**/*.rs", recursive=True))
known = set(re.findall(r'"([a-z_][a-z0-9_]*)"', source)) | {"up"}
METRIC = re.compile(r"\b(?:grpc_server|inventory|orders?)_[a-z0-9_]+\b")
for where, expr in [("deploy/prometheus/alerts.yml", rules_code)] + exprs:
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, annotations
    for name in sorted(set(METRIC.findall(bare))):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in known and base not in known:
            errors.append(f"{where}: metric {name} is not registered by any server (crates/*/src)")

# Every alert has unit tests and a runbook section at its runbook_url anchor.
tests_text = open("deploy/prometheus/alerts_test.yml").read()
runbook = open("docs/runbook.md").read()


def slug(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


anchors = {slug(h) for h in re.findall(r"^#{1,6}\s+(.*)$", runbook, re.M)}
anchors |= set(re.findall(r'<a (?:name|id)="([^"]+)"', runbook))
alerts = re.findall(r"^\s*- alert:\s*(\S+)", rules_text, re.M)
urls = re.findall(r"^\s*runbook_url:\s*(\S+)", rules_text, re.M)
if len(urls) != len(alerts):
    errors.append(f"alerts.yml: {len(alerts)} alerts but {len(urls)} runbook_url annotations")
for url in urls:
    page, _, anchor = url.partition("#")
    if page != "docs/runbook.md" or anchor not in anchors:
        errors.append(f"alerts.yml: runbook_url {url} has no matching heading in docs/runbook.md")
for alert in alerts:
    tested = re.findall(rf"^\s*alertname:\s*{re.escape(alert)}\s*$", tests_text, re.M)
    if len(tested) < 2:
        errors.append(f"alerts_test.yml: {alert} needs firing and not-firing tests ({len(tested)} found)")
print(f"{len(alerts)} alerts, each with tests and a runbook section", file=sys.stderr)

# Dashboard and alerts in step: every alert has a panel titled "<alert>: ..." that queries every
# metric of the alert's expression and draws each of its non-zero thresholds (the numbers after
# >, <, >=, <=); and every metric the servers register (outside their tests) is on a panel.
def alert_exprs(text):
    """(alert, expr) of a rule file, from its `- alert:` and `expr:` lines (plain or block)."""
    out, lines, name, i = [], text.splitlines(), None, 0
    while i < len(lines):
        m = re.match(r"^\s*- alert:\s*(\S+)", lines[i])
        if m:
            name = m.group(1)
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if m and name:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in ("|", "|-", ">", ">-"):
                block = []
                while i + 1 < len(lines) and (not lines[i + 1].strip() or
                                              len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent):
                    i += 1
                    block.append(lines[i].strip())
                value = "\n".join(block)
            out.append((name, value.strip("'\"")))
            name = None
        i += 1
    return out


def code_only(rust):
    """Rust source without its test module (test metrics are registered there)."""
    return rust.split("#[cfg(test)]", 1)[0]


registered = set()
for f in glob.glob("crates/*/src/**/*.rs", recursive=True):
    registered |= set(re.findall(r'register_\w+\(\s*"([a-z_][a-z0-9_]*)"', code_only(open(f).read())))


def metrics_of(expr):
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"\b[a-z_][a-z0-9_]*\b", bare)}
    return {n for n in names if n in registered or n == "up"}


def thresholds_of(expr):
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return {float(v) for v in re.findall(r"(?<![=!<>])(?:>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\b", bare)
            if float(v) != 0}


rules = alert_exprs(rules_text)
if len(rules) != len(alerts):
    errors.append(f"alerts.yml: read the expression of {len(rules)} of {len(alerts)} alerts")
dashboard_metrics = set()
for _title, panel_exprs, _steps in panel_info:
    for e in panel_exprs:
        dashboard_metrics |= metrics_of(e)
for alert, expr in rules:
    panels_of = [(t, e, st) for t, e, st in panel_info if re.match(rf"{re.escape(alert)}\b", t)]
    if not panels_of:
        errors.append(f"dashboard: no panel for alert {alert} (title it '{alert}: ...', query its "
                      f"metrics {sorted(metrics_of(expr))})")
        continue
    title, panel_exprs, steps = panels_of[0]
    shown = set().union(*(metrics_of(e) for e in panel_exprs))
    missing = metrics_of(expr) - shown
    if missing:
        errors.append(f"dashboard: panel {title!r} does not query {sorted(missing)} of alert {alert}")
    for value in sorted(thresholds_of(expr) - steps):
        errors.append(f"dashboard: panel {title!r} draws no threshold at {value:g} (alert {alert}); "
                      f"its thresholds: {sorted(steps)}")
for name in sorted(registered - dashboard_metrics):
    errors.append(f"dashboard: metric {name} (registered in crates/*/src) is on no panel")
if not errors:
    print(f"{len(rules)} alerts, each with a dashboard panel of its metrics and thresholds; "
          f"{len(registered)} registered metrics, all on the dashboard", file=sys.stderr)

if errors:
    sys.exit("\n".join(errors))
PY

"$PROMTOOL" check rules "$work/dashboard_rules.yml"
