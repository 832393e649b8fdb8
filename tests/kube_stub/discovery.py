"""What the stub says about itself: `/version`, API discovery and the OpenAPI v3 documents.

All of it is derived from the resource table (resources.py); clients (kubectl, client-go,
Helm) read these before they touch any object.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tests.kube_stub.resources import ALL_VERBS, KUBE_VERSION, Resource


def discovery(path: str, port: int, served: tuple[Resource, ...]) -> dict[str, Any] | None:
    if path == "/version":
        return KUBE_VERSION
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}
            ],
        }
    groups: dict[str, list[Resource]] = {}
    for r in served:
        groups.setdefault(r.group_version, []).append(r)
    if path == "/apis":
        names = sorted({r.group for r in served if r.group}, key=lambda g: (g != "apps", g))
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group(g, served) for g in names],
        }
    parts = [p for p in path.split("/") if p]
    if (
        parts
        and parts[0] == "apis"
        and len(parts) == 2
        and any(r.group == parts[1] for r in served)
    ):
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], served)}
    gv = (
        "v1"
        if parts == ["api", "v1"]
        else "/".join(parts[1:])
        if parts[:1] == ["apis"] and len(parts) == 3
        else None
    )
    if gv is None or gv not in groups:
        return None
    resources: list[dict[str, Any]] = []
    for r in groups[gv]:
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.kind.lower(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ALL_VERBS,
            "storageVersionHash": base64.b64encode(
                hashlib.sha256(r.qualified.encode()).digest()[:8]
            ).decode(),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.kind in (
            "Deployment",
            "DaemonSet",
            "StatefulSet",
            "Pod",
            "Service",
            "Job",
            "CronJob",
            "ReplicaSet",
        ):
            entry["categories"] = ["all"]
        resources.append(entry)
        if r.has_status:
            resources.append(
                {
                    "name": f"{r.plural}/status",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if r.kind == "Pod":
            resources.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def _group(group: str, served: tuple[Resource, ...]) -> dict[str, Any]:
    """One API group as discovery lists it: its versions (v1 first), the first preferred."""
    versions = sorted({r.version for r in served if r.group == group}, key=lambda v: (v != "v1", v))
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def openapi_v3(path: str, served: tuple[Resource, ...]) -> dict[str, Any] | None:
    """`/openapi/v3` and its per group-version documents, paths and operations only.

    client-go reads these to learn whether PATCH accepts `fieldValidation`; with that it
    leaves schema validation to the server instead of downloading every schema.
    """
    by_gv: dict[str, list[Resource]] = {}
    for r in served:
        prefix = "api/v1" if not r.group else f"apis/{r.group_version}"
        by_gv.setdefault(prefix, []).append(r)
    if path == "/openapi/v3":
        return {
            "paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_digest(gv)}"} for gv in by_gv
            }
        }
    gv = path.removeprefix("/openapi/v3/")
    if gv not in by_gv:
        return None
    paths: dict[str, Any] = {}
    for r in by_gv[gv]:
        scope = "/namespaces/{namespace}" if r.namespaced else ""
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        params = [
            {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for p in ("dryRun", "fieldManager", "fieldValidation", "force")
        ]
        op_id = f"{r.group.split('.')[0]}{r.version}{r.kind}"
        paths[f"/{gv}{scope}/{r.plural}/{{name}}"] = {
            verb: {
                "operationId": f"{verb}{op_id}",
                "parameters": params if verb != "get" else [],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            }
            for verb in ("get", "put", "patch", "delete")
        }
        paths[f"/{gv}{scope}/{r.plural}"] = {
            verb: {
                "operationId": f"{verb}{op_id}",
                "parameters": params if verb == "post" else [],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            }
            for verb, action in (("get", "list"), ("post", "post"))
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _digest(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:128].upper()
