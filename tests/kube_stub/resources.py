"""What the stub serves: the version it claims, its resource table, and the shapes it shares.

The resources are the ones a small cluster serves (core, apps, batch, networking, RBAC, ...)
plus one custom resource, system-upgrade-controller's `Plan`; and, once a
CustomResourceDefinition is stored, the kinds it defines (store.defined_resources). Errors become `kind: Status`
responses (ApiError); timestamps and conditions are written as the API server writes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1",
    "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
    "gitTreeState": "clean",
    "buildDate": "2025-05-15T08:19:08Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}

READ_VERBS = ["get", "list", "watch"]
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    """One REST resource the stub serves, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    has_status: bool = False  # a `status` subresource, and a generation the controller observes

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`deployments.apps`, as error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), has_status=False
    ),
    Resource("", "v1", "nodes", "Node", namespaced=False, short_names=("no",)),
    Resource(
        "", "v1", "persistentvolumes", "PersistentVolume", namespaced=False, short_names=("pv",)
    ),
    Resource("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "services", "Service", short_names=("svc",)),
    Resource("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
    Resource("", "v1", "pods", "Pod", short_names=("po",)),
    Resource("", "v1", "events", "Event", short_names=("ev",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",)),
    Resource("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",)),
    Resource("", "v1", "limitranges", "LimitRange", short_names=("limits",)),
    Resource("apps", "v1", "deployments", "Deployment", short_names=("deploy",), has_status=True),
    Resource("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), has_status=True),
    Resource("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",), has_status=True),
    Resource("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), has_status=True),
    Resource("apps", "v1", "controllerrevisions", "ControllerRevision"),
    Resource("batch", "v1", "jobs", "Job", has_status=True),
    Resource("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), has_status=True),
    Resource(
        "networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), has_status=True
    ),
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    Resource(
        "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)
    ),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    Resource(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        has_status=True,
    ),
    Resource(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        namespaced=False,
        short_names=("pc",),
    ),
    Resource(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        namespaced=False,
        short_names=("sc",),
    ),
    Resource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        namespaced=False,
    ),
    Resource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        namespaced=False,
    ),
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        has_status=True,
    ),
    # a custom resource, as a cluster with system-upgrade-controller's crd.yaml applied serves
    # it (k3s automatic upgrades): namespaced, with a status subresource the controller writes
    Resource("upgrade.cattle.io", "v1", "plans", "Plan", has_status=True),
)

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job")


class ApiError(Exception):
    """Becomes a `kind: Status` response."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(res: Resource, name: str) -> ApiError:
    details = (
        {"name": name, "group": res.group, "kind": res.plural}
        if res.group
        else {
            "name": name,
            "kind": res.plural,
        }
    )
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', details)


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type: str, status: str, reason: str | None, message: str | None, when: str
) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": type, "status": status, "lastTransitionTime": when}
    if type in ("Available", "Progressing"):
        cond["lastUpdateTime"] = when
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond
