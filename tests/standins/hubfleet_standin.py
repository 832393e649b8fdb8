"""What every stand-in on a test host shares: where state lives, how calls are recorded.

Stand-ins run with the system python (/usr/bin/python3 -S: stdlib only, so the site module and
its .pth files, 25-40 ms a start here, are skipped) inside a test host built by
tests/harness.py. They find this module at /run/hubfleet-standins (the lab binds it there) or
beside themselves.

- State: /var/lib/hubfleet-standin (a private tmpfs of the host).
- Calls: one JSON line per call in /var/lib/hubfleet-standin/calls.log: tool (the name it was
  called by), argv (without the program), env (INSTALL_K3S_* and K3S_* values; K3S_TOKEN and
  other secrets only as "<hidden>"), uid, sudo_user, cwd, time, pid.
- The host: /run/hubfleet-host/host.json ({"name", "address"}); its lab options (time_synced,
  cpus, node_ready, ...) in /var/lib/hubfleet-lab/hosts/<name>/host.json, which the harness
  may change while the host runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time

TYPE_CHECKING = False  # typing costs a stand-in's start some milliseconds: not imported to run
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

STATE = "/var/lib/hubfleet-standin"
CALLS = STATE + "/calls.log"
HOST_INFO = "/run/hubfleet-host/host.json"
SHARED = "/var/lib/hubfleet-lab"
SECRET_ENV = {"K3S_TOKEN", "K3S_AGENT_TOKEN", "K3S_CLUSTER_SECRET", "K3S_DATASTORE_ENDPOINT"}
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# the answer files of the sh fast paths (hubfleet_standin.sh)
ANSWERS = STATE + "/answers"
_ANSWER_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@:-")


def lazy(name: str) -> Any:
    """The module `name`, loaded at its first use: a stand-in call that never needs it does
    not pay for importing it (Python's start is most of what a stand-in call costs)."""
    if name in sys.modules:
        return sys.modules[name]
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def recorded_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if env is None else env
    out = {}
    for key, value in sorted(source.items()):
        if key.startswith(("INSTALL_K3S_", "K3S_")):
            out[key] = "<hidden>" if key in SECRET_ENV else value
    return out


def record(tool: str | None = None, argv: list[str] | None = None, **extra: object) -> None:
    """Append this call to calls.log (never fails the stand-in: a full disk only warns)."""
    entry = {
        "tool": tool or os.path.basename(sys.argv[0]),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "env": recorded_env(),
        "uid": os.geteuid(),
        "sudo_user": os.environ.get("SUDO_USER"),
        "cwd": _cwd(),
        "time": round(time.time(), 3),
        "pid": os.getpid(),
    }
    entry.update(extra)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(CALLS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as err:
        print(
            f"hubfleet stand-in: cannot record the call in {CALLS}: {err.strerror}", file=sys.stderr
        )


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""


def host_info() -> dict[str, Any]:
    return read_json(HOST_INFO, {})


def host_name() -> str:
    return str(host_info().get("name") or os.uname().nodename)


def options(name: str | None = None) -> dict[str, Any]:
    """The lab's options for a host (this one by default)."""
    return read_json(f"{SHARED}/hosts/{name or host_name()}/host.json", {})


def read_json(path: str, default: Any) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def write_file(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Write atomically (temp file + rename), making parent dirs."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.standin-{os.getpid()}"
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: str, value: object, mode: int = 0o644) -> None:
    write_file(path, json.dumps(value, indent=1, sort_keys=True) + "\n", mode)


@contextlib.contextmanager
def locked(name: str):
    """An exclusive lock shared by every stand-in process on this host."""
    os.makedirs(STATE, exist_ok=True)
    with open(f"{STATE}/{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def is_root() -> bool:
    return os.geteuid() == 0


def mirror_unit(unit: str, state: dict[str, Any]) -> None:
    """Publish a unit's state where the other hosts of the lab can see it (k3s nodes)."""
    directory = f"{SHARED}/hosts/{host_name()}/units"
    if os.path.isdir(directory):
        with contextlib.suppress(OSError):
            write_json(f"{directory}/{unit}.json", state)


def unit_state_elsewhere(host: str, unit: str) -> dict[str, Any]:
    return read_json(f"{SHARED}/hosts/{host}/units/{unit}.json", {})


# --- the answer files of the sh fast paths (hubfleet_standin.sh) ---------------------------------


def answer_line(value: object) -> str | None:
    """A value as an answer file holds it (one non-empty line), None when it cannot be one."""
    if not isinstance(value, str) or not value or "\n" in value:
        return None
    return value + "\n"


def write_answer(path: str, text: str | None) -> None:
    """Keep one answer file: `text`, or no file when None (the sh then runs the Python).
    Never fails the stand-in: a caller without the rights leaves it as it is."""
    with contextlib.suppress(OSError):
        if text is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            write_file(path, text)


def write_answer_set(name: str, values: Mapping[str, object]) -> None:
    """ANSWERS/NAME/KEY (one line: the value) for every key, other files there removed, and
    the marker ANSWERS/NAME.ok saying the set is whole; without a marker the sh runs the Python.
    Keys the sh never asks for (outside [A-Za-z0-9_.@:-], or starting with . or -) get no file."""
    marker = f"{ANSWERS}/{name}.ok"
    directory = f"{ANSWERS}/{name}"
    try:
        texts = {}
        for key, value in values.items():
            if not key or key[0] in ".-" or not set(key) <= _ANSWER_NAME:
                continue
            text = answer_line(value)
            if text is None:
                raise ValueError(key)
            texts[key] = text
        os.makedirs(directory, exist_ok=True)
        for entry in os.listdir(directory):
            if entry not in texts:
                os.unlink(os.path.join(directory, entry))
        for key, text in texts.items():
            write_file(os.path.join(directory, key), text)
        if not os.path.exists(marker):
            write_file(marker, "")
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(marker)


def has_answers(name: str) -> bool:
    return os.path.exists(f"{ANSWERS}/{name}.ok")
