"""`invoke deploy` end to end: real sops/age, the real Helm SDK, the stub Kubernetes API."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hubfleet.deploy.member import DeployOptions, DeployResult, deploy_member
from hubfleet.errors import ClusterError, HubfleetError, RolloutError
from hubfleet.helm import engine_from_env
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.values.merge import MASK
from tests.conftest_repo import MakeRepo, secret_values, tree_snapshot
from tests.kube_stub import KubeStub

ENGINE = engine_from_env({})
YES = DeployOptions(yes=True, timeout_s=10)


def kubeconfig_for(stub: KubeStub, member: str) -> dict[str, object]:
    return stub.kubeconfig(cluster=member, user=f"{member}-admin", context=member)


def run(
    repo_root: Path, member: str, options: DeployOptions, **kw: Any
) -> tuple[DeployResult, str]:
    from hubfleet.files.repo import DeployRepo

    lines: list[str] = []
    result = deploy_member(DeployRepo(repo_root), member, ENGINE, options, say=lines.append, **kw)
    return result, "\n".join(lines)


def assert_no_secret(text: str, member: str) -> None:
    for group in secret_values(member).values():
        for value in group.values():
            assert value not in text


def test_dry_run_prints_the_plan_masks_secrets_and_touches_nothing(
    deploy_repo: MakeRepo, kube_stub: KubeStub
) -> None:
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}}, {"alpha": kubeconfig_for(kube_stub, "alpha")}
    )
    before = tree_snapshot(repo.root)
    result, out = run(repo.root, "alpha", DeployOptions(dry_run=True))
    assert result.outcome == "planned"
    assert "release:   alpha in namespace alpha" in out
    assert "chart:     demo 0.1.0 (charts/demo)" in out
    assert "1 Deployment" in out and "1 Secret" in out and "objects:   4" in out
    assert f"cookieSecret: '{MASK}'" in out
    assert_no_secret(out, "alpha")
    assert kube_stub.request_log() == []  # no cluster contact at all
    assert tree_snapshot(repo.root) == before


def test_first_deploy_installs_then_an_unchanged_one_is_skipped(
    deploy_repo: MakeRepo, kube_stub: KubeStub
) -> None:
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}}, {"alpha": kubeconfig_for(kube_stub, "alpha")}
    )
    result, out = run(repo.root, "alpha", YES)
    assert result.outcome == "deployed" and result.revision == 1
    assert kube_stub.get("Deployment", "alpha-hub", "alpha") is not None
    assert kube_stub.get("Namespace", "alpha", "") is not None
    assert "added    Secret alpha/alpha-hub" in out
    assert "alpha: deployed revision 1 of alpha in alpha" in out
    assert_no_secret(out, "alpha")

    again, out = run(repo.root, "alpha", YES)
    assert again.outcome == "unchanged" and again.revision == 1
    assert "nothing changed; skipping the upgrade" in out

    forced, _ = run(repo.root, "alpha", DeployOptions(yes=True, force=True, timeout_s=10))
    assert forced.revision == 2


def test_diff_shows_the_change_and_stops(deploy_repo: MakeRepo, kube_stub: KubeStub) -> None:
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}}, {"alpha": kubeconfig_for(kube_stub, "alpha")}
    )
    run(repo.root, "alpha", YES)
    (repo.root / "config" / "alpha.yaml").write_text("hub:\n  replicas: 3\n")
    result, out = run(repo.root, "alpha", DeployOptions(diff=True))
    assert result.outcome == "diffed" and result.revision == 1
    assert "changed  Deployment alpha/alpha-hub" in out
    assert "-  replicas: 1" in out and "+  replicas: 3" in out
    hub = kube_stub.get("Deployment", "alpha-hub", "alpha")
    assert hub is not None and hub["spec"]["replicas"] == 1

    result, out = run(repo.root, "alpha", YES)
    assert result.revision == 2
    hub = kube_stub.get("Deployment", "alpha-hub", "alpha")
    assert hub is not None and hub["spec"]["replicas"] == 3


def test_a_changed_secret_shows_as_a_fingerprint_never_the_value(
    deploy_repo: MakeRepo, kube_stub: KubeStub
) -> None:
    from hubfleet.secrets import sops

    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}}, {"alpha": kubeconfig_for(kube_stub, "alpha")}
    )
    run(repo.root, "alpha", YES)
    sops.set_value(
        repo, repo.member_secret_values("alpha"), ["hub", "proxyToken"], "brand-new-proxy-token"
    )
    _, out = run(repo.root, "alpha", DeployOptions(diff=True))
    assert "changed  Secret alpha/alpha-hub" in out
    assert "<secret hmac:" in out
    assert "brand-new-proxy-token" not in out
    assert_no_secret(out, "alpha")


def test_without_confirmation_nothing_changes(deploy_repo: MakeRepo, kube_stub: KubeStub) -> None:
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}}, {"alpha": kubeconfig_for(kube_stub, "alpha")}
    )
    asked: list[str] = []

    def decline(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(
        HubfleetError,
        match=r"member alpha: deploy not confirmed; nothing was changed \(--yes deploys without asking\)",
    ):
        run(
            repo.root,
            "alpha",
            DeployOptions(),
            confirm=decline,
            environ={},
        )
    assert asked == ["Deploy 4 change(s) to member alpha (staging)?"]
    assert kube_stub.objects("Deployment") == []
    result, _ = run(repo.root, "alpha", DeployOptions(timeout_s=10), environ={"CI": "true"})
    assert result.outcome == "deployed"


def test_a_failed_rollout_rolls_back_and_shows_the_failing_pods(
    deploy_repo: MakeRepo, kube_stub: KubeStub
) -> None:
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}}, {"alpha": kubeconfig_for(kube_stub, "alpha")}
    )
    run(repo.root, "alpha", YES)
    kube_stub.broken_images.add("example.org/broken:1")
    (repo.root / "config" / "alpha.yaml").write_text("hub:\n  image: example.org/broken:1\n")
    lines: list[str] = []
    from hubfleet.files.repo import DeployRepo

    with pytest.raises(RolloutError) as caught:
        deploy_member(
            DeployRepo(repo.root),
            "alpha",
            ENGINE,
            DeployOptions(yes=True, timeout_s=3),
            say=lines.append,
        )
    message = str(caught.value)
    assert message.startswith("member alpha: Deployment alpha-hub")
    assert message.endswith("rolled back to revision 1")
    out = "\n".join(lines)
    assert (
        "CrashLoopBackOff" in out and "event " in out and "| " in out
    )  # reason, events, log lines
    assert_no_secret(out, "alpha")
    live = ENGINE.history(_creds(kube_stub, "alpha"), "alpha", "alpha")
    assert [r.revision for r in live][-1] == 3 and live[-1].status == "deployed"
    hub = kube_stub.get("Deployment", "alpha-hub", "alpha")
    assert hub is not None
    image = hub["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image != "example.org/broken:1"


def _creds(stub: KubeStub, member: str) -> ClusterCredentials:
    from tests.conftest_kube import credentials_for

    return credentials_for(stub, member)


def test_an_unreachable_cluster_is_one_line_naming_the_member(
    deploy_repo: MakeRepo, kube_stub: KubeStub
) -> None:
    config = kubeconfig_for(kube_stub, "alpha")
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}}, {"alpha": config})
    kube_stub.stop()
    with pytest.raises(ClusterError) as caught:
        run(repo.root, "alpha", YES)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("member alpha: cannot reach cluster at https://127.0.0.1:")


def test_two_members_deploy_concurrently_to_their_own_clusters(
    deploy_repo: MakeRepo, kube_stub_factory
) -> None:
    one, two = kube_stub_factory(), kube_stub_factory()
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}, "beta": {"domain": "beta.example.org"}},
        {"alpha": kubeconfig_for(one, "alpha"), "beta": kubeconfig_for(two, "beta")},
    )
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda m: run(repo.root, m, YES)[0], ["alpha", "beta"]))
    assert [r.outcome for r in results] == ["deployed", "deployed"]
    assert one.get("Deployment", "alpha-hub", "alpha") and not one.objects("Deployment", "beta")
    assert two.get("Deployment", "beta-hub", "beta") and not two.objects("Deployment", "alpha")


@pytest.fixture
def health_server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200 if self.path in {"/hub/api/health", "/health"} else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_health_checks_come_from_the_values_when_the_member_asks(
    deploy_repo: MakeRepo, kube_stub: KubeStub, health_server: tuple[str, list[str]]
) -> None:
    address, seen = health_server
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org", "health_check": True}},
        {"alpha": kubeconfig_for(kube_stub, "alpha")},
        values={
            "alpha": {
                "binderhub": {
                    "ingress": {"hosts": [address]},
                    "jupyterhub": {"ingress": {"hosts": [address]}},
                }
            }
        },
    )
    _, out = run(repo.root, "alpha", YES)
    assert seen == ["/hub/api/health", "/health"]
    assert f"health hub: http://{address}/hub/api/health ok (200)" in out


def test_a_failing_health_check_names_the_url(
    deploy_repo: MakeRepo, kube_stub: KubeStub, health_server: tuple[str, list[str]]
) -> None:
    address, _ = health_server
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org", "health_check": True}},
        {"alpha": kubeconfig_for(kube_stub, "alpha")},
        values={"alpha": {"jupyterhub": {"ingress": {"hosts": [f"{address}/nope"]}}}},
    )
    options = DeployOptions(yes=True, timeout_s=10, health_timeout_s=0.5)
    with pytest.raises(
        HubfleetError,
        match=rf"member alpha: hub health check http://{address}/nope/hub/api/health failed after 0s \(HTTP 404\)",
    ):
        run(repo.root, "alpha", options)
