"""k3s automatic-upgrade Plans (hubfleet.k3s.upgrade_plan): rendered from the member record, applied
idempotently through the Kubernetes API (the stub, tests/kube_stub/), and the
k3s upgrade-plan task."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from invoke.context import Context

from hubfleet.cli import Exit
from hubfleet.errors import ClusterError
from hubfleet.k3s import upgrade_plan as up
from hubfleet.kube import apply as kube_apply
from hubfleet.kube import client as kube
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.registry.members import Member, member_from_record
from hubfleet.tasks import k3s_plan
from tests.conftest_repo import MakeRepo
from tests.kube_stub import KubeStub

CHANNELS = "https://update.k3s.io/v1-release/channels"


def record(k3s_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "stage": "prod",
        "provider": "k3s",
        "domain": "demo.example.org",
        "hosts": [{"address": "10.0.0.1"}, {"address": "10.0.0.2", "role": "agent"}],
    }
    if k3s_settings is not None:
        rec["k3s"] = dict(k3s_settings)
    return rec


def member(k3s_settings: Mapping[str, Any] | None = None, name: str = "demo") -> Member:
    return member_from_record(name, record(k3s_settings))


# --- rendering ------------------------------------------------------------------------------


def test_a_single_server_member_is_cordoned_never_drained() -> None:
    single = member_from_record(
        "solo",
        {
            "stage": "prod",
            "provider": "k3s",
            "domain": "solo.example.org",
            "hosts": [{"address": "10.0.0.9"}],
        },
    )
    server, _ = up.render_plans(single)
    assert server["spec"]["cordon"] is True and "drain" not in server["spec"]


def test_default_plans_follow_the_stable_channel_two_hours_on_sundays() -> None:
    server, agent = up.render_plans(member(name="hetzner"))
    window = {"days": ["sunday"], "startTime": "02:00", "endTime": "04:00", "timeZone": "UTC"}
    assert server == {
        "apiVersion": "upgrade.cattle.io/v1",
        "kind": "Plan",
        "metadata": {
            "name": "hetzner-k3s-server",
            "namespace": "system-upgrade",
            "labels": {"app.kubernetes.io/managed-by": "hubfleet", "hubfleet/member": "hetzner"},
        },
        "spec": {
            "concurrency": 1,
            "serviceAccountName": "system-upgrade",
            "upgrade": {"image": "rancher/k3s-upgrade"},
            "channel": f"{CHANNELS}/stable",
            "window": window,
            "nodeSelector": {
                "matchExpressions": [
                    {
                        "key": "node-role.kubernetes.io/control-plane",
                        "operator": "In",
                        "values": ["true"],
                    }
                ]
            },
            "cordon": True,
        },
    }
    assert agent == {
        "apiVersion": "upgrade.cattle.io/v1",
        "kind": "Plan",
        "metadata": {
            "name": "hetzner-k3s-agent",
            "namespace": "system-upgrade",
            "labels": {"app.kubernetes.io/managed-by": "hubfleet", "hubfleet/member": "hetzner"},
        },
        "spec": {
            "concurrency": 1,
            "serviceAccountName": "system-upgrade",
            "upgrade": {"image": "rancher/k3s-upgrade"},
            "channel": f"{CHANNELS}/stable",
            "window": window,
            "nodeSelector": {
                "matchExpressions": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}
                ]
            },
            "prepare": {"image": "rancher/k3s-upgrade", "args": ["prepare", "hetzner-k3s-server"]},
            "drain": {"force": True, "ignoreDaemonSets": True, "deleteEmptydirData": True},
        },
    }


def test_upgrade_channel_concurrency_and_window_from_the_record() -> None:
    settings = {
        "upgrade": {
            "channel": "v1.32",
            "concurrency": 2,
            "window": {
                "days": ["saturday", "sunday"],
                "start": "02:00",
                "end": "05:30",
                "timezone": "Europe/Berlin",
            },
        }
    }
    for plan in up.render_plans(member(settings)):
        spec = plan["spec"]
        assert spec["channel"] == f"{CHANNELS}/v1.32"
        assert "version" not in spec
        assert spec["concurrency"] == 2
        assert spec["window"] == {
            "days": ["saturday", "sunday"],
            "startTime": "02:00",
            "endTime": "05:30",
            "timeZone": "Europe/Berlin",
        }


def test_window_time_zone_defaults_to_utc() -> None:
    settings = {"upgrade": {"window": {"days": ["monday"], "start": "01:00", "end": "03:00"}}}
    assert up.server_plan(member(settings))["spec"]["window"] == {
        "days": ["monday"],
        "startTime": "01:00",
        "endTime": "03:00",
        "timeZone": "UTC",
    }


def test_upgrade_version_pins_the_plans() -> None:
    for plan in up.render_plans(member({"upgrade": {"version": "v1.33.1+k3s1"}})):
        assert plan["spec"]["version"] == "v1.33.1+k3s1"
        assert "channel" not in plan["spec"]


def test_plans_follow_the_install_settings_when_upgrade_says_nothing() -> None:
    pinned = up.upgrade_settings(member({"version": "v1.32.5+k3s1"}))
    assert (pinned.version, pinned.channel) == ("v1.32.5+k3s1", None)
    channel = up.upgrade_settings(member({"channel": "latest"}))
    assert (channel.version, channel.channel) == (None, "latest")
    # upgrade's own channel wins over the install's pin
    both = up.upgrade_settings(
        member({"version": "v1.32.5+k3s1", "upgrade": {"channel": "stable"}})
    )
    assert (both.version, both.channel) == (None, "stable")


def test_plans_yaml_is_a_stream_kubectl_takes() -> None:
    plans = up.render_plans(member())
    text = up.plans_yaml(plans)
    assert text.startswith("---\napiVersion: upgrade.cattle.io/v1\n")
    assert list(yaml.safe_load_all(text)) == plans


# --- applying, against the stub API ----------------------------------------------------------


def add_namespace(stub: KubeStub) -> None:
    stub.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "system-upgrade"}})


def test_apply_creates_then_reports_ok_then_replaces(
    kube_stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    add_namespace(kube_stub)
    plans = up.render_plans(member())
    with kube.member_api(kube_credentials) as api:
        first = up.apply_plans(api, plans)
        assert [(o.name, o.state, o.action) for o in first] == [
            ("demo-k3s-server", "changed", "created"),
            ("demo-k3s-agent", "changed", "created"),
        ]
        stored = kube_stub.get("Plan", "demo-k3s-server", "system-upgrade")
        assert stored is not None and stored["spec"] == plans[0]["spec"]
        version = stored["metadata"]["resourceVersion"]

        second = up.apply_plans(api, plans)
        assert [(o.state, o.action) for o in second] == [("ok", "unchanged")] * 2
        assert [str(o) for o in second] == [
            "Plan system-upgrade/demo-k3s-server: ok",
            "Plan system-upgrade/demo-k3s-agent: ok",
        ]
        after = kube_stub.get("Plan", "demo-k3s-server", "system-upgrade")
        assert after is not None and after["metadata"]["resourceVersion"] == version

        changed = up.render_plans(member({"upgrade": {"version": "v1.33.1+k3s1"}}))
        third = up.apply_plans(api, changed)
        assert [str(o) for o in third] == [
            "Plan system-upgrade/demo-k3s-server: changed (replaced)",
            "Plan system-upgrade/demo-k3s-agent: changed (replaced)",
        ]
        assert [(o.state, o.action) for o in up.apply_plans(api, changed)] == [
            ("ok", "unchanged")
        ] * 2
    replaced = kube_stub.get("Plan", "demo-k3s-agent", "system-upgrade")
    assert replaced is not None
    assert replaced["spec"]["version"] == "v1.33.1+k3s1"
    assert "channel" not in replaced["spec"]
    assert kube_stub.errors == []


def test_apply_keeps_labels_others_added_and_restores_ours(
    kube_stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    add_namespace(kube_stub)
    plans = up.render_plans(member())
    with kube.member_api(kube_credentials) as api:
        up.apply_plans(api, plans)
        live = kube_stub.get("Plan", "demo-k3s-server", "system-upgrade")
        assert live is not None
        live["metadata"]["labels"]["team"] = "ops"
        kube_stub.put(live)
        assert up.apply_plans(api, plans)[0].action == "unchanged"  # an extra label is fine
        live = kube_stub.get("Plan", "demo-k3s-server", "system-upgrade")
        assert live is not None
        del live["metadata"]["labels"]["hubfleet/member"]
        live["spec"]["concurrency"] = 5
        kube_stub.put(live)
        assert up.apply_plans(api, plans)[0].action == "replaced"
    final = kube_stub.get("Plan", "demo-k3s-server", "system-upgrade")
    assert final is not None
    assert final["spec"]["concurrency"] == 1
    assert final["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "hubfleet",
        "hubfleet/member": "demo",
        "team": "ops",
    }


def test_apply_without_the_namespace_says_to_install_the_controller(
    kube_stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    with (
        kube.member_api(kube_credentials) as api,
        pytest.raises(ClusterError, match="member demo: namespace system-upgrade does not exist"),
    ):
        up.apply_plans(api, up.render_plans(member()), where="member demo")


def test_apply_a_kind_the_cluster_does_not_serve(
    kube_stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    widget = {
        "apiVersion": "example.invalid/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {},
    }
    with (
        kube.member_api(kube_credentials) as api,
        pytest.raises(ClusterError, match=r"does not serve example\.invalid/v1"),
    ):
        kube_apply.apply_custom_objects(api, [widget])


# --- the task -------------------------------------------------------------------------------


def k3s_repo(deploy_repo: MakeRepo, stub: KubeStub | None = None) -> Any:
    kubeconfigs = (
        {"demo": stub.kubeconfig(cluster="demo", user="demo", context="demo")} if stub else None
    )
    rec = record({"upgrade": {"channel": "stable", "concurrency": 1}})
    return deploy_repo(members={"demo": rec}, kubeconfigs=kubeconfigs)


def test_task_prints_the_plans(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = k3s_repo(deploy_repo)
    monkeypatch.chdir(repo.root)
    k3s_plan.upgrade_plan(Context(), "demo")
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [p["metadata"]["name"] for p in printed] == ["demo-k3s-server", "demo-k3s-agent"]
    assert printed[0]["spec"]["channel"] == f"{CHANNELS}/stable"


def test_task_applies_the_plans(
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kube_stub: KubeStub,
) -> None:
    repo = k3s_repo(deploy_repo, kube_stub)
    monkeypatch.chdir(repo.root)
    add_namespace(kube_stub)
    k3s_plan.upgrade_plan(Context(), "demo", apply=True)
    assert capsys.readouterr().out.splitlines() == [
        "Plan system-upgrade/demo-k3s-server: changed (created)",
        "Plan system-upgrade/demo-k3s-agent: changed (created)",
    ]
    k3s_plan.upgrade_plan(Context(), "demo", apply=True)
    assert capsys.readouterr().out.splitlines() == [
        "Plan system-upgrade/demo-k3s-server: ok",
        "Plan system-upgrade/demo-k3s-agent: ok",
    ]
    assert len(kube_stub.objects("Plan", "system-upgrade")) == 2


def test_task_refuses_a_member_that_is_not_k3s(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = deploy_repo(members={"gke": {"domain": "gke.example.org"}})
    monkeypatch.chdir(repo.root)
    with pytest.raises(Exit) as exited:
        k3s_plan.upgrade_plan(Context(), "gke")
    assert exited.value.code == 1
    assert "member gke is a kubeconfig member; upgrade Plans are for k3s" in capsys.readouterr().err
