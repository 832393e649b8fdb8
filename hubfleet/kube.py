"""The one adapter over the Kubernetes API (the official `kubernetes` client).

Everything hubfleet asks a member's API server goes through here: a client built from the
member's in-memory kubeconfig (never ~/.kube/config, KUBECONFIG or the client's global default
configuration), a reachability check, waiting for workloads to roll out with the rules of
`kubectl rollout status`, and diagnostics of the pods that are not healthy.

`kubernetes` takes half a second to import, so it is imported inside the functions that need
it; nothing else in hubfleet imports it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hubfleet.credentials import ClusterCredentials
from hubfleet.errors import ClusterError, RolloutError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ROLLOUT_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
MAX_PARALLEL_WAITS = 8

# The kubernetes kubeconfig loader caches the cert files it writes, process-wide, by content.
# Loading under this lock with an emptied cache keeps one member's files (in its own temp dir,
# removed when its client closes) from being handed to another member's client.
_LOADER_LOCK = threading.Lock()


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
                out.append(f"    {_one_line(c.message)}")
            out.extend(f"    | {line}" for line in c.log_tail)
        out.extend(f"  event {e.type} {e.reason}: {_one_line(e.message)}" for e in self.events)
        return out


# --- clients ------------------------------------------------------------------------------


def api_client(creds: ClusterCredentials, workdir: Path) -> ApiClient:
    """A client for one member, from its kubeconfig and context; cert files go in `workdir`."""
    from kubernetes import client, config
    from kubernetes.config import kube_config

    configuration = client.Configuration()  # a fresh one, never the process-wide default
    configuration.retries = 1
    try:
        with _LOADER_LOCK:
            cache = kube_config._temp_files
            saved = dict(cache)
            cache.clear()
            try:
                config.load_kube_config_from_dict(
                    copy.deepcopy(dict(creds.kubeconfig)),
                    context=creds.context,
                    client_configuration=configuration,
                    persist_config=False,
                    temp_file_path=str(workdir),
                )
            finally:
                cache.clear()
                cache.update(saved)
    except (config.ConfigException, KeyError, TypeError, ValueError) as err:
        raise ClusterError(
            f"member {creds.member}: the kubeconfig in {creds.source} cannot be used "
            f"(context {creds.context}): {_one_line(str(err))}"
        ) from err
    return client.ApiClient(configuration=configuration)


@contextmanager
def member_api(creds: ClusterCredentials) -> Iterator[ApiClient]:
    """A member's client for the duration of a block; its private temp dir goes with it."""
    workdir = Path(tempfile.mkdtemp(prefix="hubfleet-kube-"))  # mkdtemp makes it 0700
    try:
        api = api_client(creds, workdir)
        try:
            yield api
        finally:
            api.close()
            api.rest_client.pool_manager.clear()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_reachable(
    api: ApiClient, creds: ClusterCredentials, timeout_s: float = CONNECT_TIMEOUT_S
) -> str:
    """Ask the API server its version; a ClusterError says why it could not be asked."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    server, source = creds.server, creds.source
    try:
        info = client.VersionApi(api).get_code(_request_timeout=(timeout_s, timeout_s))
    except ApiException as err:
        if err.status in (401, 403):
            raise ClusterError(
                f"member {creds.member}: cluster at {server} refused the credentials "
                f"({err.status} {err.reason}); check the kubeconfig in {source}"
            ) from err
        raise ClusterError(
            f"member {creds.member}: cluster at {server} answered {err.status} {err.reason}; "
            "is that address a Kubernetes API server?"
        ) from err
    except Exception as err:
        if not _is_network_error(err):
            raise
        raise ClusterError(
            f"member {creds.member}: cannot reach cluster at {server} ({_network_reason(err)}); "
            f"check the kubeconfig in {source} and that the API server is up"
        ) from err
    return str(info.git_version)


# --- rollouts -----------------------------------------------------------------------------


def workloads_in_manifest(
    objects: Iterable[Mapping[str, Any] | None], default_namespace: str | None = None
) -> list[Workload]:
    """The Deployments, DaemonSets and StatefulSets among parsed manifest documents, in order."""
    found: dict[Workload, None] = {}

    def visit(doc: Mapping[str, Any] | None) -> None:
        if not isinstance(doc, Mapping):
            return
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                visit(item)
            return
        meta = doc.get("metadata")
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


def wait_for_rollouts(
    api: ApiClient,
    namespace: str,
    workloads: Iterable[tuple[str, str]],
    timeout_s: float,
    on_progress: Callable[[RolloutState], None] | None = None,
    *,
    poll_s: float = 1.0,
) -> list[RolloutState]:
    """Wait, in parallel, until every (kind, name) workload has rolled out.

    Returns the final states in the order given. Raises RolloutNotReadyError (a RolloutError)
    naming the workloads that were not ready by the deadline or failed for good; it carries
    every state. `on_progress` is called, from worker threads, whenever a state changes.
    """
    wanted = list(dict.fromkeys((str(kind), str(name)) for kind, name in workloads))
    for kind, _name in wanted:
        if kind not in ROLLOUT_KINDS:
            raise ValueError(f"cannot wait for a {kind}; only {', '.join(ROLLOUT_KINDS)}")
    if not wanted:
        return []
    started = time.monotonic()
    deadline = started + timeout_s
    give_up = threading.Event()  # one workload failed for good: stop waiting for the others

    def wait_one(workload: tuple[str, str]) -> RolloutState:
        kind, name = workload
        last: str | None = None
        try:
            while True:
                state = _observe(api, namespace, kind, name, started)
                if on_progress is not None and state.message != last:
                    on_progress(state)
                last = state.message
                if state.failed:
                    give_up.set()
                remaining = deadline - time.monotonic()
                if state.ready or state.failed or remaining <= 0 or give_up.is_set():
                    return state
                give_up.wait(min(poll_s, remaining))
        except BaseException:  # e.g. on_progress failed: the other waiters stop too
            give_up.set()
            raise

    workers = min(MAX_PARALLEL_WAITS, len(wanted))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollout-wait") as pool:
        try:
            states = list(pool.map(wait_one, wanted))
        except BaseException:  # Ctrl-C: release the waiters now, not at the deadline
            give_up.set()
            raise
    stuck = [s for s in states if not s.ready]
    if stuck:
        timed_out = not any(s.failed for s in stuck)
        parts = "; ".join(str(s) for s in stuck if s.failed or timed_out)
        suffix = f" after {timeout_s:g}s" if timed_out else ""
        raise RolloutNotReadyError(f"{parts}{suffix} (namespace {namespace})", states)
    return states


def _observe(api: ApiClient, namespace: str, kind: str, name: str, started: float) -> RolloutState:
    from kubernetes.client.exceptions import ApiException

    def state(ready: bool, message: str, failed: bool = False) -> RolloutState:
        elapsed = time.monotonic() - started
        return RolloutState(kind, name, namespace, ready, message, failed, round(elapsed, 3))

    try:
        obj = _read_workload(api, namespace, kind, name)
    except ApiException as err:
        if err.status == 404:
            return state(False, "not found")
        return state(False, f"API error {err.status} {err.reason}")
    except Exception as err:
        if not _is_network_error(err):
            raise
        return state(False, f"API server unreachable ({_network_reason(err)})")
    ready, failed, message = rollout_status(obj)
    return state(ready, message, failed)


def _read_workload(api: ApiClient, namespace: str, kind: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    read = {
        "Deployment": apps.read_namespaced_deployment,
        "DaemonSet": apps.read_namespaced_daemon_set,
        "StatefulSet": apps.read_namespaced_stateful_set,
    }[kind]
    obj: dict[str, Any] = _json(read(name, namespace, **_raw()))
    obj.setdefault("kind", kind)
    return obj


# --- diagnostics --------------------------------------------------------------------------


def pod_diagnostics(
    api: ApiClient,
    namespace: str,
    selector: str | None = None,
    tail_lines: int = 20,
    *,
    max_pods: int = 10,
    max_events: int = 5,
) -> list[PodReport]:
    """Reports on the pods (matching a label selector) that are neither Ready nor Succeeded."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    try:
        pods = _json(core.list_namespaced_pod(namespace, label_selector=selector or "", **_raw()))
        unhealthy = [p for p in pods.get("items", []) if not _healthy(p)]
        reports = []
        for pod in sorted(unhealthy, key=lambda p: p["metadata"]["name"])[:max_pods]:
            name = pod["metadata"]["name"]
            events = _json(
                core.list_namespaced_event(
                    namespace,
                    field_selector=f"involvedObject.kind=Pod,involvedObject.name={name}",
                    **_raw(),
                )
            )
            reports.append(_pod_report(core, pod, events.get("items", []), tail_lines, max_events))
    except ApiException as err:
        raise ClusterError(
            f"namespace {namespace}: cannot read pods for diagnostics ({err.status} {err.reason})"
        ) from err
    except Exception as err:
        if not _is_network_error(err):
            raise
        raise ClusterError(
            f"namespace {namespace}: cannot read pods for diagnostics ({_network_reason(err)})"
        ) from err
    return reports


def _healthy(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return True
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and ready


def _pod_report(
    core: Any,
    pod: Mapping[str, Any],
    events: list[Mapping[str, Any]],
    tail_lines: int,
    max_events: int,
) -> PodReport:
    meta, status = pod["metadata"], pod.get("status") or {}
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    for cond in status.get("conditions") or []:
        if not reason and cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reason, message = str(cond.get("reason") or ""), str(cond.get("message") or "")
    containers = [
        _container_report(core, meta["namespace"], meta["name"], c, tail_lines)
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


def _container_report(
    core: Any, namespace: str, pod: str, status: Mapping[str, Any], tail_lines: int
) -> ContainerReport:
    state_name, detail = next(iter((status.get("state") or {"unknown": {}}).items()))
    detail = detail if isinstance(detail, dict) else {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    exit_code = detail.get("exitCode", last.get("exitCode"))
    ready = bool(status.get("ready"))
    restarts = int(status.get("restartCount", 0))
    log_tail: tuple[str, ...] = ()
    if not ready and tail_lines > 0:
        log_tail = _log_tail(core, namespace, pod, str(status["name"]), tail_lines, restarts > 0)
    return ContainerReport(
        name=str(status["name"]),
        ready=ready,
        state=str(state_name),
        reason=str(detail.get("reason") or ""),
        message=str(detail.get("message") or ""),
        exit_code=None if exit_code is None else int(exit_code),
        restarts=restarts,
        log_tail=log_tail,
    )


def _log_tail(
    core: Any, namespace: str, pod: str, container: str, lines: int, restarted: bool
) -> tuple[str, ...]:
    """The last lines a container logged; of its previous run if the current has none."""
    from kubernetes.client.exceptions import ApiException

    for previous in (False, True) if restarted else (False,):
        try:
            response = core.read_namespaced_pod_log(
                pod, namespace, container=container, tail_lines=lines, previous=previous, **_raw()
            )
        except ApiException:
            continue  # e.g. 400 "waiting to start": there is no log yet
        text = _body(response).decode(errors="replace")
        if text.strip():
            return tuple(text.splitlines()[-lines:])
    return ()


# --- plumbing -----------------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    """Call options: the raw response (parsed here as plain JSON) and bounded timeouts."""
    return {"_preload_content": False, "_request_timeout": (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)}


def _body(response: Any) -> bytes:
    try:
        return bytes(response.data)
    finally:
        response.release_conn()


def _json(response: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(_body(response))
    return parsed


def _is_network_error(err: BaseException) -> bool:
    import urllib3

    return isinstance(err, urllib3.exceptions.HTTPError | OSError)


def _network_reason(err: BaseException) -> str:
    """A few words on why a connection failed, from urllib3's nested exceptions."""
    reason = getattr(err, "reason", None) or err
    text = str(reason)
    lowered = text.lower()
    if isinstance(reason, ConnectionRefusedError) or "connection refused" in lowered:
        return "connection refused"
    if "certificate verify failed" in lowered:
        match = re.search(r"certificate verify failed: ([^(\])]+)", text)
        return (
            f"TLS certificate not trusted: {match.group(1).strip() if match else 'verify failed'}"
        )
    if "timed out" in lowered or "timeout" in lowered:
        return "connection timed out"
    if "name or service not known" in lowered or "failed to resolve" in lowered:
        return "host name not found"
    if "no route to host" in lowered:
        return "no route to host"
    return _one_line(re.sub(r"<[^>]*>: ", "", text))


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
