"""Recognising a sops-encrypted file from its content, in each of sops' formats (YAML, JSON,
dotenv, INI, and "binary": JSON holding `data`). Read only; sops itself is run by
hubfleet.secrets.sops, which re-exports `is_encrypted`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def is_encrypted(path: Path) -> bool:
    """Whether `path` holds a sops-encrypted document (judged from its content, sops' format)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    suffix = path.suffix.lower()
    if suffix == ".env":
        return any(line.startswith("sops_mac=") for line in text.splitlines())
    if suffix == ".ini":
        return _ini_has_sops_mac(text)
    if suffix in (".yaml", ".yml"):
        try:
            docs = [d for d in yaml.load_all(text, Loader=_YamlLoader) if d is not None]
        except yaml.YAMLError:
            return False
        return bool(docs) and all(_has_sops_mac(doc) for doc in docs)
    try:  # JSON, and sops' "binary" format: JSON holding `data` and `sops`
        doc = json.loads(text)
    except ValueError:
        return False
    if suffix != ".json" and not (isinstance(doc, dict) and isinstance(doc.get("data"), str)):
        return False
    return _has_sops_mac(doc)


def _has_sops_mac(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("sops"), dict) and "mac" in doc["sops"]


def _ini_has_sops_mac(text: str) -> bool:
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        elif section == "sops" and re.match(r"mac\s*=", stripped):
            return True
    return False
