"""The SSH adapter on real sshd hosts: logging in (every key on one connection, keys given
late), a command in one round trip, and changes queued for the host's next command.

Real: sshd in the lab's network namespaces, paramiko, the hosts' sh and coreutils; the delay
proxy (tests/harness_proxy.py) for round trips."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hubfleet.errors import LaterChangeFailed
from hubfleet.hosts.hostkeys import PinnedHostKeys, fingerprint
from hubfleet.hosts.login import connect
from hubfleet.hosts.ssh import HostSession, KeyRefusedError, new_ed25519_key, private_key_from_text
from hubfleet.registry.members import Host
from tests.harness import HostLab, TestHost


def session_to(
    lab: HostLab, host: TestHost, tmp_path: Path, route: tuple[str, int] | None = None, keys=None
) -> HostSession:
    known = tmp_path / "known_hosts"
    known.write_text(host.host_key_line + "\n")
    address, port = route or (None, None)
    return connect(
        "m",
        Host(host.address),
        keys if keys is not None else [lab.client_key],
        PinnedHostKeys(known),
        timeout_s=5,
        address=address,
        port=port,
    )


def stranger_key() -> object:
    private, _ = new_ed25519_key("nobody")
    return private_key_from_text(private, "stranger")


def test_every_key_is_tried_on_one_connection_and_a_refusal_names_them(
    host_lab: HostLab, lab_host: TestHost, tmp_path: Path
) -> None:
    stranger = stranger_key()
    session = session_to(host_lab, lab_host, tmp_path, keys=[stranger, host_lab.client_key])
    try:
        assert session.run("echo in").stdout == "in\n"
    finally:
        session.close()
    # given late (a callable, as the member's key decrypted while connecting)
    late = session_to(host_lab, lab_host, tmp_path, keys=lambda: [host_lab.client_key])
    late.close()
    other = stranger_key()
    with pytest.raises(KeyRefusedError) as refused:
        session_to(host_lab, lab_host, tmp_path, keys=[stranger, other])
    assert f"refused keys {fingerprint(stranger)}, {fingerprint(other)} for user root" in str(
        refused.value
    )


def test_a_command_costs_one_round_trip_once_connected(
    host_lab: HostLab, lab_host: TestHost, tmp_path: Path
) -> None:
    rtt_s = 0.15
    route = host_lab.latency_proxy(lab_host, rtt_s * 1000)
    session = session_to(host_lab, lab_host, tmp_path, route)

    def each(stdin: bool) -> float:
        started = time.monotonic()
        for i in range(4):
            got = session.run("cat" if stdin else f"echo {i}", stdin=f"{i}\n" if stdin else None)
            assert got.stdout == f"{i}\n"
        return (time.monotonic() - started) / 4

    try:
        session.run("true")
        plain, with_stdin = each(stdin=False), each(stdin=True)
    finally:
        session.close()
    # opening a channel, the exec request's answer, then the output were three round trips
    assert rtt_s * 0.9 < plain < rtt_s * 1.8, plain
    # sshd opens a session's input window only once its command runs: stdin waits for that
    assert rtt_s * 1.8 < with_stdin < rtt_s * 2.8, with_stdin
    assert session.commands == 9


def test_queued_changes_run_first_each_with_its_own_stdin(
    host_lab: HostLab, lab_host: TestHost, tmp_path: Path
) -> None:
    session = session_to(host_lab, lab_host, tmp_path)
    try:
        session.owned_by("first")
        session.write_file("/tmp/q/one", "ünïcode\n", 0o600, later=True)
        session.owned_by("second")
        session.later("echo done > /tmp/q/two")  # reads no stdin
        session.write_files([("/tmp/q/three", "3" * 70000, 0o644)], later=True)
        assert session.pending() == ["first", "second"]
        assert not lab_host.exists("/tmp/q/one")  # nothing sent yet
        out = session.run("cat; cat /tmp/q/two", stdin="the command's own\n")
        assert session.pending() == []
    finally:
        session.close()
    assert out.stdout == "the command's own\ndone\n"
    assert lab_host.read("/tmp/q/one") == "ünïcode\n"
    assert lab_host.read("/tmp/q/three") == "3" * 70000
    assert lab_host.run("stat -c %a /tmp/q/one", check=True).stdout.strip() == "600"
    assert session.commands == 1


def test_a_queued_change_that_fails_names_its_step_and_stops_what_follows(
    host_lab: HostLab, lab_host: TestHost, tmp_path: Path
) -> None:
    session = session_to(host_lab, lab_host, tmp_path)
    try:
        session.owned_by("a")
        session.write_file("/tmp/f/a", "a", later=True)
        session.owned_by("b")  # set -e inside a queued change still holds
        session.later("set -e; false; echo no > /tmp/f/b-ran", what="doing b")
        session.owned_by("c")
        session.write_file("/tmp/f/c", "c", later=True)
        with pytest.raises(LaterChangeFailed) as failed:
            session.run("echo no > /tmp/f/command-ran")
        assert failed.value.step == "b"
        assert "command failed while doing b (exit 1)" in str(failed.value)
        assert session.pending() == []
        session.owned_by(None)
        session.later("echo now > /tmp/f/at-once")  # outside a step run: at once
        assert lab_host.read("/tmp/f/at-once") == "now\n"
    finally:
        session.close()
    assert lab_host.read("/tmp/f/a") == "a"
    for never in ("/tmp/f/b-ran", "/tmp/f/c", "/tmp/f/command-ran"):
        assert not lab_host.exists(never), never


def test_logging_in_and_a_first_command_take_about_four_round_trips(
    host_lab: HostLab, lab_host: TestHost, tmp_path: Path
) -> None:
    """Banners, key exchange, then the service request, the signed login and the first
    channel's request in one flight (RFC 4252 5.1), then the command: paramiko's own
    auth_publickey waits for the service's acceptance, and the channel for the login."""
    rtt_s = 0.2
    route = host_lab.latency_proxy(lab_host, rtt_s * 1000)
    session_to(host_lab, lab_host, tmp_path, route).close()  # the host's neighbour entry warm
    started = time.monotonic()
    session = session_to(host_lab, lab_host, tmp_path, route)
    try:
        assert session.run("echo in").stdout == "in\n"
    finally:
        session.close()
    took = time.monotonic() - started
    # measured here: 4.4 round trips (6.2 with paramiko's own login and channel opening)
    assert took < rtt_s * 5.2, took
