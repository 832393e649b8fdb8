"""The one adapter over the Kubernetes API (the official `kubernetes` client).

Everything hubfleet asks a member's API server goes through here (custom objects through
hubfleet.kube.apply, on a client from here): a client built from the member's in-memory
kubeconfig (never ~/.kube/config, KUBECONFIG or the client's global default
configuration), a reachability check, waiting for workloads to roll out with the rules of
`kubectl rollout status`, and diagnostics of the pods that are not healthy. The rules
themselves are pure and live apart: readiness in `hubfleet.kube.rollout`, the pod reports in
`hubfleet.kube.pod_report`; this module only reads what they judge.

`kubernetes` takes half a second to import, so it is imported inside the functions that need
it; nothing in hubfleet but this module and hubfleet.kube.apply imports it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from hubfleet.errors import ClusterError
from hubfleet.kube.configuration import configuration_from_kubeconfig
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.kube.pod_report import LogTail, PodReport, is_healthy, pod_report, short_line
from hubfleet.kube.rollout import ROLLOUT_KINDS, RolloutNotReadyError, RolloutState, rollout_status

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# A member's API client, as other packages name it (they never import kubernetes themselves).
KubeClient: TypeAlias = "ApiClient"

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
MAX_PARALLEL_WAITS = 8

# --- clients ------------------------------------------------------------------------------


def api_client(creds: ClusterCredentials, workdir: Path) -> ApiClient:
    """A client for one member, from its kubeconfig and context; cert files go in `workdir`."""
    from kubernetes import client

    try:
        configuration = configuration_from_kubeconfig(creds.kubeconfig, creds.context, workdir)
    except (KeyError, TypeError, ValueError, OSError, binascii.Error) as err:
        raise ClusterError(
            f"member {creds.member}: the kubeconfig in {creds.source} cannot be used "
            f"(context {creds.context}): {short_line(str(err))}"
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
        unhealthy = [p for p in pods.get("items", []) if not is_healthy(p)]
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
            logs = _log_reader(core, pod, tail_lines) if tail_lines > 0 else None
            reports.append(pod_report(pod, events.get("items", []), logs, max_events))
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


def _log_reader(core: Any, pod: Mapping[str, Any], tail_lines: int) -> LogTail:
    """How `pod_report` reads the end of one of this pod's container logs."""
    meta = pod["metadata"]

    def log_tail(container: str, restarted: bool) -> tuple[str, ...]:
        return _log_tail(core, meta["namespace"], meta["name"], container, tail_lines, restarted)

    return log_tail


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
    return short_line(re.sub(r"<[^>]*>: ", "", text))


def api_error(where: str, doing: str, err: Any) -> ClusterError:
    """An ApiException as one line: where, what was being done, and the server's answer."""
    return ClusterError(f"{where}: {doing} failed: {err.status} {err.reason}")


# --- reading secrets ----------------------------------------------------------------------


def read_secret(api: ApiClient, namespace: str, name: str) -> dict[str, str] | None:
    """A Secret's data, base64-decoded in memory (None when there is no such Secret).

    The values are secrets: callers keep them in memory and never print them; errors name the
    Secret, never its content.
    """

    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    where = f"namespace {namespace}: Secret {name}"
    try:
        obj = _json(client.CoreV1Api(api).read_namespaced_secret(name, namespace, **_raw()))
    except ApiException as err:
        if err.status == 404:
            return None
        raise api_error(where, "reading it", err) from None
    except Exception as err:
        if not _is_network_error(err):
            raise
        raise ClusterError(f"{where}: cannot read it ({_network_reason(err)})") from err
    data = obj.get("data") or {}
    decoded: dict[str, str] = {}
    for key, value in data.items():
        try:
            decoded[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise ClusterError(f"{where}: key {key} is not base64-encoded UTF-8 text") from None
    return decoded


def node_list_json(api: ApiClient) -> str:
    """`kubectl get nodes -o json`, as text (parse with hubfleet.kube.nodes.parse_nodes)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        answer = client.CoreV1Api(api).list_node(_preload_content=False, _request_timeout=10)
    except ApiException as err:
        raise ClusterError(f"listing nodes failed: {err.status} {err.reason}") from None
    return str(answer.data.decode())
