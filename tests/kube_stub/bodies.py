"""Request bodies: JSON, YAML, and the protobuf client-go's typed clients send.

client-go's typed clients (Helm's release storage among them) send protobuf. Only the
messages those clients write are decoded; fields the server sets itself are skipped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import yaml

from tests.kube_stub.resources import ApiError


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


def json_body(raw: bytes, content_type: str = "application/json") -> Any:
    if content_type == "application/vnd.kubernetes.protobuf":
        return _proto_body(raw)
    try:
        return json.loads(raw.decode() or "null")
    except ValueError:
        try:
            return yaml.safe_load(raw.decode())
        except yaml.YAMLError as err:
            raise ApiError(400, "BadRequest", f"error decoding body: {err}") from err
