"""Removing what test-host labs made (see tests/harness.py): killing their processes by network
namespace, detaching their loop devices, and clearing what labs of killed test runs left behind
(processes, loop devices, veths, namespaces, bridges, temp dirs)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.harness_net import NETNS_PREFIX, _pids_in, _run


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(namespace_ids: set[str], children: Iterable[subprocess.Popen[Any]]) -> list[int]:
    """SIGKILL everything in the namespaces until nothing is left (bounded: ~3 s); returns
    what could not be killed."""
    children = list(children)
    left: list[int] = []
    deadline = time.monotonic() + 3.0
    for _ in range(300):
        left = _pids_in(namespace_ids) if namespace_ids else []
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(Exception):
                child.poll()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for child in children:
        with contextlib.suppress(Exception):
            child.wait(timeout=1.0)
    return _pids_in(namespace_ids) if namespace_ids else []


# --- loop devices ----------------------------------------------------------------------------


LOOP_GET_STATUS64 = 0x4C05


def _loop_backing(device: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file a loop device serves, or None when it serves none.

    Asked with the LOOP_GET_STATUS64 ioctl: sysfs's loop/backing_file vanishes for moments
    while other loop devices change, so it cannot tell "detached" from "busy elsewhere".
    """
    import struct

    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(232))
    except OSError:
        return None  # ENXIO: not bound
    finally:
        os.close(fd)
    lo_device, lo_inode = struct.unpack_from("=QQ", info)
    return lo_device, lo_inode


def _loops_of(images: Iterable[Path]) -> list[tuple[str, Path]]:
    """The loop devices serving any of `images` now, as (device, image)."""
    wanted = {}
    for image in images:
        with contextlib.suppress(OSError):
            st = os.stat(image)
            wanted[(st.st_dev, st.st_ino)] = image
    if not wanted:
        return []
    found = []
    for name in sorted(os.listdir("/sys/block")):
        if re.fullmatch(r"loop\d+", name):
            served = wanted.get(_loop_backing(f"/dev/{name}") or (-1, -1))
            if served is not None:
                found.append((f"/dev/{name}", served))
    return found


def _detach_images(images: Iterable[Path]) -> list[str]:
    """Detach every loop device serving one of `images` (a busy one detaches on its last
    close, so wait for that: bounded, 5 s)."""
    images = list(images)
    deadline = time.monotonic() + 5.0
    asked: set[str] = set()
    left = _loops_of(images)
    while left and time.monotonic() < deadline:
        for device, _ in left:
            if device not in asked:
                _run(["losetup", "-d", device], check=False)
                asked.add(device)
        time.sleep(0.01)
        left = _loops_of(images)
    return [f"loop device {device} still attached to {image}" for device, image in left]


# --- labs of killed runs ---------------------------------------------------------------------


def cleanup_stale_labs() -> list[str]:
    """Remove what labs of processes that no longer run left behind (a killed test run): their
    processes (found by namespace), loop devices, veths, namespaces, bridges. Labs of running
    processes are never touched. Returns what was removed."""
    removed: list[str] = []
    netns_dir = Path("/run/netns")
    stale_ns = []
    if netns_dir.is_dir():
        for entry in netns_dir.iterdir():
            match = re.fullmatch(rf"{NETNS_PREFIX}(\d+)-(\d+)-(\d+)", entry.name)
            if match and not _pid_alive(int(match.group(1))):
                stale_ns.append(entry)
    if stale_ns:
        ids = set()
        for entry in stale_ns:
            with contextlib.suppress(OSError):
                ids.add(f"net:[{entry.stat().st_ino}]")
        _kill_all(ids, [])
        for entry in stale_ns:
            _run(["ip", "netns", "del", entry.name], check=False)
            removed.append(f"netns {entry.name}")
    links = json.loads(_run(["ip", "-j", "link", "show"], check=False).stdout or "[]")
    for link in links:
        match = re.fullmatch(r"hf[bv]([0-9a-z]+)-([0-9a-z]+)(-[0-9a-z]+)?", link.get("ifname", ""))
        stale = match and not _pid_alive(int(match.group(1), 36))
        if stale and _run(["ip", "link", "del", link["ifname"]], check=False).returncode == 0:
            removed.append(f"link {link['ifname']}")
    tmp = Path(tempfile.gettempdir())
    for lab_dir in tmp.glob("hubfleet-lab-*-*-*"):
        match = re.match(r"hubfleet-lab-(\d+)-", lab_dir.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        images = list((lab_dir / "disks").glob("*.img"))
        removed += [f"loop {device}" for device, _ in _loops_of(images)]
        _detach_images(images)
        shutil.rmtree(lab_dir, ignore_errors=True)
        removed.append(f"dir {lab_dir}")
    return removed
