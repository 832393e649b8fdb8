"""What the kubelet and scheduler report, as tests set it up: pods, their events, their logs.

No kubelet runs: a test adds a healthy, failing or unschedulable pod, events about any object
and container logs; the rollout controller (rollouts.py) adds a crashing pod for a workload
that uses a broken image. Pod logs are answered from here.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from tests.kube_stub.resources import ApiError, condition, not_found, now_rfc3339
from tests.kube_stub.store import ObjectStore


class PodRecords(ObjectStore):
    """The object store with pods, events and container logs as a kubelet would report them."""

    def __init__(self) -> None:
        super().__init__()
        self._logs: dict[tuple[str, str, str, bool], str] = {}

    # --- test helpers: pods, events, logs ---------------------------------------------------

    def add_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        labels: Mapping[str, str] | None = None,
        containers: Iterable[str] = ("main",),
        phase: str = "Running",
        ready: bool = True,
        container_statuses: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None,
        logs: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A pod as the kubelet reports it; healthy unless told otherwise."""
        names = list(containers)
        now = now_rfc3339()
        statuses = (
            container_statuses
            if container_statuses is not None
            else [
                {
                    "name": c,
                    "image": f"registry.example/{c}:1.0",
                    "imageID": f"registry.example/{c}@sha256:{hashlib.sha256(c.encode()).hexdigest()}",
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                    "ready": ready,
                    "started": ready,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in names
            ]
        )
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": {
                "containers": [{"name": c, "image": f"registry.example/{c}:1.0"} for c in names],
                "nodeName": "stub-node-1" if phase != "Pending" else None,
                "restartPolicy": "Always",
            },
            "status": {
                "phase": phase,
                "conditions": conditions
                or [
                    condition("PodScheduled", "True", None, None, now),
                    condition("Initialized", "True", None, None, now),
                    condition(
                        "ContainersReady",
                        "True" if ready else "False",
                        None if ready else "ContainersNotReady",
                        None,
                        now,
                    ),
                    condition(
                        "Ready",
                        "True" if ready else "False",
                        None if ready else "ContainersNotReady",
                        None,
                        now,
                    ),
                ],
                "hostIP": "10.0.0.10",
                "podIP": "10.42.0.17",
                "startTime": now,
                "qosClass": "BestEffort",
                "containerStatuses": statuses,
            },
        }
        if pod["spec"]["nodeName"] is None:
            del pod["spec"]["nodeName"]
        if not statuses:
            del pod["status"]["containerStatuses"]
        stored = self.put(pod)
        for container, text in (logs or {}).items():
            self.set_logs(name, text, container=container, namespace=namespace)
        return stored

    def add_failing_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        labels: Mapping[str, str] | None = None,
        container: str = "main",
        reason: str = "CrashLoopBackOff",
        message: str | None = None,
        exit_code: int = 1,
        restarts: int = 4,
        logs: str = "",
        events: Iterable[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """A pod whose container keeps failing: CrashLoopBackOff (default) or an image pull error.

        `events` are (reason, message) pairs; by default the ones the kubelet would emit.
        """
        now = now_rfc3339()
        pulling = reason in ("ImagePullBackOff", "ErrImagePull")
        image = f"registry.example/{container}:1.0"
        waiting_message = message or (
            f'Back-off pulling image "{image}"'
            if pulling
            else f"back-off 40s restarting failed container={container} pod={name}_{namespace}"
        )
        status: dict[str, Any] = {
            "name": container,
            "image": image,
            "imageID": "" if pulling else f"registry.example/{container}@sha256:{'0' * 64}",
            "ready": False,
            "started": False,
            "restartCount": 0 if pulling else restarts,
            "state": {"waiting": {"reason": reason, "message": waiting_message}},
        }
        if not pulling:
            status["containerID"] = f"containerd://{uuid.uuid4().hex}"
            status["lastState"] = {
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Error",
                    "startedAt": now,
                    "finishedAt": now,
                    "containerID": status["containerID"],
                }
            }
        pod = self.add_pod(
            name,
            namespace=namespace,
            labels=labels,
            containers=[container],
            phase="Pending" if pulling else "Running",
            ready=False,
            container_statuses=[status],
        )
        if logs:
            self.set_logs(name, logs, container=container, namespace=namespace)
        default_events = (
            [
                ("Pulling", f'Pulling image "{image}"'),
                ("Failed", f'Failed to pull image "{image}": not found'),
                ("BackOff", waiting_message),
            ]
            if pulling
            else [
                ("Started", f"Started container {container}"),
                (
                    "BackOff",
                    f"Back-off restarting failed container {container} in pod "
                    f"{name}_{namespace}({pod['metadata']['uid']})",
                ),
            ]
        )
        for event_reason, event_message in events if events is not None else default_events:
            self.add_event(
                "Pod",
                name,
                event_reason,
                event_message,
                namespace=namespace,
                type="Normal"
                if event_reason in ("Pulling", "Started", "Pulled", "Scheduled")
                else "Warning",
            )
        return pod

    def add_unschedulable_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        labels: Mapping[str, str] | None = None,
        message: str = "0/1 nodes are available: 1 Insufficient memory.",
    ) -> dict[str, Any]:
        """A Pending pod the scheduler cannot place (no container statuses yet)."""
        now = now_rfc3339()
        pod = self.add_pod(
            name,
            namespace=namespace,
            labels=labels,
            phase="Pending",
            ready=False,
            container_statuses=[],
            conditions=[condition("PodScheduled", "False", "Unschedulable", message, now)],
        )
        self.add_event(
            "Pod",
            name,
            "FailedScheduling",
            message,
            namespace=namespace,
            type="Warning",
            component="default-scheduler",
        )
        return pod

    def add_event(
        self,
        involved_kind: str,
        involved_name: str,
        reason: str,
        message: str,
        *,
        namespace: str = "default",
        type: str = "Warning",
        count: int = 1,
        component: str = "kubelet",
    ) -> dict[str, Any]:
        """A core/v1 Event about an object, as the kubelet or a controller records it."""
        involved = self.get(involved_kind, involved_name, namespace) or {}
        res = self.resource(involved_kind)
        now = now_rfc3339()
        return self.put(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{involved_name}.{time.time_ns():x}",  # as the kubelet names them
                    "namespace": namespace,
                },
                "involvedObject": {
                    "kind": involved_kind,
                    "namespace": namespace,
                    "name": involved_name,
                    "uid": involved.get("metadata", {}).get("uid", ""),
                    "apiVersion": res.group_version,
                    "resourceVersion": involved.get("metadata", {}).get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "source": {"component": component, "host": "stub-node-1"},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": count,
                "type": type,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": "stub-node-1",
            }
        )

    def set_logs(
        self,
        pod: str,
        text: str,
        *,
        container: str = "main",
        namespace: str = "default",
        previous: bool = False,
    ) -> None:
        with self._lock:
            self._logs[(namespace, pod, container, previous)] = text

    def _pod_log(self, namespace: str, name: str, query: Mapping[str, str]) -> str:
        pod = self._objects.get(self._key(self._by_kind["Pod"], namespace, name))
        if pod is None:
            raise not_found(self._by_kind["Pod"], name)
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = query.get("container")
        if not container:
            if len(containers) != 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]",
                )
            container = containers[0]
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        previous = query.get("previous") in ("true", "1")
        text = self._logs.get((namespace, name, container, previous))
        if text is None:
            statuses = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses", [])}
            waiting = statuses.get(container, {}).get("state", {}).get("waiting")
            if waiting and not previous:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{name}" is waiting to start: '
                    f"{waiting.get('reason', 'ContainerCreating')}",
                )
            if previous:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{name}" not found',
                )
            text = ""
        lines = text.splitlines(keepends=True)
        if "tailLines" in query:
            tail = int(query["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        return "".join(lines)
