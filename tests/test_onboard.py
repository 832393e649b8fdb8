"""member.onboard end to end on a harness host: stand-in k3s, a real S3 server (SeaweedFS), a
real DNS server (dnsmasq), the real Helm SDK deploying to the stub Kubernetes API."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.members.onboarding import (
    STEPS,
    OnboardHooks,
    OnboardingFailed,
    OnboardOptions,
    load_progress,
)
from hubfleet.members.onboarding_steps import onboard
from hubfleet.secrets import sops
from tests.conftest_dns import nxdomain, zone
from tests.conftest_kube import credentials_for
from tests.conftest_repo import MakeRepo
from tests.harness import HostLab
from tests.kube_stub import KubeStub

PROJECT = Path(__file__).resolve().parent.parent
FACTS: dict[str, Any] = {"mem_gb": 16, "cpus": 8, "disk_gb": 100, "os_release": "ubuntu-24.04"}


@pytest.fixture(autouse=True)
def real_support_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The support release's parts (traefik, cert-manager, ...) from the real upstream charts."""
    charts = PROJECT.parent / "shared" / "charts"
    assert charts.is_dir(), f"{charts} is missing: the real upstream charts"
    monkeypatch.setenv("HUBFLEET_CHART_CACHE", str(charts))


def test_a_bare_host_becomes_a_deployed_member_resuming_after_each_interruption(
    deploy_repo: MakeRepo,
    host_lab: HostLab,
    kube_stub: KubeStub,
    s3_server: Any,
    dns_server: Any,
) -> None:
    host, repo, options = _world(deploy_repo, host_lab, dns_server, dns_ready=False)
    hooks = OnboardHooks(credentials=credentials_for(kube_stub, "uni"))
    timings: dict[str, float] = {}

    def run() -> list[Any]:
        started = time.perf_counter()
        try:
            return onboard(repo, "uni", options, say=lambda line: None, hooks=hooks)
        finally:
            timings[f"run{len(timings) + 1}"] = time.perf_counter() - started

    # 1. stops at dns-check: everything before it is done and recorded
    with pytest.raises(
        OnboardingFailed, match=r"uni\.example\.org does not exist .*rerun member\.onboard uni"
    ) as caught:
        run()
    first_states = caught.value.states
    done = {s.step: s.state for s in first_states}
    assert [done[s] for s in STEPS[:3]] == ["done", "done", "done"]
    assert done["dns-check"] == "failed" and done["deploy"] == "pending"
    assert host.exists("/usr/local/bin/k3s")
    assert sops.is_encrypted(repo.member_secret_values("uni"))

    # 2. the operator adds DNS records and the Harbor bucket; the rerun resumes at dns-check
    dns_server.serve(*zone("uni.example.org", host.address))
    bucket = s3_server.restricted_bucket
    record = yaml.safe_load(repo.registry.read_text())
    record["members"]["uni"]["s3"] = {"endpoint": s3_server.endpoint, "bucket": bucket}
    repo.registry.write_text(yaml.safe_dump(record))
    keys = s3_server.restricted
    path = repo.member_secret_values("uni")
    s3_keys = ["harbor", "persistence", "imageChartStorage", "s3"]
    sops.set_value(repo, path, [*s3_keys, "accesskey"], keys.access_key)
    sops.set_value(repo, path, [*s3_keys, "secretkey"], keys.secret_key)
    states = run()
    by_step = {s.step: s for s in states}
    assert [by_step[s].state for s in STEPS] == ["done"] * len(STEPS)
    assert "resolve to " + host.address in by_step["dns-check"].detail
    assert "abort-multipart" in by_step["s3-lifecycle"].detail
    assert "deployed, revision 1" in by_step["deploy"].detail
    assert "nothing to pin" in by_step["harbor-secrets"].detail  # the demo chart has no Harbor
    assert "unchanged" in by_step["deploy-again"].detail
    assert "health_check is off" in by_step["health"].detail  # no HTTP leaves this machine
    assert kube_stub.get("Deployment", "uni-hub", "uni") is not None
    lifecycle = s3_server.client().get_bucket_lifecycle_configuration(Bucket=bucket)
    assert [r["ID"] for r in lifecycle["Rules"]] == ["abort-multipart"]
    assert set(load_progress(repo, "uni").done) == set(STEPS)

    # 3. a rerun is a no-op: nothing runs, nothing changes
    installs = len(host.calls("install.sh"))
    again = run()
    assert {s.state for s in again} == {"done"}
    assert len(host.calls("install.sh")) == installs
    # the wall time of the whole onboarding (first two runs), for the closing note
    steps = {s.step: round(s.seconds, 2) for s in [*first_states, *states] if s.seconds}
    print(f"\nonboarding wall time: {timings}; by step: {steps}")


def _world(
    deploy_repo: MakeRepo, host_lab: HostLab, dns_server: Any, dns_ready: bool = True
) -> tuple[Any, DeployRepo, OnboardOptions]:
    """A bare host and a deploy repo with the templates and the support chart (its parts from
    the real charts); DNS records there or not yet."""
    host = host_lab.add_host(**FACTS)
    repo: DeployRepo = deploy_repo({})
    shutil.copytree(
        PROJECT / "support", repo.root / "support", ignore=shutil.ignore_patterns("charts")
    )
    (repo.root / "config" / "known_hosts").write_text(host.host_key_line + "\n")
    shutil.copytree(PROJECT / "config" / "templates", repo.root / "config" / "templates")
    shutil.copytree(PROJECT / "config" / "k3s", repo.root / "config" / "k3s")
    # the demo chart takes its hub secrets from the common secrets layer
    sops.write_encrypted(
        repo,
        repo.common_secret_values(),
        yaml.safe_dump({"hub": {"cookieSecret": "cd" * 32, "proxyToken": "common-proxy-token"}}),
    )
    records = zone("uni.example.org", host.address) if dns_ready else nxdomain("uni.example.org")
    dns_server.serve(*records)
    options = OnboardOptions(
        host=host.address,
        domain="uni.example.org",
        identity=host_lab.client_key_path,
        resolver=f"127.0.0.1:{dns_server.port}",
        timeout_s=20,
        chart="charts/demo",
    )
    return host, repo, options


def _outcome(repo: DeployRepo, host: Any, stub: KubeStub) -> dict[str, Any]:
    """What an onboarding leaves behind, secrets aside (they are fresh each time)."""
    record = yaml.safe_load(repo.registry.read_text())["members"]["uni"]
    return {
        "record": {k: v for k, v in record.items() if k != "hosts"},
        "values": "hub.uni.example.org" in (repo.root / "config" / "uni.yaml").read_text(),
        "k3s": bool(host.unit("k3s").get("active")),
        "installs": len(host.calls("install.sh")),
        "kubeconfig": sops.decrypt_yaml(repo, repo.member_kubeconfig("uni"))["current-context"],
        "deployment": stub.get("Deployment", "uni-hub", "uni") is not None,
        "ingress": stub.get("Deployment", "support-traefik", "support") is not None,
        "issuer": stub.get("ClusterIssuer", "selfsigned", "") is not None,
        "done": sorted(load_progress(repo, "uni").done),
    }


@pytest.mark.parametrize(
    "broken", ["member-new", "bootstrap", "s3-lifecycle", "deploy", "deploy-again"]
)
def test_interrupted_at_a_step_the_rerun_resumes_there_and_ends_as_a_clean_run(
    broken: str,
    deploy_repo: MakeRepo,
    host_lab: HostLab,
    kube_stub: KubeStub,
    s3_server: Any,
    dns_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hubfleet.members.onboarding_steps as steps
    from hubfleet.errors import HubfleetError

    host, repo, options = _world(deploy_repo, host_lab, dns_server)
    hooks = OnboardHooks(credentials=credentials_for(kube_stub, "uni"))
    name = {
        "member-new": "member_new",
        "bootstrap": "bootstrap",
        "s3-lifecycle": "s3_lifecycle",
        "deploy": "deploy",
        "deploy-again": "deploy",
    }[broken]
    real = getattr(steps, name)
    calls = {"n": 0}
    fail_on = 2 if broken == "deploy-again" else 1

    def interrupted(*args: Any, **kwargs: Any) -> str:
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise HubfleetError(f"member uni: connection lost during {broken}")
        return str(real(*args, **kwargs))

    monkeypatch.setattr(steps, name, interrupted)
    with pytest.raises(OnboardingFailed, match=f"connection lost during {broken}"):
        onboard(repo, "uni", options, say=lambda line: None, hooks=hooks)
    assert load_progress(repo, "uni").failed.keys() == {broken}
    resumed = onboard(repo, "uni", options, say=lambda line: None, hooks=hooks)
    ran = [s.step for s in resumed if s.seconds > 0]
    assert ran[0] == broken  # resumed exactly there
    assert _outcome(repo, host, kube_stub) == {
        "record": {
            "stage": "staging",
            "provider": "k3s",
            "domain": "uni.example.org",
            "chart": "charts/demo",
            "support": {"issuer": "selfsigned"},
        },
        "values": True,
        "k3s": True,
        "installs": 1,  # k3s was installed once, however the run was cut
        "kubeconfig": "uni",
        "deployment": True,
        "ingress": True,  # the support release too
        "issuer": True,
        "done": sorted(STEPS),
    }


def test_a_dry_run_asks_each_step_and_changes_nothing(
    deploy_repo: MakeRepo,
    host_lab: HostLab,
    kube_stub: KubeStub,
    dns_server: Any,
) -> None:
    from tests.conftest_repo import tree_snapshot as whole_tree

    def tree_snapshot(root: Path) -> dict[str, bytes]:
        """The repo's files but the support chart's dependency archives: copied there from
        the chart cache on a render (git ignores them), never a change of the member."""
        return {k: v for k, v in whole_tree(root).items() if not k.startswith("support/charts/")}

    host, repo, options = _world(deploy_repo, host_lab, dns_server, dns_ready=False)
    dry = OnboardOptions(**{**options.__dict__, "dry_run": True})
    before = tree_snapshot(repo.root)
    said: list[str] = []

    # a bare host, not registered: preflight reads its facts, DNS is asked and would fail,
    # the other steps say what they would do; nothing is written anywhere
    with pytest.raises(
        OnboardingFailed, match=r"dry run: member uni: dns-check would fail: .*nothing was changed"
    ) as caught:
        onboard(repo, "uni", dry, say=said.append)
    by_step = {s.step: s for s in caught.value.states}
    assert [by_step[s].state for s in STEPS] == [
        "would run",
        "would run",
        "would run",
        "would fail",
        *["would run"] * 5,
    ]
    assert "8 CPUs" in by_step["preflight"].detail
    assert by_step["member-new"].detail.startswith("would register uni")
    assert "would bootstrap " + host.address + " with k3s" in by_step["bootstrap"].detail
    assert "uni.example.org does not exist" in by_step["dns-check"].detail
    assert any("secrets/config/uni.yaml" in line for line in said)  # member.new's own dry run
    assert tree_snapshot(repo.root) == before
    assert not host.exists("/usr/local/bin/k3s") and host.calls("install.sh") == []

    # registered and bootstrapped for real (up to the DNS stop), the dry run asks the
    # bootstrap, the lifecycle and the deploy their own dry runs
    hooks = OnboardHooks(credentials=credentials_for(kube_stub, "uni"))
    with pytest.raises(OnboardingFailed):
        onboard(repo, "uni", options, say=lambda line: None, hooks=hooks)
    dns_server.serve(*zone("uni.example.org", host.address))
    installs = len(host.calls("install.sh"))
    before = tree_snapshot(repo.root)
    said.clear()
    states = onboard(repo, "uni", dry, say=said.append, hooks=hooks)
    by_step = {s.step: s for s in states}
    assert [by_step[s].state for s in STEPS[:3]] == ["done"] * 3  # not asked again
    assert by_step["dns-check"].detail.endswith(f"resolve to {host.address}")
    assert by_step["s3-lifecycle"].detail == "no s3 block in the registry: nothing to do"
    assert by_step["deploy"].detail == "would upgrade or install the releases shown above"
    assert any("dry run, nothing was changed" in line for line in said)
    assert kube_stub.get("Deployment", "uni-hub", "uni") is None
    from_bootstrap = OnboardOptions(**{**dry.__dict__, "from_step": "bootstrap"})
    bootstrap = {s.step: s for s in onboard(repo, "uni", from_bootstrap, say=said.append)}
    assert bootstrap["bootstrap"].detail.endswith(" 0 would change")
    assert len(host.calls("install.sh")) == installs
    assert tree_snapshot(repo.root) == before
    assert set(load_progress(repo, "uni").done) == set(STEPS[:3])
