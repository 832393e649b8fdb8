"""Applying custom objects to a member's cluster: create what is missing, replace what differs.

The objects are custom resources (such as system-upgrade-controller's Plans, see
hubfleet.k3s.upgrade_plan) and CustomResourceDefinitions (cert-manager's, applied before the
support release: `apply_crds`), written through the CustomObjectsApi of a member's client
(`hubfleet.kube.client.member_api`); their plural and scope come from the API server's discovery.
As in hubfleet.kube.client, `kubernetes` is imported inside the functions that need it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hubfleet.errors import ClusterError
from hubfleet.kube.client import api_error

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@dataclass(frozen=True)
class ApplyOutcome:
    """What applying one object did: ok (unchanged), or changed (created or replaced)."""

    kind: str
    namespace: str
    name: str
    state: Literal["ok", "changed"]
    action: Literal["unchanged", "created", "replaced"]

    def __str__(self) -> str:
        detail = "" if self.action == "unchanged" else f" ({self.action})"
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}: {self.state}{detail}"


_NOT_CONTENT = ("apiVersion", "kind", "metadata", "status")


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in _NOT_CONTENT}


def _differs(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether `live` lacks what `desired` says: its content (spec, ...) or one of its
    labels or annotations (others may add their own; those are not a difference)."""
    if _content(desired) != _content(live):
        return True
    for key in ("labels", "annotations"):
        wanted = desired.get("metadata", {}).get(key) or {}
        have = live.get("metadata", {}).get(key) or {}
        if any(have.get(k) != v for k, v in wanted.items()):
            return True
    return False


def _replacement(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(dict(desired))
    meta = body.setdefault("metadata", {})
    live_meta = live.get("metadata", {})
    for key in ("labels", "annotations"):
        merged = {**(live_meta.get(key) or {}), **(meta.get(key) or {})}
        if merged:
            meta[key] = merged
    meta["resourceVersion"] = live_meta.get("resourceVersion")
    return body


def _plurals(api: ApiClient, group_version: str, where: str) -> dict[str, tuple[str, bool]]:
    """kind -> (plural, namespaced) for one group/version, from discovery."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    group, _, version = group_version.rpartition("/")
    try:
        listing = client.CustomObjectsApi(api).get_api_resources(group, version)
    except ApiException as err:
        if err.status == 404:
            raise ClusterError(
                f"{where}: the cluster does not serve {group_version}; install its "
                "CustomResourceDefinition first (for Plans: system-upgrade-controller's crd.yaml)"
            ) from None
        raise api_error(where, f"reading {group_version} discovery", err) from None
    return {
        r.kind: (r.name, bool(r.namespaced)) for r in listing.resources or [] if "/" not in r.name
    }


def apply_custom_objects(
    api: ApiClient,
    objects: Iterable[Mapping[str, Any]],
    where: str = "cluster",
    missing_namespace_hint: Mapping[str, str] | None = None,
) -> list[ApplyOutcome]:
    """Create each custom object that is missing, replace each that differs, leave the rest.

    Idempotent: applying the same objects again reports every one `ok`. A replace carries the
    live resourceVersion, so a concurrent change is a conflict, not lost. `where` names the
    member in messages.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(api)
    discovered: dict[str, dict[str, tuple[str, bool]]] = {}
    outcomes = []
    for obj in objects:
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        meta = obj.get("metadata", {})
        name, namespace = str(meta["name"]), str(meta.get("namespace") or "default")
        if api_version not in discovered:
            discovered[api_version] = _plurals(api, api_version, where)
        if kind not in discovered[api_version]:
            raise ClusterError(f"{where}: {api_version} has no kind {kind}")
        plural, namespaced = discovered[api_version][kind]
        group, _, version = api_version.rpartition("/")
        if not namespaced:
            namespace = ""
        shown = f"{kind} {namespace}/{name}" if namespaced else f"{kind} {name}"
        at = (group, version, namespace, plural) if namespaced else (group, version, plural)
        get, create, replace = (
            (
                custom.get_namespaced_custom_object,
                custom.create_namespaced_custom_object,
                custom.replace_namespaced_custom_object,
            )
            if namespaced
            else (
                custom.get_cluster_custom_object,
                custom.create_cluster_custom_object,
                custom.replace_cluster_custom_object,
            )
        )
        try:
            live = get(*at, name)
        except ApiException as err:
            if err.status != 404:
                raise api_error(where, f"reading {shown}", err) from None
            live = None
        try:
            if live is None:
                create(*at, copy.deepcopy(dict(obj)))
                outcomes.append(ApplyOutcome(kind, namespace, name, "changed", "created"))
            elif _differs(obj, live):
                replace(*at, name, _replacement(obj, live))
                outcomes.append(ApplyOutcome(kind, namespace, name, "changed", "replaced"))
            else:
                outcomes.append(ApplyOutcome(kind, namespace, name, "ok", "unchanged"))
        except ApiException as err:
            if err.status == 404:
                hint = (missing_namespace_hint or {}).get(namespace)
                raise ClusterError(
                    f"{where}: namespace {namespace} does not exist" + (f"; {hint}" if hint else "")
                ) from None
            if err.status == 409:
                raise ClusterError(
                    f"{where}: {shown} was changed by someone else meanwhile; run again"
                ) from None
            raise api_error(where, f"writing {shown}", err) from None
    return outcomes


def wait_established(
    api: ApiClient, names: Iterable[str], timeout_s: float, where: str = "cluster"
) -> None:
    """Wait until each CustomResourceDefinition is Established (the API server serves its
    kinds): objects of those kinds can be created only then."""
    import time

    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(api)
    waiting = list(names)
    deadline = time.monotonic() + timeout_s
    while waiting:
        name = waiting[0]
        try:
            crd = custom.get_cluster_custom_object(
                "apiextensions.k8s.io", "v1", "customresourcedefinitions", name
            )
        except ApiException as err:
            raise api_error(where, f"reading CustomResourceDefinition {name}", err) from None
        conditions = (crd.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            waiting.pop(0)
            continue
        if time.monotonic() >= deadline:
            raise ClusterError(
                f"{where}: CustomResourceDefinition {name} is not Established after "
                f"{timeout_s:.0f}s; see kubectl describe crd {name}"
            )
        time.sleep(0.2)
