"""Which files under secrets/ are sops-encrypted, judged from their content in sops' own
formats (YAML, JSON, dotenv, INI, binary), without running sops. Every file is read bounded
(hubfleet.files.yamlfile, hubfleet.files.jsonfile): a file past the bounds is a ConfigError
naming it, not a guess.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from hubfleet.errors import ConfigError
from hubfleet.files.jsonfile import check_json_bounds
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import MAX_BYTES, check_bounds, read_text

# Files under secrets/ that are plaintext on purpose.
EXEMPT_NAMES = frozenset({"README.md", ".gitkeep"})
EXEMPT_SUFFIXES = frozenset({".pub"})
DEMO_IDENTITY = Path("secrets/demo-insecure.agekey")

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def is_encrypted(path: Path, shown: str | None = None) -> bool:
    """Whether `path` holds a sops-encrypted document (judged from its content, sops' format).
    A file past hubfleet's bounds (size, depth, aliases: hubfleet.files.yamlfile) is a
    ConfigError naming it, not a guess."""
    shown = shown or str(path)
    if not path.is_file():
        return False
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"{shown}: {path.stat().st_size} bytes, over the limit of {MAX_BYTES}")
    try:
        text = read_text(path, shown)
    except ConfigError:  # unreadable or not UTF-8: not sops' output
        return False
    suffix = path.suffix.lower()
    if suffix == ".env":
        return any(line.startswith("sops_mac=") for line in text.splitlines())
    if suffix == ".ini":
        return _ini_has_sops_mac(text)
    if suffix in (".yaml", ".yml"):
        check_bounds(text, shown)
        try:
            docs = [d for d in yaml.load_all(text, Loader=_YamlLoader) if d is not None]
        except yaml.YAMLError:
            return False
        return bool(docs) and all(_has_sops_mac(doc) for doc in docs)
    try:  # JSON, and sops' "binary" format: JSON holding `data` and `sops`
        check_json_bounds(text, shown)
        doc = json.loads(text)
    except ValueError:
        return False
    if suffix != ".json" and not (isinstance(doc, dict) and isinstance(doc.get("data"), str)):
        return False
    return _has_sops_mac(doc)


def secret_files(repo: DeployRepo) -> list[Path]:
    """Every file under secrets/ that must be encrypted (the exempt ones left out), sorted."""
    if not repo.secrets_dir.is_dir():
        return []
    demo_identity = repo.root / DEMO_IDENTITY
    return [
        path
        for path in sorted(repo.secrets_dir.rglob("*"))
        if path.is_file()
        and path.name not in EXEMPT_NAMES
        and path.suffix not in EXEMPT_SUFFIXES
        and path != demo_identity
    ]


def check_tree(repo: DeployRepo) -> list[Path]:
    """The plaintext files under secrets/ (each one a mistake to fix before committing)."""
    return [path for path in secret_files(repo) if not is_encrypted(path, repo.relative(path))]


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
