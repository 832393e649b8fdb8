"""What the cluster says about an unhealthy pod: the report records, built and printed.

A `PodReport` is made from a pod object and its events as the API server returns them (plain
JSON), with each unready container's `ContainerReport` and the end of its log; `lines()` is
how it is printed under a rollout failure. No I/O: `hubfleet.kube.client.pod_diagnostics` reads the
pods and events and passes in how to read a container's log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# (container, restarted) -> the last lines it logged, of its previous run if restarted and
# the current run logged nothing
LogTail = Callable[[str, bool], tuple[str, ...]]


@dataclass(frozen=True)
class ContainerReport:
    """One container of an unhealthy pod: its state, and the end of its log."""

    name: str
    ready: bool
    state: str  # waiting | running | terminated | unknown
    reason: str  # CrashLoopBackOff, ImagePullBackOff, Error, OOMKilled, ...
    message: str
    exit_code: int | None  # of the current run if terminated, else of the last one
    restarts: int
    log_tail: tuple[str, ...]


@dataclass(frozen=True)
class PodEvent:
    type: str
    reason: str
    message: str
    count: int


@dataclass(frozen=True)
class PodReport:
    """A pod that is neither Ready nor Succeeded, and what the cluster says about it."""

    name: str
    namespace: str
    phase: str
    reason: str  # pod-level: Evicted, Unschedulable, ...
    message: str
    containers: tuple[ContainerReport, ...]
    events: tuple[PodEvent, ...]

    def lines(self) -> list[str]:
        """The report as indented lines, for printing under a rollout failure."""
        head = f"pod {self.name} ({self.phase}"
        head += f", {self.reason}: {self.message})" if self.reason else ")"
        out = [head]
        for c in self.containers:
            detail = [c.reason or c.state]
            if c.exit_code is not None:
                detail.append(f"exit code {c.exit_code}")
            if c.restarts:
                detail.append(f"{c.restarts} restarts")
            out.append(f"  container {c.name}: {', '.join(detail)}")
            if c.message:
                out.append(f"    {short_line(c.message)}")
            out.extend(f"    | {line}" for line in c.log_tail)
        out.extend(f"  event {e.type} {e.reason}: {short_line(e.message)}" for e in self.events)
        return out


def is_healthy(pod: Mapping[str, Any]) -> bool:
    """Whether a pod object is Succeeded, or Running and Ready: nothing to report."""
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return True
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and ready


def pod_report(
    pod: Mapping[str, Any],
    events: list[Mapping[str, Any]],
    log_tail: LogTail | None,
    max_events: int,
) -> PodReport:
    """The report on a pod object, with its latest `max_events` events; `log_tail` (None: no
    logs) is asked for the log of each container that is not ready."""
    meta, status = pod["metadata"], pod.get("status") or {}
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    for cond in status.get("conditions") or []:
        if not reason and cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reason, message = str(cond.get("reason") or ""), str(cond.get("message") or "")
    containers = [
        container_report(c, log_tail)
        for c in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
    ]
    events = sorted(
        events,
        key=lambda e: str(
            e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""
        ),
    )
    return PodReport(
        name=meta["name"],
        namespace=meta["namespace"],
        phase=str(status.get("phase") or "Unknown"),
        reason=reason,
        message=message,
        containers=tuple(containers),
        events=tuple(
            PodEvent(
                str(e.get("type", "")),
                str(e.get("reason", "")),
                str(e.get("message", "")),
                int(e.get("count") or 1),
            )
            for e in events[-max_events:]
        ),
    )


def container_report(status: Mapping[str, Any], log_tail: LogTail | None) -> ContainerReport:
    """The report on one entry of a pod's (init)containerStatuses."""
    state_name, detail = next(iter((status.get("state") or {"unknown": {}}).items()))
    detail = detail if isinstance(detail, dict) else {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    exit_code = detail.get("exitCode", last.get("exitCode"))
    ready = bool(status.get("ready"))
    restarts = int(status.get("restartCount", 0))
    tail: tuple[str, ...] = ()
    if not ready and log_tail is not None:
        tail = log_tail(str(status["name"]), restarts > 0)
    return ContainerReport(
        name=str(status["name"]),
        ready=ready,
        state=str(state_name),
        reason=str(detail.get("reason") or ""),
        message=str(detail.get("message") or ""),
        exit_code=None if exit_code is None else int(exit_code),
        restarts=restarts,
        log_tail=tail,
    )


def short_line(text: str, limit: int = 200) -> str:
    """`text` with its whitespace runs squeezed to single spaces, cut at `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
