"""member.status: a row per member from its own cluster; an unreachable one says so."""

from __future__ import annotations

from hubfleet.deploy.member import DeployOptions, deploy_member
from hubfleet.helm import engine_from_env
from hubfleet.members.status import federation_status, status_table
from tests.conftest_repo import MakeRepo


def test_status_shows_nodes_release_and_unreachable_members(
    deploy_repo: MakeRepo,
    kube_stub_factory,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    up, down = kube_stub_factory(), kube_stub_factory()
    up.put(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a"},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.32.5+k3s1"},
            },
        }
    )
    repo = deploy_repo(
        {
            "alpha": {"domain": "alpha.example.org"},
            "beta": {"domain": "beta.example.org", "stage": "prod"},
        },
        {
            "alpha": up.kubeconfig(cluster="alpha", user="alpha", context="alpha"),
            "beta": down.kubeconfig(cluster="beta", user="beta", context="beta"),
        },
    )
    engine = engine_from_env({})
    deploy_member(
        repo, "alpha", engine, DeployOptions(yes=True, timeout_s=10), say=lambda line: None
    )
    down.stop()
    rows = {r.member: r for r in federation_status(repo, engine)}
    assert rows["alpha"].nodes == "1/1 Ready" and rows["alpha"].version == "v1.32.5+k3s1"
    assert rows["alpha"].release.startswith("r1 deployed")
    assert rows["alpha"].cert_days == "token" and rows["alpha"].onboarding == "done"
    assert rows["beta"].nodes == "unreachable" and rows["beta"].stage == "prod"
    table = status_table(list(rows.values()))
    assert table.splitlines()[0].split() == [
        "member",
        "stage",
        "provider",
        "nodes",
        "version",
        "release",
        "cert",
        "days",
        "onboarding",
    ]
