"""federation.drain / readmit / prime end to end: the registry edited (its other bytes kept),
then only the releases the edit changes deployed by the real Helm SDK to stub clusters, one
per member; a dry run touches nothing; a new prime must answer its health URL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hubfleet.deploy.member import DeployOptions, deploy_member
from hubfleet.errors import ConfigError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.sdk import SdkEngine
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.members.rotate import RotateOptions, rotate
from tests.conftest_kube import credentials_for
from tests.conftest_repo import MakeRepo
from tests.kube_stub import KubeStub
from tests.test_real_charts import real_charts  # noqa: F401 (fixture)
from tests.test_support import support_repo

FEDERATION_BLOCK = (
    "# who runs the redirector, and where users enter\n"
    "federation:\n  domain: fleet.example.org\n  redirector: gke\n"
)


def hosts_of(stub: KubeStub) -> dict[str, object]:
    config = stub.get("ConfigMap", "federation-redirect", "gke")
    assert config is not None
    return dict(json.loads(config["data"]["config.json"])["hosts"])


def revision(engine: SdkEngine, creds: ClusterCredentials, member: str) -> int:
    live = engine.status(creds, member, member)
    assert live is not None
    return live.revision


def test_drain_readmit_and_prime_edit_the_registry_then_deploy_what_changed(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
    kube_stub_factory: Callable[..., KubeStub],
) -> None:
    repo: DeployRepo = support_repo(
        deploy_repo,
        gke={"federation": {"weight": 60, "prime": True}},
        ovh={"federation": {"weight": 40, "quota": 100}},
    )
    repo.registry.write_text(FEDERATION_BLOCK + repo.registry.read_text())
    original = repo.registry.read_text()
    stubs = {"gke": kube_stub_factory(), "ovh": kube_stub_factory()}
    creds = {name: credentials_for(stub, name) for name, stub in stubs.items()}
    engine = SdkEngine(chart_cache=real_charts)
    for name in stubs:
        deploy_member(
            repo,
            name,
            engine,
            DeployOptions(yes=True, timeout_s=30),
            say=lambda _: None,
            credentials=creds[name],
        )
    assert set(hosts_of(stubs["gke"])) == {"gke", "ovh"}
    said: list[str] = []

    def run(action: str, member: str, **kw: object) -> object:
        said.clear()
        options = RotateOptions(yes=True, timeout_s=30, health_timeout_s=0.5, **kw)  # type: ignore[arg-type]
        return rotate(repo, action, member, options, engine, say=said.append, credentials=creds.get)

    # a dry run: the edit shown, what would be deployed, nothing changed anywhere
    logs = {n: len(s.request_log()) for n, s in stubs.items()}
    run("drain", "ovh", dry_run=True)
    assert said[0] == "member ovh drained: weight 40 -> 0, quota 100 -> 0"
    assert "  +      weight: 0" in said
    assert said[-3:] == [
        "would deploy member gke's release (invoke deploy gke --only member)",
        "would deploy member ovh's release (invoke deploy ovh --only member)",
        "dry run: nothing was changed",
    ]
    assert repo.registry.read_text() == original
    assert {n: len(s.request_log()) for n, s in stubs.items()} == logs

    # drained: the redirector's host list without it, its quota 0, both upgraded
    run("drain", "ovh")
    assert set(hosts_of(stubs["gke"])) == {"gke"}
    assert revision(engine, creds["gke"], "gke") == 2
    assert revision(engine, creds["ovh"], "ovh") == 2
    assert yaml.safe_load(repo.registry.read_text())["members"]["ovh"]["federation"] == {
        "weight": 0,
        "quota": 0,
        "drained": {"weight": 40, "quota": 100},
    }
    assert run("drain", "ovh") is None and said == ["member ovh is drained already; nothing to do"]
    with pytest.raises(ConfigError, match="member ovh has weight 0; readmit it"):
        run("prime", "ovh")

    # readmitted: the very same registry bytes, and the host list back
    run("readmit", "ovh")
    assert repo.registry.read_text() == original
    assert set(hosts_of(stubs["gke"])) == {"gke", "ovh"}

    # a new prime must answer its health URL (this one has no DNS name), unless forced
    with pytest.raises(ConfigError) as caught:
        run("prime", "ovh")
    assert str(caught.value).startswith(
        "member ovh does not answer its health URL https://ovh.example.org/health"
    )
    assert str(caught.value).endswith("--force makes it prime anyway")
    assert repo.registry.read_text() == original
    before = revision(engine, creds["ovh"], "ovh")
    run("prime", "ovh", force=True)
    hosts = hosts_of(stubs["gke"])
    assert hosts["ovh"]["prime"] is True and hosts["gke"]["prime"] is False  # type: ignore[index]
    assert revision(engine, creds["ovh"], "ovh") == before  # its own release did not change
