"""The defaulting a real API server does on a write, where rollout checks depend on it."""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping
from typing import Any

from tests.kube_stub.resources import Resource


def _setdefaults(target: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(target[key], dict):
            _setdefaults(target[key], value)


def apply_defaults(res: Resource, obj: dict[str, Any]) -> None:
    """The defaulting a real API server does that rollout checks depend on."""
    spec = obj.get("spec")
    if res.kind == "Namespace":
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = (
            obj["metadata"]["name"]
        )
        _setdefaults(obj, {"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    elif res.kind == "Secret":
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        obj.setdefault("type", "Opaque")
    if not isinstance(spec, dict):
        return
    if res.kind == "Deployment":
        _setdefaults(
            spec,
            {
                "replicas": 1,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                }
                if spec.get("strategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
                else {},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
        )
    elif res.kind == "StatefulSet":
        _setdefaults(
            spec,
            {
                "replicas": 1,
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
                if spec.get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
                else {},
                "revisionHistoryLimit": 10,
            },
        )
    elif res.kind == "DaemonSet":
        _setdefaults(
            spec,
            {
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
                }
                if spec.get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
                else {},
                "revisionHistoryLimit": 10,
            },
        )
    elif res.kind == "Service":
        if spec.get("type", "ClusterIP") != "ExternalName" and "clusterIP" not in spec:
            octet = int(hashlib.sha256(obj["metadata"]["name"].encode()).hexdigest()[:4], 16)
            spec["clusterIP"] = f"10.43.{octet // 256}.{octet % 256}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        _setdefaults(spec, {"type": "ClusterIP", "sessionAffinity": "None"})
        for port in spec.get("ports", []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
