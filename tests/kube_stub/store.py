"""The stub's object store: objects by (group, version, resource, namespace, name).

Create, replace (and the `status` subresource), the four patch types and server-side apply,
delete (with namespace and owner-reference cascades), list by selectors, resourceVersions and
the event history watches read. The rollout controller (rollouts.py) hooks into every write;
`put`, `get`, `objects` and `delete` are the tests' own view of the store.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from tests.kube_stub.defaulting import apply_defaults
from tests.kube_stub.patches import (
    PATCH_TYPES,
    apply_merge,
    drop_unapplied,
    json_patch,
    managed,
    merge_patch,
    strategic_merge_patch,
)
from tests.kube_stub.resources import (
    RESOURCES,
    WORKLOAD_KINDS,
    ApiError,
    Resource,
    not_found,
    now_rfc3339,
)
from tests.kube_stub.selector import field_selector_matches, label_selector_matches

if TYPE_CHECKING:
    from tests.kube_stub.rollouts import Rollout


@dataclass
class _WatchEvent:
    rv: int
    type: str
    res: Resource
    namespace: str
    obj: dict[str, Any]


class ObjectStore:
    """Objects in memory, written as the API server writes them, and read back by tests."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        self._applied: dict[tuple[str, str, str, str, str, str], Any] = {}
        # the rollout controller's (rollouts.py), dropped here with the object and on dry runs
        self._rollouts: dict[tuple[str, str, str, str, str], Rollout] = {}
        self._events: list[_WatchEvent] = []
        self._rv = itertools.count(1000)
        self._last_rv = 1000
        # kinds served because a CustomResourceDefinition defines them, by the CRD's name
        self._custom: dict[str, tuple[Resource, ...]] = {}

    # --- what is served: the built-in table, and the kinds of the CRDs stored ---------------

    def served(self) -> tuple[Resource, ...]:
        return RESOURCES + tuple(r for defined in self._custom.values() for r in defined)

    @property
    def _by_kind(self) -> dict[str, Resource]:
        return {r.kind: r for r in self.served()}

    @property
    def _by_plural(self) -> dict[str, Resource]:
        return {r.plural: r for r in self.served()}

    # --- what the rollout controller (rollouts.py) does on reads and writes -----------------

    def _tick(self) -> None:
        """Let the controllers catch up before a read."""

    def _start_rollout(
        self, res: Resource, namespace: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """A workload's new generation: the controllers write its status."""

    def _after_write(self, res: Resource, namespace: str, obj: dict[str, Any]) -> None:
        """The controllers' side effects of a new generation."""

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
        if res.kind == "CustomResourceDefinition":
            name = obj["metadata"]["name"]
            if event == "DELETED":
                self._custom.pop(name, None)
            else:
                self._custom[name] = defined_resources(obj)
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
            meta["managedFields"] = [managed(manager, "Update", res, body)]
        apply_defaults(res, obj)
        if res.has_status and res.kind in WORKLOAD_KINDS:
            obj.pop("status", None)
            self._start_rollout(res, namespace, obj, None)
        if res.kind == "CustomResourceDefinition":
            obj["status"] = established(obj)  # as the API server does, at once
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
            raise not_found(res, name)
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
            apply_defaults(res, obj)
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
                managed(manager, operation, res, applied if applied is not None else body)
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
            raise not_found(res, name)
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
                    raise not_found(res, name)
                created = self._create(res, namespace, copy.deepcopy(applied), dry_run=dry_run)
                created["metadata"]["managedFields"] = [managed(manager, "Apply", res, applied)]
                if not dry_run:
                    self._objects[key]["metadata"]["managedFields"] = copy.deepcopy(
                        created["metadata"]["managedFields"]
                    )
                    self._applied[applied_key] = copy.deepcopy(applied)
                return 201, created
            previous = self._applied.get(applied_key, {})
            base = drop_unapplied(copy.deepcopy(live), previous, applied)
            merged = apply_merge(base, applied)
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
            raise not_found(res, name)
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


def _without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what a generation counts changes of."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def defined_resources(crd: Mapping[str, Any]) -> tuple[Resource, ...]:
    """The kinds a CustomResourceDefinition makes the API server serve: one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    return tuple(
        Resource(
            str(spec.get("group", "")),
            str(version["name"]),
            str(names.get("plural", "")),
            str(names.get("kind", "")),
            namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            has_status="status" in (version.get("subresources") or {}),
        )
        for version in spec.get("versions") or []
        if version.get("served", True)
    )


def established(crd: Mapping[str, Any]) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    when = now_rfc3339()
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": when,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": when,
            },
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
    }
