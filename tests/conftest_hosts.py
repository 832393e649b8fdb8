"""pytest plugin: test hosts (tests/harness.py) as fixtures.

Registered with `pytest_plugins = ["tests.conftest_hosts"]`. Every fixture skips the test, with
the one reason `skip_reason()` gives, where hosts cannot run (not root, no `ip netns`); it never
falls back to other addresses. Everything is torn down after the test, also when it fails.

- `host_lab`: an empty HostLab (its bridge and keys, no host yet); `host_lab.add_host(name,
  **options)` adds hosts, see HostOptions (user, mem_gb, cpus, os_release, disk_gb, tmpfs_mb,
  time_synced, standins, node_ready, node_ready_delay_s).
- `hosts`: `hosts(n, **options) -> list[TestHost]`, n more hosts in the test's lab.
- `lab_host`: one host with default options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness import HostLab, TestHost, skip_reason


@pytest.fixture
def host_lab() -> Iterator[HostLab]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    lab = HostLab()
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


@pytest.fixture
def hosts(host_lab: HostLab) -> Callable[..., list[TestHost]]:
    """`hosts(n, **options)`: n new hosts (host1, host2, ...) in this test's lab."""

    def make(n: int = 1, **options: Any) -> list[TestHost]:
        return [host_lab.add_host(**options) for _ in range(n)]

    return make


@pytest.fixture
def lab_host(host_lab: HostLab) -> TestHost:
    """One test host with default options."""
    return host_lab.add_host()
