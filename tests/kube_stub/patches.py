"""The four patch types and server-side apply's bookkeeping, on plain JSON values.

JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (approximated by a
table of list merge keys) and apply ("drop the fields this manager applied last time and no
longer applies, merge"), and the managedFields entries a write records.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tests.kube_stub.resources import ApiError, Resource, now_rfc3339

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


def drop_unapplied(live: Any, previous: Any, current: Any) -> Any:
    """Remove from `live` the fields a manager applied before and no longer applies."""
    if not (isinstance(live, dict) and isinstance(previous, dict)):
        return live
    result = dict(live)
    for key, prev_value in previous.items():
        if not isinstance(current, dict) or key not in current:
            result.pop(key, None)
        elif isinstance(prev_value, dict) and key in result:
            result[key] = drop_unapplied(result[key], prev_value, current[key])
    return result


def apply_merge(live: Any, applied: Any) -> Any:
    """Merge an applied configuration: maps merge; lists (atomic here) replace."""
    if not isinstance(applied, dict):
        return copy.deepcopy(applied)
    result = dict(live) if isinstance(live, dict) else {}
    for key, value in applied.items():
        result[key] = apply_merge(result.get(key), value) if value is not None else None
    return {k: v for k, v in result.items() if v is not None}


def _fields_v1(obj: Any) -> dict[str, Any]:
    """A managedFields `fieldsV1` set: every map key as `f:<key>`, lists and scalars as leaves."""
    if not isinstance(obj, dict):
        return {}
    return {f"f:{k}": _fields_v1(v) for k, v in obj.items()}


def managed(manager: str, operation: str, res: Resource, body: Any) -> dict[str, Any]:
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
