"""k3s in one wave (issue 16): the member's cluster token is chosen once and kept encrypted, so
an agent installs while (or before) its server does and joins when the server answers.

Real: sshd, paramiko, sops/age, the shell on the hosts. Stand-ins: k3s and its install script,
whose agent (a Type=exec unit, as get.k3s.io writes it) keeps trying its server, bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.hosts import ssh
from hubfleet.hosts.member_run import BootstrapOptions
from hubfleet.hosts.steps import CHANGED, OK, StepFailed
from hubfleet.k3s import token as k3s_token
from hubfleet.secrets import sops
from tests.conftest_repo import MakeRepo
from tests.harness import HostLab, TestHost
from tests.test_k3s_bootstrap import bootstrap, k3s_repo, lab_hosts, options, states

__all__ = ["lab_hosts"]  # the fixture, used by name

SERVER_TOKEN = "/var/lib/rancher/k3s/server/token"


def stored_token(repo: Any) -> str:
    return str(sops.decrypt_yaml(repo, repo.member_k3s_token("edge"))["token"])


def registered(server: TestHost) -> set[str]:
    listing = server.run("k3s kubectl get nodes -o name", check=False).stdout
    return {line.removeprefix("node/") for line in listing.split()}


def every_file_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


@pytest.fixture
def sent_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every command line hubfleet sends over SSH (each is `sh -c` argv on its host)."""
    sent: list[str] = []
    real = ssh.HostSession._exec

    def record(self: Any, command: str, stdin: str | None) -> tuple[int, str, str]:
        sent.append(command)
        return real(self, command, stdin)

    monkeypatch.setattr(ssh.HostSession, "_exec", record)
    return sent


def test_an_agent_installed_before_its_server_joins_once_the_server_answers(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    server, agent = lab_hosts(2)
    repo = k3s_repo(deploy_repo, host_lab, [server, agent])

    # the agent alone first: installed (with the token hubfleet chose), its server not there
    with pytest.raises(StepFailed) as early:
        bootstrap(repo, options(host_lab, only_host=agent.address, ready_timeout_s=1))
    assert str(early.value).startswith(
        f"member edge: the server at https://{server.address}:6443 did not answer within 1s"
    )
    (install,) = agent.calls("install.sh")
    assert install["env"]["K3S_URL"] == f"https://{server.address}:6443"
    assert install["env"]["K3S_TOKEN"] == "<hidden>"
    assert agent.unit("k3s-agent")["active"] == "active"  # it keeps trying its server
    assert not server.exists("/usr/local/bin/k3s")
    assert sops.is_encrypted(repo.member_k3s_token("edge"))
    token = stored_token(repo)

    # then the server: the waiting agent joins as soon as it answers, without a reinstall
    later = bootstrap(repo, options(host_lab, only_host=server.address))
    assert states(later)[(server.address, "cluster-token")] == OK  # the stored one, kept
    assert states(later)[(server.address, "k3s-install")] == CHANGED
    deadline = time.monotonic() + 15
    while agent.name not in registered(server):
        assert time.monotonic() < deadline, "the agent never joined"
        time.sleep(0.2)
    assert len(agent.calls("install.sh")) == 1
    assert stored_token(repo) == token
    secret = (server.read(SERVER_TOKEN) or "").strip().rsplit(":", 1)[1]
    assert secret == token  # the server runs with the token hubfleet chose

    whole = bootstrap(repo, BootstrapOptions(connect_timeout_s=3, ready_timeout_s=10))
    assert {s for s in states(whole).values()} == {OK}
    assert next(r for r in whole if r.step == "ready").detail.startswith("2 node(s) Ready")


def test_the_token_is_generated_once_kept_encrypted_and_never_shown(
    deploy_repo: MakeRepo,
    host_lab: HostLab,
    lab_hosts: Callable[..., list[TestHost]],
    capfd: pytest.CaptureFixture[str],
    sent_commands: list[str],
) -> None:
    hosts = lab_hosts(3)
    server, *agents = hosts
    repo = k3s_repo(deploy_repo, host_lab, hosts)
    path = repo.member_k3s_token("edge")
    lines: list[str] = []
    first = bootstrap(repo, options(host_lab), lines)
    step = next(r for r in first if r.step == "cluster-token")
    assert (step.host, step.state) == (server.address, CHANGED)
    assert step.detail == "generated a new token; stored it encrypted in secrets/edge-k3s.yaml"
    for agent in agents:  # every host installed in the same wave
        assert states(first)[(agent.address, "join")] == CHANGED
    assert next(r for r in first if r.step == "ready").detail.startswith("3 node(s) Ready")

    assert sops.is_encrypted(path)
    token = stored_token(repo)
    assert len(token) == 64
    config = yaml.safe_load(server.read("/etc/rancher/k3s/config.yaml") or "")
    assert config["token"] == token
    assert server.run("stat -c %a /etc/rancher/k3s/config.yaml").stdout.strip() == "600"
    for agent in agents:
        agent_config = yaml.safe_load(agent.read("/etc/rancher/k3s/config.yaml") or "") or {}
        assert "token" not in agent_config  # agents have it in their unit's 0600 env file

    # a rerun: the same token, the file not rewritten, nothing changed, 1 command a host
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    commands: dict[str, int] = {}
    from hubfleet.k3s import bootstrap as k3s_bootstrap

    again = k3s_bootstrap.bootstrap(
        repo,
        "edge",
        BootstrapOptions(connect_timeout_s=3, ready_timeout_s=10),
        say=lines.append,
        commands=commands,
    )
    assert {r.state for r in again} == {OK}
    assert set(commands.values()) == {1}
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert stored_token(repo) == token

    # never shown: not in any output, any report, any command line sent, any stand-in's argv,
    # nor in plaintext anywhere in the repository
    captured = capfd.readouterr()
    assert token not in "\n".join(lines) + captured.out + captured.err
    assert all(token not in repr(r) for r in [*first, *again])
    assert sent_commands and all(token not in command for command in sent_commands)
    for host in hosts:
        assert all(token not in " ".join(call["argv"]) for call in host.calls())
        assert all(token not in str(call["env"]) for call in host.calls())
    assert token not in every_file_text(repo.root)


def test_a_running_servers_token_is_adopted_without_a_restart_and_must_match_later(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    server, agent = lab_hosts(2)
    repo = k3s_repo(deploy_repo, host_lab, [server, agent])
    bootstrap(repo, options(host_lab))
    # as an earlier hubfleet left it: no token in the repo, none in the server's config
    repo.member_k3s_token("edge").unlink()
    config = yaml.safe_load(server.read("/etc/rancher/k3s/config.yaml") or "")
    del config["token"]
    server.write("/etc/rancher/k3s/config.yaml", yaml.safe_dump(config), mode=0o600)
    restarts = server.unit("k3s").get("restarts", 0)
    on_server = (server.read(SERVER_TOKEN) or "").strip()

    adopted = bootstrap(repo, options(host_lab))
    step = next(r for r in adopted if r.step == "cluster-token")
    assert step.state == CHANGED
    assert step.detail == (
        f"adopted the token k3s on {server.address} runs with; stored it encrypted in "
        "secrets/edge-k3s.yaml"
    )
    assert stored_token(repo) == on_server
    assert states(adopted)[(server.address, "k3s-config")] == CHANGED  # the token written down
    assert states(adopted)[(server.address, "k3s-install")] == OK  # and k3s not restarted
    assert server.unit("k3s").get("restarts", 0) == restarts
    assert {states(adopted)[(agent.address, s)] for s in ("k3s-config", "join")} == {OK}

    # a token in the repo that is not the server's is refused, naming both, before any change
    sops.write_encrypted(repo, repo.member_k3s_token("edge"), "token: " + "f" * 64 + "\n")
    with pytest.raises(StepFailed, match=r"the cluster token in secrets/edge-k3s.yaml is not"):
        bootstrap(repo, options(host_lab))
    assert (server.read(SERVER_TOKEN) or "").strip() == on_server


def test_a_dry_run_chooses_no_token_and_stores_nothing(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    reports = bootstrap(repo, options(host_lab, dry_run=True))
    step = next(r for r in reports if r.step == "cluster-token")
    assert step.detail == (
        "would generate a new token and store it encrypted in secrets/edge-k3s.yaml"
    )
    assert not repo.member_k3s_token("edge").exists()


def test_choose_is_pure_and_checks_the_servers_token() -> None:
    full = "K10" + "a" * 64 + "::server:" + "b" * 32
    stored = k3s_token.choose("m", "b" * 32, full, "10.0.0.1", "", "secrets/m-k3s.yaml")
    assert (stored.value, stored.source) == ("b" * 32, "stored")
    assert "b" * 32 not in repr(stored)
    adopted = k3s_token.choose("m", None, full, "10.0.0.1", "", "secrets/m-k3s.yaml")
    assert (adopted.value, adopted.source) == (full, "adopted")
    fresh = k3s_token.choose("m", None, None, "10.0.0.1", "c" * 64, "secrets/m-k3s.yaml")
    assert (fresh.value, fresh.source) == ("c" * 64, "generated")
    with pytest.raises(Exception, match=r"not the one server 10\.0\.0\.1 runs with"):
        k3s_token.choose("m", "d" * 32, full, "10.0.0.1", "", "secrets/m-k3s.yaml")
