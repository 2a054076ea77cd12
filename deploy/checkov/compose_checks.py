"""checkov policies for docker-compose.yml (checkov ships none for Compose files).

Loaded by scripts/test.d/40-kubernetes.sh: `checkov --framework yaml --external-checks-dir
deploy/checkov -f docker-compose.yml`. They hold the services built from this repository's
Dockerfile (those with `build:`) to what deploy/kubernetes asks of the same images: a read-only
root filesystem, no capabilities, no privilege escalation. Every service: host ports on
loopback only. A skip is a comment in docker-compose.yml inside the service:
`# checkov:skip=CKV_OICOMPOSE_N: reason`.
"""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.yaml_doc.base_yaml_check import BaseYamlCheck
from checkov.yaml_doc.enums import BlockType


class _ServiceCheck(BaseYamlCheck):
    def __init__(self, name: str, id: str, built_only: bool) -> None:
        super().__init__(
            name=name,
            id=id,
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_entities=["services"],
            block_type=BlockType.ARRAY,
        )
        self.built_only = built_only

    def scan_entity_conf(self, conf: dict[str, Any], entity_type: str) -> CheckResult:
        if not isinstance(conf, dict) or "image" not in conf and "build" not in conf:
            return CheckResult.UNKNOWN  # not a service (a file that is not a compose file)
        if self.built_only and "build" not in conf:
            return CheckResult.PASSED  # a third-party image: its own hardening is out of scope
        return CheckResult.PASSED if self.holds(conf) else CheckResult.FAILED

    def holds(self, conf: dict[str, Any]) -> bool:
        raise NotImplementedError


class ReadOnlyRoot(_ServiceCheck):
    def __init__(self) -> None:
        super().__init__("Services built here run with a read-only root filesystem (read_only: true)",
                         "CKV_OICOMPOSE_1", built_only=True)

    def holds(self, conf: dict[str, Any]) -> bool:
        return conf.get("read_only") is True


class NoCapabilities(_ServiceCheck):
    def __init__(self) -> None:
        super().__init__("Services built here drop every capability (cap_drop: [ALL])",
                         "CKV_OICOMPOSE_2", built_only=True)

    def holds(self, conf: dict[str, Any]) -> bool:
        return "ALL" in (conf.get("cap_drop") or []) and not conf.get("cap_add") \
            and not conf.get("privileged")


class NoNewPrivileges(_ServiceCheck):
    def __init__(self) -> None:
        super().__init__("Services built here cannot gain privileges (security_opt: no-new-privileges:true)",
                         "CKV_OICOMPOSE_3", built_only=True)

    def holds(self, conf: dict[str, Any]) -> bool:
        return "no-new-privileges:true" in (conf.get("security_opt") or [])


class LoopbackPorts(_ServiceCheck):
    def __init__(self) -> None:
        super().__init__("Published ports bind to 127.0.0.1 only (a laptop stack, open admin RPCs)",
                         "CKV_OICOMPOSE_4", built_only=False)

    def holds(self, conf: dict[str, Any]) -> bool:
        for port in conf.get("ports") or []:
            if isinstance(port, dict):
                if port.get("host_ip") != "127.0.0.1":
                    return False
            elif not str(port).startswith("127.0.0.1:"):
                return False
        return True


read_only_root = ReadOnlyRoot()
no_capabilities = NoCapabilities()
no_new_privileges = NoNewPrivileges()
loopback_ports = LoopbackPorts()
