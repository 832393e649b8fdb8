"""The stub's only controller: a rollout simulator for Deployments, DaemonSets, StatefulSets, Jobs.

After a create or spec change of a workload it writes the status a real controller writes,
"in progress" at once and "ready" after a per-workload delay (or never, to test timeouts); a
Deployment gets one ReplicaSet per pod template, as Helm's wait looks for. A workload whose pod
template uses a broken image never becomes ready and gets a pod in CrashLoopBackOff.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.kube_stub.pods import PodRecords
from tests.kube_stub.resources import WORKLOAD_KINDS, Resource, condition, now_rfc3339


@dataclass
class Rollout:
    generation: int
    ready_at: float | None  # None: never


class RolloutController(PodRecords):
    """The store and its pods, with workloads rolled out as the controllers would."""

    def __init__(self) -> None:
        super().__init__()
        self.node_count = 1
        # seconds from a workload's create/spec change until it is ready; None: never ready
        self.default_ready_after_s: float | None = 0.0
        self._ready_after: dict[tuple[str, str, str], float | None] = {}
        # workloads whose pod template uses one of these never become ready, and get a pod
        # in CrashLoopBackOff (with events and a log) as a real cluster would show
        self.broken_images: set[str] = set()

    # --- test helpers: the rollout controller -----------------------------------------------

    def ready_after(
        self, kind: str, name: str, seconds: float | None, namespace: str = "default"
    ) -> None:
        """Make a workload ready `seconds` after its next (or current) rollout; None: never."""
        with self._lock:
            self._ready_after[(kind, namespace, name)] = seconds
            key = self._key(self.resource(kind), namespace, name)
            rollout = self._rollouts.get(key)
            if rollout is not None and key in self._objects:
                rollout.ready_at = None if seconds is None else time.monotonic() + seconds

    def _delay_for(
        self, res: Resource, namespace: str, name: str, obj: Mapping[str, Any] | None = None
    ) -> float | None:
        if obj is not None and _images(obj) & self.broken_images:
            return None
        return self._ready_after.get((res.kind, namespace, name), self.default_ready_after_s)

    def _after_write(self, res: Resource, namespace: str, obj: dict[str, Any]) -> None:
        """The controllers' side effects of a new generation: ReplicaSets, crashing pods."""
        if res.kind == "Deployment":
            self._sync_replicasets(namespace, obj)
        uid = obj["metadata"]["uid"]
        pods = self._by_kind["Pod"]
        for key, pod in list(self._objects.items()):  # the previous generation's pods go
            owners = pod["metadata"].get("ownerReferences", [])
            if key[2] == "pods" and any(o.get("uid") == uid for o in owners):
                self._delete(pods, key[3], key[4])
        broken = sorted(_images(obj) & self.broken_images)
        if res.kind in WORKLOAD_KINDS and broken:
            name = obj["metadata"]["name"]
            pod_name = f"{name}-{_template_hash(obj)[:5]}-{uuid.uuid4().hex[:5]}"
            labels = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels")
            container = next(
                c["name"]
                for c in obj["spec"]["template"]["spec"]["containers"]
                if c.get("image") == broken[0]
            )
            self.add_failing_pod(
                pod_name,
                namespace=namespace,
                labels=labels,
                container=container,
                logs=f"starting {broken[0]}\nfatal: the stub was told this image is broken\n",
            )
            owner = {"apiVersion": res.group_version, "kind": res.kind, "name": name, "uid": uid}
            self._objects[self._key(pods, namespace, pod_name)]["metadata"]["ownerReferences"] = [
                dict(owner, controller=True)
            ]

    def _start_rollout(
        self, res: Resource, namespace: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """What the controllers do when they see a new generation: status 'in progress'."""
        key = self._key(res, namespace, obj["metadata"]["name"])
        delay = self._delay_for(res, namespace, obj["metadata"]["name"], obj)
        gen = int(obj["metadata"].get("generation", 1))
        self._rollouts[key] = Rollout(gen, None if delay is None else time.monotonic() + delay)
        old_status = (old or {}).get("status", {})
        obj["status"] = self._progressing_status(res, obj, old_status)
        if delay is not None and delay <= 0:
            obj["status"] = self._ready_status(res, obj)
            del self._rollouts[key]

    def _tick(self) -> None:
        """Finish the rollouts whose time has come (called on every request and helper)."""
        now = time.monotonic()
        for key, rollout in list(self._rollouts.items()):
            obj = self._objects.get(key)
            if obj is None:
                del self._rollouts[key]
                continue
            if rollout.ready_at is not None and now >= rollout.ready_at:
                res = self.resource(obj["kind"])
                obj["status"] = self._ready_status(res, obj)
                del self._rollouts[key]
                self._bump(res, key[3], obj, "MODIFIED")
                if res.kind == "Deployment":
                    self._sync_replicasets(key[3], obj)

    def _sync_replicasets(self, namespace: str, deployment: dict[str, Any]) -> None:
        """What the Deployment controller keeps: one ReplicaSet per pod template, old ones at 0.

        Helm's `legacy` wait finds the Deployment's new ReplicaSet by owner and template.
        """
        rs_res = self._by_kind["ReplicaSet"]
        uid = deployment["metadata"]["uid"]
        ready = (
            self._key(self._by_kind["Deployment"], namespace, deployment["metadata"]["name"])
            not in self._rollouts
        )
        spec = deployment.get("spec", {})
        replicas = int(spec.get("replicas", 1))
        name = _replicaset(deployment)
        pod_hash = name.rsplit("-", 1)[1]
        for key, rs in list(self._objects.items()):
            owned = key[2] == "replicasets" and key[3] == namespace and key[4] != name
            owners = rs["metadata"].get("ownerReferences", [])
            if not (owned and any(o.get("uid") == uid for o in owners)):
                continue
            if ready and rs["spec"].get("replicas"):
                rs["spec"]["replicas"] = 0
                rs["status"] = {
                    "replicas": 0,
                    "observedGeneration": rs["metadata"].get("generation", 1),
                }
                self._bump(rs_res, namespace, rs, "MODIFIED")
        template = copy.deepcopy(spec.get("template", {}))
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy(spec.get("selector", {}))
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        status = {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas if ready else 0,
            "availableReplicas": replicas if ready else 0,
            "observedGeneration": 1,
        }
        existing = self._objects.get(self._key(rs_res, namespace, name))
        if existing is not None:
            existing["spec"]["replicas"] = replicas
            existing["status"] = status
            self._bump(rs_res, namespace, existing, "MODIFIED")
            return
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas)},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": deployment["metadata"]["name"],
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        self._create(rs_res, namespace, body, enforce_namespace=False)
        self._objects[self._key(rs_res, namespace, name)]["status"] = status

    def _progressing_status(
        self, res: Resource, obj: dict[str, Any], old: Mapping[str, Any]
    ) -> dict[str, Any]:
        spec = obj.get("spec", {})
        gen = obj["metadata"].get("generation", 1)
        replicas = int(spec.get("replicas", 1))
        now = now_rfc3339()
        if res.kind == "Deployment":
            old_available = int(old.get("availableReplicas", 0))
            return {
                "observedGeneration": gen,
                "replicas": replicas + old_available,
                "updatedReplicas": replicas,
                "readyReplicas": old_available,
                "availableReplicas": old_available,
                "unavailableReplicas": replicas,
                "conditions": [
                    condition(
                        "Available",
                        "False" if not old_available else "True",
                        "MinimumReplicasUnavailable"
                        if not old_available
                        else "MinimumReplicasAvailable",
                        "Deployment does not have minimum availability.",
                        now,
                    ),
                    condition(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        f'ReplicaSet "{_replicaset(obj)}" is progressing.',
                        now,
                    ),
                ],
            }
        if res.kind == "DaemonSet":
            nodes = self.node_count
            return {
                "observedGeneration": gen,
                "currentNumberScheduled": nodes,
                "desiredNumberScheduled": nodes,
                "numberMisscheduled": 0,
                "updatedNumberScheduled": nodes,
                "numberReady": 0,
                "numberAvailable": 0,
                "numberUnavailable": nodes,
            }
        if res.kind == "StatefulSet":
            revision = f"{obj['metadata']['name']}-{_template_hash(obj)}"
            return {
                "observedGeneration": gen,
                "replicas": replicas,
                "readyReplicas": 0,
                "availableReplicas": 0,
                "currentReplicas": int(old.get("currentReplicas", 0)),
                "updatedReplicas": replicas,
                "currentRevision": old.get("currentRevision", revision),
                "updateRevision": revision,
                "collisionCount": 0,
            }
        if res.kind == "Job":
            return {"active": int(spec.get("parallelism", 1)), "startTime": now, "ready": 0}
        return dict(old)

    def _ready_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        spec = obj.get("spec", {})
        gen = obj["metadata"].get("generation", 1)
        replicas = int(spec.get("replicas", 1))
        now = now_rfc3339()
        if res.kind == "Deployment":
            return {
                "observedGeneration": gen,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    condition(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        now,
                    ),
                    condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        f'ReplicaSet "{_replicaset(obj)}" has successfully progressed.',
                        now,
                    ),
                ],
            }
        if res.kind == "DaemonSet":
            nodes = self.node_count
            return {
                "observedGeneration": gen,
                "currentNumberScheduled": nodes,
                "desiredNumberScheduled": nodes,
                "numberMisscheduled": 0,
                "updatedNumberScheduled": nodes,
                "numberReady": nodes,
                "numberAvailable": nodes,
            }
        if res.kind == "StatefulSet":
            revision = f"{obj['metadata']['name']}-{_template_hash(obj)}"
            return {
                "observedGeneration": gen,
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "currentReplicas": replicas,
                "updatedReplicas": replicas,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            }
        if res.kind == "Job":
            completions = int(spec.get("completions", 1))
            return {
                "startTime": now,
                "completionTime": now,
                "succeeded": completions,
                "ready": 0,
                "conditions": [
                    condition(
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                    ),
                    condition(
                        "Complete",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                    ),
                ],
            }
        return dict(obj.get("status", {}))


def _images(obj: Mapping[str, Any]) -> set[str]:
    pod_spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    containers = [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]
    return {str(c.get("image")) for c in containers if isinstance(c, dict)}


def _replicaset(obj: Mapping[str, Any]) -> str:
    return f"{obj['metadata']['name']}-{_template_hash(obj)}"


def _template_hash(obj: Mapping[str, Any]) -> str:
    template = json.dumps(obj.get("spec", {}).get("template", {}), sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:10]
