"""pytest plugin: a real DNS server (dnsmasq, Debian package `dnsmasq`) on loopback.

`dns_server` runs dnsmasq on 127.0.0.1 at a free port, answering only the records a test asks
for (no upstream, no /etc/hosts, no config file), and kills it at teardown. The test's first
`dns_server.serve(*options)` starts it, a later one restarts it (same port) with other records;
options are dnsmasq flags, and the helpers below spell the usual zone shapes:

- `zone(domain, ip)`: the domain AND every name under it (`--address=/domain/ip`; other record
  types are NODATA),
- `apex_only(domain, ip)`: the domain alone; names under it are NXDOMAIN (no wildcard),
- `wildcard_only(domain, ip)`: names under the domain only (`--address=/*.domain/ip`),
- `nxdomain(domain)`: the domain and everything under it do not exist.

Names outside every configured domain are REFUSED (dnsmasq has no upstream). Every query the
server saw since its last start is in `dns_server.queries()` (from its --log-queries log, less
the readiness probe, a CHAOS TXT version.bind). Skips with one reason when dnsmasq is not
installed. Register with `pytest_plugins = ["tests.conftest_dns"]` (in tests/conftest.py, so
that test modules importing the helpers get it assertion-rewritten first).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 5.0


def find_dnsmasq() -> str | None:
    return shutil.which("dnsmasq") or next(
        (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (dnsmasq listens on both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1 for both UDP and TCP")


def zone(domain: str, ip: str) -> list[str]:
    # --local: other record types (AAAA for an IPv4 zone) are NODATA, not REFUSED
    return [f"--local=/{domain}/", f"--address=/{domain}/{ip}"]


def apex_only(domain: str, ip: str) -> list[str]:
    return [f"--local=/{domain}/", f"--host-record={domain},{ip}"]


def wildcard_only(domain: str, ip: str) -> list[str]:
    return [f"--local=/{domain}/", f"--address=/*.{domain}/{ip}"]


def nxdomain(domain: str) -> list[str]:
    return [f"--address=/{domain}/"]


class DnsServer:
    """One dnsmasq process on 127.0.0.1:`port`, restartable with other records."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = HOST
        self.port = free_port()
        self.log = workdir / "dnsmasq.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def resolver(self) -> str:
        """What --resolver / HUBFLEET_DNS_RESOLVER take to reach this server."""
        return f"{self.host}:{self.port}"

    def command(self, options: list[str]) -> list[str]:
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        return [
            self.binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={self.port}",
            f"--listen-address={self.host}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--cache-size=0",
            f"--user={user}",  # stay who we are: no switch to nobody/dnsmasq when root
            f"--group={group}",
            f"--pid-file={self.workdir / 'dnsmasq.pid'}",
            f"--log-facility={self.log}",
            "--log-queries",
            *options,
        ]

    def serve(self, *options: str) -> DnsServer:
        """(Re)start dnsmasq with these flags and wait until it answers."""
        self.stop()
        self.log.write_text("")
        stderr = self.workdir / "dnsmasq.stderr"
        with stderr.open("wb") as err:
            self.process = subprocess.Popen(
                self.command(list(options)), stdout=subprocess.DEVNULL, stderr=err
            )
        self._wait_ready(stderr)
        return self

    restart = serve

    def _wait_ready(self, stderr: Path) -> None:
        import dns.exception
        import dns.message
        import dns.query

        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = dns.message.make_query("version.bind.", "TXT", "CH")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dnsmasq exited with {self.process.returncode}: "
                    f"{stderr.read_text().strip() or self.log.read_text().strip()}"
                )
            with contextlib.suppress(dns.exception.Timeout, OSError):
                dns.query.udp(probe, self.host, port=self.port, timeout=0.05)
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dnsmasq did not answer on {self.resolver} in {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def queries(self) -> list[str]:
        """`TYPE name` for every query the server saw since the last (re)start."""
        seen = []
        for line in self.log.read_text().splitlines():
            _, marker, rest = line.partition(": query[")
            if marker and "] version.bind from" not in rest:  # not the readiness probe
                rdtype, _, tail = rest.partition("] ")
                seen.append(f"{rdtype} {tail.split(' from ', 1)[0]}")
        return seen


@pytest.fixture
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsServer]:
    """dnsmasq on 127.0.0.1:`port`, started by the test's first `.serve(...)` with its records."""
    binary = find_dnsmasq()
    if binary is None:
        pytest.skip("dnsmasq is not installed (apt-get install --no-install-recommends dnsmasq)")
    server = DnsServer(binary, tmp_path_factory.mktemp("dnsmasq"))
    try:
        yield server
    finally:
        server.stop()
