#!/usr/bin/env python3
"""Reads docker-compose files without a container engine: compose's merge of override files,
and the cross-checks the Compose specification cannot make (scripts/test.d/20-compose.sh).

    compose.py merge OUT BASE [OVERRIDE...]   writes BASE with the overrides merged onto it, as
                                              `docker compose -f BASE -f OVERRIDE...` merges
                                              them, to OUT as JSON (a YAML subset)
    compose.py check FILE [LABEL]             the cross-checks of one (merged) file; exit 1
                                              with every finding on stderr

Run from the repository root (relative bind-mount sources start there), with a Python that
has ruamel.yaml (the check-jsonschema virtualenv of 20-compose.sh has it).
"""
import json
import os
import re
import shutil
import subprocess
import sys

from ruamel.yaml import YAML


def load(path):
    with open(path, encoding="utf-8") as f:
        return YAML(typ="safe").load(f) or {}


# --- Merge (https://docs.docker.com/reference/compose-file/merge/) -------------------------
KEYED_LISTS = {"environment", "labels", "extra_hosts", "args", "annotations", "sysctls"}
BY_TARGET = {"volumes", "devices", "secrets", "configs"}
REPLACED = {"command", "entrypoint", "test"}


def as_mapping(value):
    if isinstance(value, dict):
        return dict(value)
    out = {}
    for item in value or []:
        key, sep, val = str(item).partition("=")
        out[key] = val if sep else None
    return out


def mount_target(item):
    if isinstance(item, dict):
        return item.get("target") or item.get("source")
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def merge(base, over, key=None, in_service=False):
    if key in REPLACED:
        return over
    if key in KEYED_LISTS or (key == "depends_on" and (isinstance(base, list) or isinstance(over, list))):
        if key == "depends_on":
            base = base if isinstance(base, dict) else {s: {"condition": "service_started"} for s in base or []}
            over = over if isinstance(over, dict) else {s: {"condition": "service_started"} for s in over or []}
        else:
            base, over = as_mapping(base), as_mapping(over)
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, k, in_service or key == "services") if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        if key in BY_TARGET and in_service:
            out = {mount_target(i): i for i in base}
            out.update({mount_target(i): i for i in over})
            return list(out.values())
        return base + [i for i in over if i not in base]
    return over


# --- Cross-checks ------------------------------------------------------------------------------
BINARIES = {"inventory-service", "order-service", "product-standin", "payment-standin",
            "user-standin"}
REQUIRED_ENV = {
    "inventory-service": {"DATABASE_URL", "GRPC_ADDR", "METRICS_ADDR", "LOG_FORMAT", "RUST_LOG"},
    "order-service": {"DATABASE_URL", "GRPC_ADDR", "METRICS_ADDR", "INVENTORY_SERVICE_URL",
                      "PRODUCT_SERVICE_URL", "PAYMENT_SERVICE_URL", "LOG_FORMAT", "RUST_LOG"},
    "product-standin": {"GRPC_ADDR", "LOG_FORMAT"},
    "payment-standin": {"GRPC_ADDR", "LOG_FORMAT"},
}
# Settings naming a file the server reads at start.
FILE_SETTINGS = ("TLS_CERT_PATH", "TLS_KEY_PATH", "TLS_CLIENT_CA_PATH", "PEER_TLS_CA_PATH",
                 "PEER_TLS_CERT_PATH", "PEER_TLS_KEY_PATH", "ADMIN_TOKEN_FILE",
                 "AUTHZ_POLICY_FILE", "CATALOG_PATH", "USERS_PATH")


def env_of(service):
    return as_mapping(service.get("environment") or {})


def bind_mounts(service):
    """(host source, container target) of the service's bind mounts."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type", "volume") == "bind":
                yield volume.get("source", ""), volume.get("target", "")
        else:
            parts = volume.split(":")
            if len(parts) > 1 and parts[0].startswith((".", "/")):
                yield parts[0], parts[1]


def host_path(service, path):
    """The host file behind a container path, through the service's bind mounts (or None)."""
    for source, target in bind_mounts(service):
        target = target.rstrip("/")
        if path == target or path.startswith(target + "/"):
            return os.path.normpath(source + path[len(target):])
    return None


def cert_names(path):
    """DNS and IP names of a PEM certificate's subjectAltName (openssl; None without it)."""
    if not shutil.which("openssl"):
        return None
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=False).stdout
    return set(re.findall(r"(?:DNS|IP Address):([^,\s]+)", out))


def check(path, label):
    doc = load(path)
    services = doc.get("services") or {}
    errors = []
    known_env = set()
    for root, _dirs, files in os.walk("crates"):
        for file in files:
            if file.endswith(".rs"):
                with open(os.path.join(root, file), encoding="utf-8") as f:
                    known_env.update(re.findall(r'\benv\s*=\s*"([A-Z0-9_]+)"', f.read()))
    # The OpenTelemetry SDK's standard variables, read by common::telemetry (not clap settings).
    known_env.update({"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                      "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"})

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
        args = as_mapping(args)
        binary = args.get("BIN")
        if binary not in BINARIES:
            errors.append(f"{where}.build.args.BIN: {binary!r} is not one of {sorted(BINARIES)}")
            continue
        env = env_of(service)
        for key in sorted(set(env) - known_env):
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
        # Files named by settings: under a bind mount whose source holds them.
        for key in FILE_SETTINGS:
            value = env.get(key)
            if value and str(value).startswith("/"):
                host = host_path(service, str(value))
                if host is None:
                    errors.append(f"{where}.environment.{key}: {value} is under no bind mount")
                elif not os.path.isfile(host):
                    errors.append(f"{where}.environment.{key}: {value} is {host} on the host, "
                                  "which does not exist")

    # TLS: on every gRPC server as soon as one has it.
    tls = any(env_of(s).get("TLS_CERT_PATH") for s in services.values())
    servers = {n for n, s in services.items() if s.get("build") and env_of(s).get("GRPC_ADDR")}
    if tls:
        for name in sorted(servers):
            env = env_of(services[name])
            for key in ("TLS_CERT_PATH", "TLS_KEY_PATH"):
                if not env.get(key):
                    errors.append(f"services.{name}.environment: {key} is not set (the other servers serve TLS)")
        for name in ("inventory", "order"):
            env = env_of(services.get(name) or {})
            if name in services and not (env.get("ADMIN_TOKEN") or env.get("ADMIN_TOKEN_FILE")):
                errors.append(f"services.{name}.environment: no ADMIN_TOKEN or ADMIN_TOKEN_FILE")

    # Peer URLs point at services of this file, on the port they listen on, over TLS when the
    # peer serves it, to a certificate that names the URL's host.
    for name, service in services.items():
        env = env_of(service)
        for key, value in env.items():
            m = re.match(r"^(https?)://([a-z0-9-]+):(\d+)$", str(value)) if key.endswith("_URL") else None
            if not m:
                continue
            scheme, peer, port = m.groups()
            where = f"services.{name}.environment.{key}"
            if peer not in services:
                errors.append(f"{where}: no service {peer!r}")
                continue
            peer_env = env_of(services[peer])
            if not str(peer_env.get("GRPC_ADDR", "")).endswith(f":{port}"):
                errors.append(f"{where}: {peer} does not listen on {port}")
            peer_tls = bool(peer_env.get("TLS_CERT_PATH"))
            if peer_tls != (scheme == "https"):
                errors.append(f"{where}: {scheme}:// but {peer} {'serves' if peer_tls else 'does not serve'} TLS")
            if not peer_tls or scheme != "https":
                continue
            if not env.get("PEER_TLS_CA_PATH"):
                errors.append(f"services.{name}.environment: PEER_TLS_CA_PATH is not set for {key}")
            if peer_env.get("TLS_CLIENT_CA_PATH") and not (
                    env.get("PEER_TLS_CERT_PATH") and env.get("PEER_TLS_KEY_PATH")):
                errors.append(f"services.{name}.environment: {peer} requires a client certificate "
                              "(PEER_TLS_CERT_PATH, PEER_TLS_KEY_PATH)")
            cert = host_path(services[peer], str(peer_env["TLS_CERT_PATH"]))
            names = cert_names(cert) if cert and os.path.isfile(cert) else None
            if names is not None and peer not in names:
                errors.append(f"{where}: {peer}'s certificate {cert} does not name {peer} "
                              f"(names: {sorted(names)})")

    if errors:
        print(f"{label}:", *errors, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"{label}: {len(services)} services, cross-checks ok{', TLS on every gRPC hop' if tls else ''}")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "merge":
        merged = load(sys.argv[3])
        for override in sys.argv[4:]:
            merged = merge(merged, load(override))
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            json.dump(merged, f, indent=2)
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else sys.argv[2])
    else:
        sys.exit(__doc__)
