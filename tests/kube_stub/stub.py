"""KubeStub: the stub API server tests start, point clients at, and inspect.

It answers a request (`handle`) from the discovery documents (discovery.py) or the object
store (store.py, with pods.py and the rollout controller, rollouts.py), serves HTTP(S) through
server.py, and gives tests a kubeconfig for itself and the log of what clients requested.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.kube_stub.bodies import json_body
from tests.kube_stub.discovery import discovery, openapi_v3
from tests.kube_stub.resources import (
    INITIAL_NAMESPACES,
    ApiError,
    Resource,
    not_found,
)
from tests.kube_stub.rollouts import RolloutController
from tests.kube_stub.selector import field_selector_matches, label_selector_matches
from tests.kube_stub.server import RequestRecord, StubRequestHandler, StubServer
from tests.kube_stub.tls import make_tls_material


@dataclass
class _Route:
    res: Resource
    namespace: str  # "" for cluster-scoped or all namespaces
    name: str | None
    subresource: str | None


class KubeStub(RolloutController):
    """The stub API server and its in-memory object store: `start()` it, `stop()` it."""

    def __init__(self, *, tls: bool = True, token: str | None = "stub-token") -> None:
        super().__init__()
        self.tls = tls
        self.token = token
        self.tls_material = make_tls_material() if tls else None
        self.requests: list[RequestRecord] = []
        self.errors: list[str] = []  # tracebacks of stub bugs (answered as 500 InternalError)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        for ns in INITIAL_NAMESPACES:
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> KubeStub:
        server = StubServer(("127.0.0.1", 0), StubRequestHandler)
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

    # --- HTTP dispatch ---------------------------------------------------------------------

    def route(self, path: str) -> _Route | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        served = {r.plural: r for r in self.served() if r.group == group and r.version == version}
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

    def handle(
        self, method: str, path: str, query: Mapping[str, str], content_type: str, body: bytes
    ) -> tuple[int, str, bytes] | Iterator[bytes]:
        """Answer one request: (status, content type, body), or a watch stream of lines."""
        with self._lock:
            self._tick()
            if method == "GET" and path.startswith("/openapi/v3"):
                spec = openapi_v3(path, self.served())
                if spec is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return 200, "application/json", json.dumps(spec).encode()
            if method == "GET":
                doc = discovery(path, self.port, self.served())
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
                    raise not_found(res, name or "")
                return 200, "application/json", json.dumps(obj).encode()
            if method == "POST" and name is None:
                created = self._create(
                    res,
                    ns,
                    self._validate(res, ns, json_body(body, content_type)),
                    dry_run=dry_run,
                    manager=manager or "unknown",
                )
                return 201, "application/json", json.dumps(created).encode()
            if method == "PUT" and name is not None:
                replaced = self._replace(
                    res,
                    ns,
                    name,
                    self._validate(res, ns, json_body(body, content_type)),
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
                    raise not_found(res, name)
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
