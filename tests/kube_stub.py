"""A stub Kubernetes API server for tests: not Kubernetes, a stand-in that answers like one.

No API server can run where the tests run (see TESTING.md), so `hubfleet.kube` and the Helm
SDK are tested against this: a threaded HTTP(S) server on 127.0.0.1 holding objects in memory,
keyed by (group, version, resource, namespace, name). It answers the endpoints a real API
server answers, with the same JSON shapes: `/version`, discovery (`/api`, `/apis`, ...),
get/list (label and field selectors), watch, create, replace, the four patch types (strategic
merge is approximated by merge keys, server-side apply by "create, drop the fields this manager
applied last time and no longer applies, merge"), delete, the `status` subresource, pod logs,
one custom resource (system-upgrade-controller's `Plan`, upgrade.cattle.io/v1), and `kind:
Status` errors (404 NotFound, 409 AlreadyExists/Conflict, 422 Invalid, 401).

What it is not: there is no scheduler, no kubelet, no admission, no OpenAPI document. The only
controller is a rollout simulator: after a create or spec change of a Deployment, DaemonSet,
StatefulSet or Job it writes the status a real controller writes, "in progress" at once and
"ready" after a per-workload delay (or never, to test timeouts). Failing pods, their events and
their logs are added by tests with `add_failing_pod` and friends.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import hashlib
import ipaddress
import itertools
import json
import re
import socket
import ssl
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

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

# patchMergeKey of the list fields a strategic merge patch merges instead of replacing
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
}
MERGED_PRIMITIVE_LISTS = ("finalizers",)
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
)


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


def _not_found(res: Resource, name: str) -> ApiError:
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


# --- patches ------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, `null` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(name: str, patch_items: list[Any], live_items: list[Any]) -> str | None:
    """The patchMergeKey of a list field, if every element (live and patch) has it."""
    for key in MERGE_KEYS.get(name, ()):
        if all(isinstance(i, dict) and key in i for i in [*patch_items, *live_items]):
            return key
    return None


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge patch, approximated with a table of list merge keys.

    Lists named in MERGE_KEYS merge element by element (with `$patch: delete` and
    `$setElementOrder/<list>` honoured); other lists replace; `$retainKeys` is honoured.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    result = dict(target) if isinstance(target, dict) else {}
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
            continue
        live = result.get(key)
        if isinstance(value, list) and isinstance(live, list):
            if key in MERGED_PRIMITIVE_LISTS:
                result[key] = live + [v for v in value if v not in live]
                continue
            merge_key = _merge_key(key, value, live)
            if merge_key is not None:
                result[key] = _merge_list(live, value, merge_key, orders.get(key))
                continue
        merged = strategic_merge_patch(live, value)
        result[key] = _strip_directives(merged)
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(live: list[Any], patch: list[Any], key: str, order: list[Any] | None) -> list[Any]:
    merged: dict[Any, Any] = {item[key]: item for item in live}
    for item in patch:
        ident = item[key]
        if item.get("$patch") == "delete":
            merged.pop(ident, None)
        elif ident in merged:
            merged[ident] = strategic_merge_patch(merged[ident], item)
        else:
            merged[ident] = _strip_directives(item)
    if order:
        rank = {o.get(key): n for n, o in enumerate(order) if isinstance(o, dict)}
        return sorted(merged.values(), key=lambda i: rank.get(i[key], len(rank)))
    return list(merged.values())


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not str(k).startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def json_patch(target: Any, operations: list[Mapping[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test, copy, move."""
    doc = copy.deepcopy(target)

    def split(pointer: str) -> list[str]:
        if pointer == "":
            return []
        return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]

    def parent(path: list[str]) -> tuple[Any, str]:
        node = doc
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, path[-1]

    def get(path: list[str]) -> Any:
        node = doc
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    for op in operations:
        try:
            path = split(op["path"])
            kind = op["op"]
            if kind in ("add", "replace", "copy", "move"):
                if kind == "copy":
                    value = copy.deepcopy(get(split(op["from"])))
                elif kind == "move":
                    src = split(op["from"])
                    value = get(src)
                    node, last = parent(src)
                    del node[int(last) if isinstance(node, list) else last]
                else:
                    value = copy.deepcopy(op["value"])
                node, last = parent(path)
                if isinstance(node, list):
                    if last == "-":
                        node.append(value)
                    elif kind == "replace":
                        node[int(last)] = value
                    else:
                        node.insert(int(last), value)
                else:
                    if kind == "replace" and last not in node:
                        raise KeyError(last)
                    node[last] = value
            elif kind == "remove":
                node, last = parent(path)
                del node[int(last) if isinstance(node, list) else last]
            elif kind == "test":
                if get(path) != op["value"]:
                    raise ApiError(422, "Invalid", f"the test operation on {op['path']} failed")
            else:
                raise ApiError(400, "BadRequest", f"unknown json patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {err}",
            ) from err
    return doc


def _drop_unapplied(live: Any, previous: Any, current: Any) -> Any:
    """Remove from `live` the fields a manager applied before and no longer applies."""
    if not (isinstance(live, dict) and isinstance(previous, dict)):
        return live
    result = dict(live)
    for key, prev_value in previous.items():
        if not isinstance(current, dict) or key not in current:
            result.pop(key, None)
        elif isinstance(prev_value, dict) and key in result:
            result[key] = _drop_unapplied(result[key], prev_value, current[key])
    return result


def _apply_merge(live: Any, applied: Any) -> Any:
    """Merge an applied configuration: maps merge; lists (atomic here) replace."""
    if not isinstance(applied, dict):
        return copy.deepcopy(applied)
    result = dict(live) if isinstance(live, dict) else {}
    for key, value in applied.items():
        result[key] = _apply_merge(result.get(key), value) if value is not None else None
    return {k: v for k, v in result.items() if v is not None}


def _fields_v1(obj: Any) -> dict[str, Any]:
    """A managedFields `fieldsV1` set: every map key as `f:<key>`, lists and scalars as leaves."""
    if not isinstance(obj, dict):
        return {}
    return {f"f:{k}": _fields_v1(v) for k, v in obj.items()}


# --- selectors ----------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def label_selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = and."""
    for term in _split_selector(selector):
        set_match = _SET_RE.match(term)
        if set_match:
            key, op, values = set_match.groups()
            allowed = {v.strip() for v in values.split(",")}
            if op == "in" and labels.get(key) not in allowed:
                return False
            if op == "notin" and key in labels and labels[key] in allowed:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_selector_matches(selector: str, obj: Mapping[str, Any]) -> bool:
    """Dotted paths compared as strings: `involvedObject.name=x`, `metadata.name!=y`."""
    for term in _split_selector(selector):
        negate = "!=" in term
        path, value = term.split("!=" if negate else "=", 1) if "=" in term else (term, "")
        value = value.lstrip("=")
        node: Any = obj
        for part in path.strip().split("."):
            node = node.get(part) if isinstance(node, dict) else None
        actual = "" if node is None else str(node)
        if (actual == value.strip()) == negate:
            return False
    return True


# --- TLS ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """A CA (what a kubeconfig's certificate-authority-data holds) and a server cert it signed."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def make_tls_material(host: str = "127.0.0.1") -> TlsMaterial:
    """A fresh CA and a serving certificate for `host` (IP SAN) and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    end = start + dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-stub-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return TlsMaterial(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


# --- the stub -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """One request the stub answered, for tests that check what a client called."""

    method: str
    path: str
    query: str
    content_type: str
    status: int
    user_agent: str

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.status} {self.method} {self.path}{query} [{self.content_type}]"


@dataclass
class _Rollout:
    generation: int
    ready_at: float | None  # None: never


@dataclass
class _WatchEvent:
    rv: int
    type: str
    res: Resource
    namespace: str
    obj: dict[str, Any]


@dataclass
class _Route:
    res: Resource
    namespace: str  # "" for cluster-scoped or all namespaces
    name: str | None
    subresource: str | None


class KubeStub:
    """The stub API server and its in-memory object store: `start()` it, `stop()` it."""

    def __init__(self, *, tls: bool = True, token: str | None = "stub-token") -> None:
        self.tls = tls
        self.token = token
        self.tls_material = make_tls_material() if tls else None
        self.requests: list[RequestRecord] = []
        self.errors: list[str] = []  # tracebacks of stub bugs (answered as 500 InternalError)
        self.node_count = 1
        # seconds from a workload's create/spec change until it is ready; None: never ready
        self.default_ready_after_s: float | None = 0.0
        self._ready_after: dict[tuple[str, str, str], float | None] = {}
        # workloads whose pod template uses one of these never become ready, and get a pod
        # in CrashLoopBackOff (with events and a log) as a real cluster would show
        self.broken_images: set[str] = set()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        self._applied: dict[tuple[str, str, str, str, str, str], Any] = {}
        self._rollouts: dict[tuple[str, str, str, str, str], _Rollout] = {}
        self._logs: dict[tuple[str, str, str, bool], str] = {}
        self._events: list[_WatchEvent] = []
        self._rv = itertools.count(1000)
        self._last_rv = 1000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._by_kind = {r.kind: r for r in RESOURCES}
        self._by_plural = {r.plural: r for r in RESOURCES}
        for ns in INITIAL_NAMESPACES:
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> KubeStub:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.stub = self
        if self.tls_material is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
                cert.write_bytes(self.tls_material.cert_pem)
                key.write_bytes(self.tls_material.key_pem)
                context.load_cert_chain(cert, key)
            context.set_alpn_protocols(["http/1.1"])
            server.ssl_context = context
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="kube-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KubeStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "stub not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(
        self, *, cluster: str = "stub", user: str = "stub-admin", context: str = "stub"
    ) -> dict[str, Any]:
        """A kubeconfig dict for this stub, as a member's decrypted kubeconfig would be."""
        cluster_entry: dict[str, Any] = {"server": self.url}
        if self.tls_material is not None:
            cluster_entry["certificate-authority-data"] = base64.b64encode(
                self.tls_material.ca_pem
            ).decode()
        user_entry: dict[str, Any] = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": cluster_entry}],
            "users": [{"name": user, "user": user_entry}],
            "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
            "current-context": context,
            "preferences": {},
        }

    def request_log(self) -> list[str]:
        with self._lock:
            return [str(r) for r in self.requests]

    # --- test helpers: objects --------------------------------------------------------------

    def resource(self, kind_or_plural: str) -> Resource:
        res = self._by_kind.get(kind_or_plural) or self._by_plural.get(kind_or_plural.lower())
        if res is None:
            raise KeyError(f"the stub does not serve {kind_or_plural!r}")
        return res

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as given (create or replace, no admission), as if a client wrote it."""
        res = self.resource(str(obj["kind"]))
        body = copy.deepcopy(dict(obj))
        ns = str(body.get("metadata", {}).get("namespace") or "default") if res.namespaced else ""
        with self._lock:
            existing = self._objects.get(self._key(res, ns, body["metadata"]["name"]))
            if existing is None:
                return self._create(res, ns, body, enforce_namespace=False)
            body["metadata"].setdefault("resourceVersion", existing["metadata"]["resourceVersion"])
            return self._replace(res, ns, body["metadata"]["name"], body, keep_status=False)

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """A copy of one stored object, or None."""
        res = self.resource(kind)
        with self._lock:
            self._tick()
            obj = self._objects.get(self._key(res, namespace if res.namespaced else "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Copies of every stored object of a kind (in one namespace, or all)."""
        res = self.resource(kind)
        with self._lock:
            self._tick()
            return [
                copy.deepcopy(obj)
                for (g, _v, r, ns, _n), obj in sorted(self._objects.items())
                if g == res.group and r == res.plural and (namespace is None or ns == namespace)
            ]

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        res = self.resource(kind)
        with self._lock:
            self._delete(res, namespace if res.namespaced else "", name)

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
            pod = f"{name}-{_template_hash(obj)[:5]}-{uuid.uuid4().hex[:5]}"
            labels = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels")
            container = next(
                c["name"]
                for c in obj["spec"]["template"]["spec"]["containers"]
                if c.get("image") == broken[0]
            )
            self.add_failing_pod(
                pod,
                namespace=namespace,
                labels=labels,
                container=container,
                logs=f"starting {broken[0]}\nfatal: the stub was told this image is broken\n",
            )
            owner = {"apiVersion": res.group_version, "kind": res.kind, "name": name, "uid": uid}
            self._objects[self._key(pods, namespace, pod)]["metadata"]["ownerReferences"] = [
                dict(owner, controller=True)
            ]

    def _start_rollout(
        self, res: Resource, namespace: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """What the controllers do when they see a new generation: status 'in progress'."""
        key = self._key(res, namespace, obj["metadata"]["name"])
        delay = self._delay_for(res, namespace, obj["metadata"]["name"], obj)
        gen = int(obj["metadata"].get("generation", 1))
        self._rollouts[key] = _Rollout(gen, None if delay is None else time.monotonic() + delay)
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
                    _condition(
                        "Available",
                        "False" if not old_available else "True",
                        "MinimumReplicasUnavailable"
                        if not old_available
                        else "MinimumReplicasAvailable",
                        "Deployment does not have minimum availability.",
                        now,
                    ),
                    _condition(
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
                    _condition(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        now,
                    ),
                    _condition(
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
                    _condition(
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                    ),
                    _condition(
                        "Complete",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                    ),
                ],
            }
        return dict(obj.get("status", {}))

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
        pod = {
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
                    _condition("PodScheduled", "True", None, None, now),
                    _condition("Initialized", "True", None, None, now),
                    _condition(
                        "ContainersReady",
                        "True" if ready else "False",
                        None if ready else "ContainersNotReady",
                        None,
                        now,
                    ),
                    _condition(
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
            conditions=[_condition("PodScheduled", "False", "Unschedulable", message, now)],
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

    # --- the store -------------------------------------------------------------------------

    @staticmethod
    def _key(res: Resource, namespace: str, name: str) -> tuple[str, str, str, str, str]:
        return (res.group, res.version, res.plural, namespace, name)

    def _next_rv(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    def _bump(self, res: Resource, namespace: str, obj: dict[str, Any], event: str) -> None:
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._events.append(_WatchEvent(self._last_rv, event, res, namespace, copy.deepcopy(obj)))
        del self._events[:-2000]
        self._changed.notify_all()

    def _check_namespace(self, res: Resource, namespace: str) -> None:
        if (
            res.namespaced
            and self._key(self._by_kind["Namespace"], "", namespace) not in self._objects
        ):
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _validate(self, res: Resource, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind != res.kind or api_version != res.group_version:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({res.group_version})"
                if kind == res.kind
                else f'{kind} in version "{res.version}" cannot be handled as a {res.kind}',
            )
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        body_ns = meta.get("namespace")
        if res.namespaced and body_ns and namespace and body_ns != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent "
                "on the request",
            )
        return body

    def _create(
        self,
        res: Resource,
        namespace: str,
        body: dict[str, Any],
        *,
        enforce_namespace: bool = True,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(
                422,
                "Invalid",
                f'{res.kind}{"." + res.group if res.group else ""} "" is invalid: metadata.name: '
                "Required value: name or generateName is required",
                {
                    "kind": res.kind,
                    "group": res.group,
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                },
            )
        if enforce_namespace:
            self._check_namespace(res, namespace)
        key = self._key(res, namespace, name)
        if key in self._objects:
            details = (
                {"name": name, "group": res.group, "kind": res.plural}
                if res.group
                else {"name": name, "kind": res.plural}
            )
            raise ApiError(
                409, "AlreadyExists", f'{res.qualified} "{name}" already exists', details
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = res.group_version, res.kind
        meta = obj["metadata"]
        if res.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        if res.has_status or "spec" in obj:
            meta["generation"] = 1
        if manager:
            meta["managedFields"] = [_managed(manager, "Update", res, body)]
        _apply_defaults(res, obj)
        if res.has_status and res.kind in WORKLOAD_KINDS:
            obj.pop("status", None)
            self._start_rollout(res, namespace, obj, None)
        if dry_run:
            self._rollouts.pop(key, None)
            meta["resourceVersion"] = str(self._last_rv)
            return copy.deepcopy(obj)
        self._objects[key] = obj
        self._bump(res, namespace, obj, "ADDED")
        self._after_write(res, namespace, obj)
        return copy.deepcopy(obj)

    def _replace(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: dict[str, Any],
        *,
        keep_status: bool = True,
        status_only: bool = False,
        dry_run: bool = False,
        manager: str | None = None,
        operation: str = "Update",
        applied: Any = None,
    ) -> dict[str, Any]:
        key = self._key(res, namespace, name)
        live = self._objects.get(key)
        if live is None:
            raise _not_found(res, name)
        if body.get("metadata", {}).get("name", name) != name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        sent_rv = body.get("metadata", {}).get("resourceVersion")
        if sent_rv and sent_rv != live["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": res.group, "kind": res.plural},
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = res.group_version, res.kind
        meta = obj.setdefault("metadata", {})
        live_meta = live["metadata"]
        for fixed in ("uid", "creationTimestamp", "generation", "namespace", "managedFields"):
            if fixed in live_meta:
                meta[fixed] = copy.deepcopy(live_meta[fixed])
            else:
                meta.pop(fixed, None)
        meta["name"] = name
        if status_only:
            status = obj.get("status")
            obj = copy.deepcopy(live)
            obj["status"] = status
        else:
            _apply_defaults(res, obj)
            if keep_status and res.has_status:
                if "status" in live:
                    obj["status"] = copy.deepcopy(live["status"])
                else:
                    obj.pop("status", None)
        if manager:
            entries = [
                m
                for m in obj["metadata"].get("managedFields", [])
                if (m.get("manager"), m.get("operation")) != (manager, operation)
            ]
            entries.append(
                _managed(manager, operation, res, applied if applied is not None else body)
            )
            obj["metadata"]["managedFields"] = entries
        spec_changed = _spec(obj) != _spec(live)
        if spec_changed and "generation" in meta:
            meta["generation"] = int(meta["generation"]) + 1
        if spec_changed and res.kind in WORKLOAD_KINDS and not status_only:
            self._start_rollout(res, namespace, obj, live)
        if dry_run:
            if spec_changed:
                self._rollouts.pop(key, None)
            return copy.deepcopy(obj)
        if _without_managed_fields(obj) == _without_managed_fields(live):
            return copy.deepcopy(live)  # a no-op write keeps the resourceVersion
        self._objects[key] = obj
        self._bump(res, namespace, obj, "MODIFIED")
        if spec_changed:
            self._after_write(res, namespace, obj)
        return copy.deepcopy(obj)

    def _delete(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        key = self._key(res, namespace, name)
        obj = self._objects.pop(key, None)
        if obj is None:
            raise _not_found(res, name)
        self._rollouts.pop(key, None)
        self._applied = {k: v for k, v in self._applied.items() if k[:5] != key}
        if res.kind == "Namespace":
            for other in [k for k in self._objects if k[3] == name]:
                child = self._objects.pop(other)
                self._bump(self.resource(child["kind"]), name, child, "DELETED")
        self._bump(res, namespace, obj, "DELETED")
        # the garbage collector: objects this one owned go too
        uid = obj["metadata"].get("uid")
        for other, child in list(self._objects.items()):
            if other in self._objects and any(
                o.get("uid") == uid for o in child["metadata"].get("ownerReferences", [])
            ):
                self._delete(self.resource(child["kind"]), other[3], other[4])
        return obj

    def _list(
        self, res: Resource, namespace: str, query: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        items = []
        for (g, _v, r, ns, _n), obj in sorted(self._objects.items()):
            if g != res.group or r != res.plural or (namespace and ns != namespace):
                continue
            if labels and not label_selector_matches(labels, obj["metadata"].get("labels") or {}):
                continue
            if fields and not field_selector_matches(fields, obj):
                continue
            items.append(obj)
        return items

    def _patch(
        self,
        res: Resource,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        query: Mapping[str, str],
        subresource: str | None,
    ) -> tuple[int, dict[str, Any]]:
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager")
        key = self._key(res, namespace, name)
        live = self._objects.get(key)
        if content_type == "application/apply-patch+yaml":
            if not manager:
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch",
                )
            try:
                applied = yaml.safe_load(raw.decode())
            except yaml.YAMLError as err:
                raise ApiError(400, "BadRequest", f"error decoding YAML: {err}") from err
            applied = self._validate(res, namespace, applied)
            if applied["metadata"].get("name") != name:
                raise ApiError(
                    400, "BadRequest", "the name of the object does not match the name on the URL"
                )
            applied_key = (*key, manager)
            if live is None:
                if subresource:
                    raise _not_found(res, name)
                created = self._create(res, namespace, copy.deepcopy(applied), dry_run=dry_run)
                created["metadata"]["managedFields"] = [_managed(manager, "Apply", res, applied)]
                if not dry_run:
                    self._objects[key]["metadata"]["managedFields"] = copy.deepcopy(
                        created["metadata"]["managedFields"]
                    )
                    self._applied[applied_key] = copy.deepcopy(applied)
                return 201, created
            previous = self._applied.get(applied_key, {})
            base = _drop_unapplied(copy.deepcopy(live), previous, applied)
            merged = _apply_merge(base, applied)
            merged["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            result = self._replace(
                res,
                namespace,
                name,
                merged,
                keep_status=subresource != "status",
                status_only=subresource == "status",
                dry_run=dry_run,
                manager=manager,
                operation="Apply",
                applied=applied,
            )
            if not dry_run:
                self._applied[applied_key] = copy.deepcopy(applied)
            return 200, result
        if live is None:
            raise _not_found(res, name)
        try:
            patch = json.loads(raw.decode() or "null")
        except ValueError as err:
            raise ApiError(400, "BadRequest", f"error decoding patch: {err}") from err
        if content_type == "application/merge-patch+json":
            merged = merge_patch(live, patch)
        elif content_type == "application/strategic-merge-patch+json":
            merged = strategic_merge_patch(live, patch)
        elif content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "json patch must be a list of operations")
            merged = json_patch(live, patch)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(PATCH_TYPES)} (got {content_type})",
            )
        if isinstance(merged, dict):
            merged.setdefault("metadata", {})
            # a patch that omits resourceVersion is applied unconditionally
            if not (isinstance(patch, dict) and patch.get("metadata", {}).get("resourceVersion")):
                merged["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        merged = self._validate(res, namespace, merged)
        return 200, self._replace(
            res,
            namespace,
            name,
            merged,
            keep_status=subresource != "status",
            status_only=subresource == "status",
            dry_run=dry_run,
            manager=manager or "unknown",
        )

    # --- HTTP dispatch ---------------------------------------------------------------------

    def route(self, path: str) -> _Route | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        served = {r.plural: r for r in RESOURCES if r.group == group and r.version == version}
        if not rest:
            return None
        namespace = ""
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and rest[2] in served
            and served[rest[2]].namespaced
        ):
            namespace, rest = rest[1], rest[2:]
        res = served.get(rest[0])
        if res is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return _Route(res, namespace, name, sub)

    def discovery(self, path: str) -> dict[str, Any] | None:
        if path == "/version":
            return KUBE_VERSION
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        groups: dict[str, list[Resource]] = {}
        for r in RESOURCES:
            groups.setdefault(r.group_version, []).append(r)
        if path == "/apis":
            names = sorted({r.group for r in RESOURCES if r.group}, key=lambda g: (g != "apps", g))
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                        "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                    }
                    for g in names
                ],
            }
        parts = [p for p in path.split("/") if p]
        if (
            parts
            and parts[0] == "apis"
            and len(parts) == 2
            and any(r.group == parts[1] for r in RESOURCES)
        ):
            gv = {"groupVersion": f"{parts[1]}/v1", "version": "v1"}
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": parts[1],
                "versions": [gv],
                "preferredVersion": gv,
            }
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

    def openapi_v3(self, path: str) -> dict[str, Any] | None:
        """`/openapi/v3` and its per group-version documents, paths and operations only.

        client-go reads these to learn whether PATCH accepts `fieldValidation`; with that it
        leaves schema validation to the server instead of downloading every schema.
        """
        by_gv: dict[str, list[Resource]] = {}
        for r in RESOURCES:
            prefix = "api/v1" if not r.group else f"apis/{r.group_version}"
            by_gv.setdefault(prefix, []).append(r)
        if path == "/openapi/v3":
            return {
                "paths": {
                    gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_digest(gv)}"}
                    for gv in by_gv
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

    def handle(
        self, method: str, path: str, query: Mapping[str, str], content_type: str, body: bytes
    ) -> tuple[int, str, bytes] | Iterator[bytes]:
        """Answer one request: (status, content type, body), or a watch stream of lines."""
        with self._lock:
            self._tick()
            if method == "GET" and path.startswith("/openapi/v3"):
                spec = self.openapi_v3(path)
                if spec is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return 200, "application/json", json.dumps(spec).encode()
            if method == "GET":
                doc = self.discovery(path)
                if doc is not None:
                    return 200, "application/json", json.dumps(doc).encode()
            route = self.route(path)
            if route is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            res, ns, name, sub = route.res, route.namespace, route.name, route.subresource
            dry_run = query.get("dryRun") == "All"
            manager = query.get("fieldManager")
            if (
                sub not in (None, "status", "log")
                or (sub == "log" and res.kind != "Pod")
                or (sub == "status" and not (res.has_status or res.kind == "Namespace"))
            ):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if method == "GET" and name is None:
                if query.get("watch") in ("1", "true"):
                    return self._watch(res, ns, query)
                items = self._list(res, ns, query)
                return (
                    200,
                    "application/json",
                    json.dumps(
                        {
                            "kind": f"{res.kind}List",
                            "apiVersion": res.group_version,
                            "metadata": {"resourceVersion": str(self._last_rv)},
                            "items": [
                                {k: v for k, v in i.items() if k not in ("kind", "apiVersion")}
                                for i in items
                            ],
                        }
                    ).encode(),
                )
            if method == "GET" and sub == "log":
                return 200, "text/plain", self._pod_log(ns, name or "", query).encode()
            if method == "GET":
                obj = self._objects.get(self._key(res, ns, name or ""))
                if obj is None:
                    raise _not_found(res, name or "")
                return 200, "application/json", json.dumps(obj).encode()
            if method == "POST" and name is None:
                created = self._create(
                    res,
                    ns,
                    self._validate(res, ns, _json_body(body, content_type)),
                    dry_run=dry_run,
                    manager=manager or "unknown",
                )
                return 201, "application/json", json.dumps(created).encode()
            if method == "PUT" and name is not None:
                replaced = self._replace(
                    res,
                    ns,
                    name,
                    self._validate(res, ns, _json_body(body, content_type)),
                    keep_status=sub != "status",
                    status_only=sub == "status",
                    dry_run=dry_run,
                    manager=manager or "unknown",
                )
                return 200, "application/json", json.dumps(replaced).encode()
            if method == "PATCH" and name is not None:
                code, patched = self._patch(res, ns, name, content_type, body, query, sub)
                return code, "application/json", json.dumps(patched).encode()
            if method == "DELETE" and name is not None:
                deleted = self._objects.get(self._key(res, ns, name))
                if deleted is None:
                    raise _not_found(res, name)
                if not dry_run:
                    deleted = self._delete(res, ns, name)
                details = {"name": name, "kind": res.plural, "uid": deleted["metadata"]["uid"]}
                if res.group:
                    details["group"] = res.group
                return (
                    200,
                    "application/json",
                    json.dumps(
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Success",
                            "details": details,
                        }
                    ).encode(),
                )
            if method == "DELETE" and name is None:
                items = self._list(res, ns, query)
                for item in items:
                    self._delete(
                        res, item["metadata"].get("namespace", ""), item["metadata"]["name"]
                    )
                return (
                    200,
                    "application/json",
                    json.dumps(
                        {
                            "kind": f"{res.kind}List",
                            "apiVersion": res.group_version,
                            "metadata": {},
                            "items": items,
                        }
                    ).encode(),
                )
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"the server does not allow this method on the requested resource ({method})",
            )

    def _pod_log(self, namespace: str, name: str, query: Mapping[str, str]) -> str:
        pod = self._objects.get(self._key(self._by_kind["Pod"], namespace, name))
        if pod is None:
            raise _not_found(self._by_kind["Pod"], name)
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

    def _watch(self, res: Resource, namespace: str, query: Mapping[str, str]) -> Iterator[bytes]:
        since = query.get("resourceVersion", "")
        timeout = min(float(query.get("timeoutSeconds", "300")), 300.0)
        # no resourceVersion (or "0"), or a watch-list request: start with the current state
        send_initial = since in ("", "0") or query.get("sendInitialEvents") == "true"
        start_rv = self._last_rv if send_initial else int(since)
        initial = copy.deepcopy(self._list(res, namespace, query)) if send_initial else []
        deadline = time.monotonic() + timeout
        return self._watch_stream(res, namespace, query, start_rv, initial, deadline)

    def _watch_stream(
        self,
        res: Resource,
        namespace: str,
        query: Mapping[str, str],
        start_rv: int,
        initial: list[dict[str, Any]],
        deadline: float,
    ) -> Iterator[bytes]:
        for obj in initial:
            yield (json.dumps({"type": "ADDED", "object": obj}) + "\n").encode()
        if query.get("sendInitialEvents") == "true":
            bookmark = {
                "kind": res.kind,
                "apiVersion": res.group_version,
                "metadata": {
                    "resourceVersion": str(start_rv),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            yield (json.dumps({"type": "BOOKMARK", "object": bookmark}) + "\n").encode()
        seen = start_rv
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        while not self._stopping.is_set():
            with self._changed:
                self._tick()
                batch = [
                    e
                    for e in self._events
                    if e.rv > seen and e.res == res and (not namespace or e.namespace == namespace)
                ]
                seen = max([seen, *(e.rv for e in self._events)])
                if not batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._changed.wait(min(remaining, 0.05))
                    continue
            for event in batch:
                obj = event.obj
                if labels and not label_selector_matches(
                    labels, obj["metadata"].get("labels") or {}
                ):
                    continue
                if fields and not field_selector_matches(fields, obj):
                    continue
                yield (json.dumps({"type": event.type, "object": obj}) + "\n").encode()

    def authorized(self, header: str | None) -> bool:
        return self.token is None or header == f"Bearer {self.token}"

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)


# --- protobuf request bodies --------------------------------------------------------------
# client-go's typed clients (Helm's release storage among them) send protobuf. Only the
# messages those clients write are decoded; fields the server sets itself are skipped.


def _proto_fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) pairs of one protobuf message: ints for varints, bytes otherwise."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    while pos < len(buf):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            size = varint()
            yield number, buf[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            yield number, buf[pos : pos + width]
            pos += width
        else:
            raise ApiError(400, "BadRequest", f"unsupported protobuf wire type {wire}")


def _proto_map(entries: list[bytes], decode_value: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for entry in entries:
        fields = dict(_proto_fields(entry))
        value = fields.get(2, b"")
        result[fields.get(1, b"").decode()] = (
            value.decode() if decode_value else base64.b64encode(value).decode()
        )
    return result


def _proto_object_meta(buf: bytes) -> dict[str, Any]:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    labels: list[bytes] = []
    annotations: list[bytes] = []
    for number, value in _proto_fields(buf):
        if number in strings:
            meta[strings[number]] = value.decode()
        elif number == 7:
            meta["generation"] = value
        elif number == 11:
            labels.append(value)
        elif number == 12:
            annotations.append(value)
        elif number == 14:
            meta.setdefault("finalizers", []).append(value.decode())
    if labels:
        meta["labels"] = _proto_map(labels)
    if annotations:
        meta["annotations"] = _proto_map(annotations)
    return meta


def _proto_body(raw: bytes) -> dict[str, Any]:
    """A `k8s\\0`-framed runtime.Unknown holding a Secret or ConfigMap, as JSON would be."""
    if not raw.startswith(b"k8s\x00"):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s envelope")
    envelope = dict(_proto_fields(raw[4:]))
    type_meta = dict(_proto_fields(envelope.get(1, b"")))
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    fields: dict[int, list[Any]] = {}
    for number, value in _proto_fields(envelope.get(2, b"")):
        fields.setdefault(number, []).append(value)
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj["metadata"] = _proto_object_meta(fields[1][0]) if 1 in fields else {}
    if kind == "Secret":
        if 2 in fields:
            obj["data"] = _proto_map(fields[2], decode_value=False)
        if 3 in fields:
            obj["type"] = fields[3][0].decode()
        if 4 in fields:
            obj["stringData"] = _proto_map(fields[4])
        if 5 in fields:
            obj["immutable"] = bool(fields[5][0])
    elif kind == "ConfigMap":
        if 2 in fields:
            obj["data"] = _proto_map(fields[2])
        if 3 in fields:
            obj["binaryData"] = _proto_map(fields[3], decode_value=False)
        if 4 in fields:
            obj["immutable"] = bool(fields[4][0])
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the stub decodes protobuf only for Secret and ConfigMap, not {kind}",
        )
    return obj


def _json_body(raw: bytes, content_type: str = "application/json") -> Any:
    if content_type == "application/vnd.kubernetes.protobuf":
        return _proto_body(raw)
    try:
        return json.loads(raw.decode() or "null")
    except ValueError:
        try:
            return yaml.safe_load(raw.decode())
        except yaml.YAMLError as err:
            raise ApiError(400, "BadRequest", f"error decoding body: {err}") from err


def _without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what a generation counts changes of."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _images(obj: Mapping[str, Any]) -> set[str]:
    pod_spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    containers = [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]
    return {str(c.get("image")) for c in containers if isinstance(c, dict)}


def _digest(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:128].upper()


def _replicaset(obj: Mapping[str, Any]) -> str:
    return f"{obj['metadata']['name']}-{_template_hash(obj)}"


def _template_hash(obj: Mapping[str, Any]) -> str:
    template = json.dumps(obj.get("spec", {}).get("template", {}), sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:10]


def _condition(
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


def _managed(manager: str, operation: str, res: Resource, body: Any) -> dict[str, Any]:
    fields = _fields_v1(
        {k: v for k, v in (body or {}).items() if k not in ("apiVersion", "kind", "status")}
    )
    meta = fields.get("f:metadata", {})
    for drop in (
        "f:name",
        "f:namespace",
        "f:resourceVersion",
        "f:uid",
        "f:creationTimestamp",
        "f:managedFields",
        "f:generation",
    ):
        meta.pop(drop, None)
    if not meta:
        fields.pop("f:metadata", None)
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": res.group_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }


def _setdefaults(target: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(target[key], dict):
            _setdefaults(target[key], value)


def _apply_defaults(res: Resource, obj: dict[str, Any]) -> None:
    """The defaulting a real API server does that rollout checks depend on."""
    spec = obj.get("spec")
    if res.kind == "Namespace":
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = (
            obj["metadata"]["name"]
        )
        _setdefaults(obj, {"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    elif res.kind == "Secret":
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if string_data else obj.get("data")
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    stub: KubeStub
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every response
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # handshake in the handler thread, so one slow client cannot block accept()
            conn = self.ssl_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        self.stub._connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        self.stub._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-request is not a test failure


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    def _serve(self) -> None:
        stub = self.server.stub
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self._read_body()
        status = 500
        try:
            if not stub.authorized(self.headers.get("Authorization")):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            answer = stub.handle(self.command, path, query, content_type, body)
            if isinstance(answer, tuple):
                status, ctype, payload = answer
                self._send(status, ctype, payload)
            else:
                status = 200
                # a watch lasts until it times out: log it when it starts, not when it ends
                stub.record(self._record(parts.path, parts.query, content_type, status))
                status = 0
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for line in answer:
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client ended the watch
                    self.close_connection = True
        except ApiError as err:
            status = err.code
            self._send(err.code, "application/json", json.dumps(err.status()).encode())
        except Exception as err:  # a stub bug: answer like an API server would, and keep serving
            status = 500
            stub.errors.append(traceback.format_exc())
            failure = ApiError(
                500, "InternalError", f"stub internal error: {type(err).__name__}: {err}"
            )
            self._send(500, "application/json", json.dumps(failure.status()).encode())
        finally:
            if status:
                stub.record(self._record(parts.path, parts.query, content_type, status))

    def _record(self, path: str, query: str, content_type: str, status: int) -> RequestRecord:
        agent = self.headers.get("User-Agent", "")
        return RequestRecord(self.command, path, query, content_type, status, agent)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
