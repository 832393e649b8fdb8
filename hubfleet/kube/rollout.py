"""When a workload has rolled out: the rules of `kubectl rollout status`, as pure functions.

The records of a rollout wait (`Workload`, `RolloutState`, `RolloutNotReadyError`), which
workloads a rendered manifest holds, and whether a Deployment, DaemonSet or StatefulSet
object, as the API server returns it, is ready. No I/O: `hubfleet.kube.client` reads the objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from hubfleet.errors import RolloutError

ROLLOUT_KINDS = ("Deployment", "DaemonSet", "StatefulSet")


class Workload(NamedTuple):
    """A Deployment, DaemonSet or StatefulSet named in a manifest."""

    kind: str
    name: str
    namespace: str | None  # None: the manifest leaves it to the release namespace


@dataclass(frozen=True)
class RolloutState:
    """Where one workload's rollout stood when last looked at."""

    kind: str
    name: str
    namespace: str
    ready: bool
    message: str  # what `kubectl rollout status` would say, in fewer words
    failed: bool = False  # waiting longer cannot help (e.g. progress deadline exceeded)
    elapsed_s: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.message}"


class RolloutNotReadyError(RolloutError):
    """Some workloads did not become ready; `states` has every workload's last state."""

    def __init__(self, message: str, states: Sequence[RolloutState]) -> None:
        super().__init__(message)
        self.states: tuple[RolloutState, ...] = tuple(states)


def workloads_in_manifest(
    objects: Iterable[Mapping[str, Any] | None], default_namespace: str | None = None
) -> list[Workload]:
    """The Deployments, DaemonSets and StatefulSets among parsed manifest documents, in order;
    Helm's hooks left out (Helm runs them around the upgrade and may delete them after, as
    JupyterHub's hook-image-puller)."""
    found: dict[Workload, None] = {}

    def visit(doc: Mapping[str, Any] | None) -> None:
        if not isinstance(doc, Mapping):
            return
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                visit(item)
            return
        meta = doc.get("metadata")
        annotations = (meta.get("annotations") if isinstance(meta, Mapping) else None) or {}
        if "helm.sh/hook" in annotations:
            return
        is_workload = doc.get("kind") in ROLLOUT_KINDS
        if is_workload and str(doc.get("apiVersion", "")).startswith("apps/"):
            if not (isinstance(meta, Mapping) and meta.get("name")):
                return
            namespace = meta.get("namespace") or default_namespace
            found[Workload(str(doc["kind"]), str(meta["name"]), namespace)] = None

    for doc in objects:
        visit(doc)
    return list(found)


def rollout_status(obj: Mapping[str, Any]) -> tuple[bool, bool, str]:
    """(ready, failed, message) of a workload object, by the rules of `kubectl rollout status`."""
    kind = obj.get("kind")
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    generation = int(meta.get("generation", 0))
    observed = int(status.get("observedGeneration", 0))
    if observed == 0 or generation > observed:
        return False, False, f"waiting for the controller to observe generation {generation}"
    replicas = int(spec.get("replicas", 1))
    if kind == "Deployment":
        for cond in status.get("conditions") or []:
            if (
                cond.get("type") == "Progressing"
                and cond.get("reason") == "ProgressDeadlineExceeded"
            ):
                deadline = spec.get("progressDeadlineSeconds", 600)
                return False, True, f"exceeded its progress deadline ({deadline}s)"
        updated = int(status.get("updatedReplicas", 0))
        available = int(status.get("availableReplicas", 0))
        if updated < replicas:
            return False, False, f"{updated} of {replicas} replicas updated"
        if int(status.get("replicas", 0)) > updated:
            return (
                False,
                False,
                f"{int(status['replicas']) - updated} old replicas pending termination",
            )
        if available < updated:
            return False, False, f"{available} of {updated} replicas ready"
        return True, False, f"{available} of {replicas} replicas ready"
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        # kubectl refuses to judge these; waiting would only hang the deploy
        return True, False, f"update strategy {strategy.get('type')}: not waited for"
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled", 0))
        updated = int(status.get("updatedNumberScheduled", 0))
        available = int(status.get("numberAvailable", 0))
        if updated < desired:
            return False, False, f"{updated} of {desired} pods updated"
        if available < desired:
            return False, False, f"{available} of {desired} pods ready"
        return True, False, f"{available} of {desired} pods ready"
    if kind == "StatefulSet":
        ready = int(status.get("readyReplicas", 0))
        updated = int(status.get("updatedReplicas", 0))
        if ready < replicas:
            return False, False, f"{ready} of {replicas} replicas ready"
        partition = (strategy.get("rollingUpdate") or {}).get("partition")
        if partition is not None:
            if updated < replicas - int(partition):
                return False, False, f"{updated} of {replicas - int(partition)} pods updated"
            return True, False, f"{ready} of {replicas} replicas ready"
        if status.get("updateRevision") != status.get("currentRevision"):
            return False, False, f"{updated} pods at revision {status.get('updateRevision')}"
        return True, False, f"{ready} of {replicas} replicas ready"
    raise ValueError(f"not a workload kind kubectl rollout status knows: {kind}")
