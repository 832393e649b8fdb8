"""Rendered Kubernetes manifests as data: split, counted by kind, and compared.

Pure functions. Secret objects never show their data: in a diff each key of a Secret's
`data`/`stringData` is replaced by a fingerprint, so an operator sees *that* a secret changed
without seeing it.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hubfleet.errors import RenderError

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

ObjectKey = tuple[str, str, str]  # kind, namespace, name


@dataclass(frozen=True)
class ObjectChange:
    """How one object differs between the live release and the new render."""

    kind: str
    namespace: str
    name: str
    change: str  # added | removed | changed
    diff: tuple[str, ...]

    @property
    def label(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def split_manifest(text: str) -> list[tuple[int, str]]:
    """The documents of one rendered template as Helm makes them (releaseutil's
    SplitManifests): split where a `---` starts a line, whatever follows it (cert-manager
    renders `---# comment`, which a YAML parser would read as one broken document), each
    trimmed and ended with one newline, as Helm writes it into the release's manifest and so
    as the API server receives it. Each comes with the line (from 0) it starts on in `text`."""
    docs: list[tuple[int, str]] = []
    start = 0
    for match in _HELM_SEPARATOR.finditer(text):
        docs.append((start, text[start : match.start()]))
        start = match.end()
    docs.append((start, text[start:]))
    return [
        (text.count("\n", 0, at + len(doc) - len(doc.lstrip())), doc.strip() + "\n")
        for at, doc in docs
        if doc.strip()
    ]


_HELM_SEPARATOR = re.compile(r"(?:^|\s*\n)---\s*")


def split_stream(text: str) -> list[str]:
    """The documents of a whole release manifest as the Kubernetes client Helm installs with
    splits them (apimachinery's YAMLReader): a line that starts with `---` and has nothing
    after it but blanks or a comment ends a document."""
    docs: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        rest = line[3:].strip()
        if line.startswith("---") and (not rest or rest.startswith("#")):
            docs.append("".join(current))
            current = []
        else:
            current.append(line)
    docs.append("".join(current))
    return [doc for doc in docs if doc.strip()]


def parse_manifests(texts: Iterable[str] | Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the given YAML, in order (empty documents dropped): a
    mapping of template name to rendered text is split as Helm splits templates, and a
    template that renders to invalid YAML is a RenderError naming the template and the line;
    whole manifests (a live release's) are split as the Kubernetes client splits them.
    """
    named = (
        [(name, split_manifest(text), text) for name, text in texts.items()]
        if isinstance(texts, Mapping)
        else [("manifest", [(0, d) for d in split_stream(t)], t) for t in texts]
    )
    objects: list[dict[str, Any]] = []
    for name, docs, text in named:
        for first, doc in docs:
            try:
                loaded = yaml.load(doc, Loader=_Loader)
            except yaml.MarkedYAMLError as err:
                mark = err.context_mark or err.problem_mark  # where the broken construct starts
                # an error at the very end is on the last line, not one past it
                last = max(1, len(text.splitlines()))
                where = f"{name}:{min(first + mark.line + 1, last)}" if mark else name
                raise RenderError(f"{where}: rendered to invalid YAML: {err.problem}") from None
            if isinstance(loaded, dict) and loaded.get("kind"):
                objects.append(loaded)
    return objects


def object_key(obj: Mapping[str, Any], default_namespace: str) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("kind")),
        str(meta.get("namespace") or default_namespace),
        str(meta.get("name")),
    )


def count_by_kind(objects: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many objects of each kind, most frequent first, then by name."""
    counts = Counter(str(o.get("kind")) for o in objects)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# Keyed per process: equal values still match within one diff, but a fingerprint printed in a
# log cannot be checked against guessed passwords offline.
_FINGERPRINT_KEY = secrets.token_bytes(32)


def _fingerprint(value: Any) -> str:
    digest = hmac.new(_FINGERPRINT_KEY, str(value).encode(), hashlib.sha256).hexdigest()[:12]
    return f"<secret hmac:{digest}>"


def masked_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` safe to print: a Secret's values become fingerprints."""
    out = dict(obj)
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(obj.get(field), Mapping):
                out[field] = {k: _fingerprint(v) for k, v in obj[field].items()}
    return out


def _text(obj: Mapping[str, Any]) -> list[str]:
    return yaml.safe_dump(masked_object(obj), sort_keys=True).splitlines()


def is_hook(obj: Mapping[str, Any]) -> bool:
    """A Helm hook (a test Pod, a post-install Job): run by Helm around an install or upgrade,
    never part of the release's manifest, so never part of its diff."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return "helm.sh/hook" in annotations


def diff_objects(
    live: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]], namespace: str
) -> list[ObjectChange]:
    """The objects added, removed or changed from `live` to `new`, in a stable order (Helm's
    hooks left out: the live release's manifest has none)."""
    before = {object_key(o, namespace): o for o in live if not is_hook(o)}
    after = {object_key(o, namespace): o for o in new if not is_hook(o)}
    changes: list[ObjectChange] = []
    for key in sorted(before.keys() | after.keys()):
        kind, ns, name = key
        old_lines = _text(before[key]) if key in before else []
        new_lines = _text(after[key]) if key in after else []
        if old_lines == new_lines:
            continue
        change = "added" if key not in before else "removed" if key not in after else "changed"
        if change != "changed":  # a whole new or gone object is named, not printed
            changes.append(ObjectChange(kind, ns, name, change, ()))
            continue
        diff = tuple(
            difflib.unified_diff(
                old_lines, new_lines, f"live {kind} {name}", f"new {kind} {name}", lineterm="", n=2
            )
        )
        changes.append(ObjectChange(kind, ns, name, change, diff))
    return changes
