"""Harbor's pinned secrets against the REAL harbor chart (../shared/charts): the Secrets a
render creates, read back as `harbor.stabilize-secrets` reads them from a cluster and pinned,
make the next render produce the very same Secrets; and the token key Harbor's core signs with
is the umbrella's Secret, so a render no longer creates a CA each time."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from hubfleet.cloud import harbor
from hubfleet.deploy.member import render_member
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.sdk import SdkEngine
from hubfleet.registry.members import load_registry
from hubfleet.values.layers import write_secret_leaves
from tests.conftest_repo import MakeRepo
from tests.test_real_charts import real_charts, stack_repo  # noqa: F401 (fixture)


def secrets_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """What the cluster would hold: each rendered Secret's data, decoded."""
    return {
        o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o["data"].items()}
        for o in objects
        if o["kind"] == "Secret" and o.get("data")
    }


def volume_secret(objects: list[dict[str, Any]], deployment: str, volume: str) -> str:
    (dep,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment
    ]
    (vol,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == volume]
    return str(vol["secret"]["secretName"])


def test_the_token_key_is_the_umbrellas_secret(deploy_repo: MakeRepo, real_charts: Path) -> None:  # noqa: F811
    repo = stack_repo(deploy_repo)
    member = load_registry(repo).member("registry")
    objects = render_member(repo, member, SdkEngine(chart_cache=real_charts)).objects
    cluster = secrets_of(objects)
    token = cluster[harbor.TOKEN_SECRET]
    assert token["tls.key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert token["tls.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert "tls.key" not in cluster["registry-harbor-core"]  # Harbor made no CA of its own
    assert volume_secret(objects, "registry-harbor-core", "token-service-private-key") == (
        harbor.TOKEN_SECRET
    )


def test_pinned_values_reproduce_every_generated_secret(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    repo: DeployRepo = stack_repo(deploy_repo)
    engine = SdkEngine(chart_cache=real_charts)
    member = load_registry(repo).member("registry")
    first = secrets_of(render_member(repo, member, engine).objects)
    # unpinned, each render makes new ones (what pinning is for)
    unpinned = secrets_of(render_member(repo, member, engine).objects)
    assert unpinned[harbor.TOKEN_SECRET] != first[harbor.TOKEN_SECRET]
    assert unpinned["registry-harbor-core"]["secret"] != first["registry-harbor-core"]["secret"]
    names = [*harbor.secret_names(member.release)]
    assert harbor.TOKEN_SECRET in names and "registry-harbor-core" in names

    generated = harbor.generated_values(member.name, member.namespace, member.release, first.get)
    assert set(generated) == {p.value for p in harbor.PINNED_SECRETS}
    path = repo.member_secret_values(member.name)
    changed, _ = write_secret_leaves(repo, path, harbor.nested_values(generated))
    assert len(changed) == len(harbor.PINNED_SECRETS)

    again = secrets_of(render_member(repo, member, engine).objects)
    for name in names:
        assert again[name] == first[name], f"Secret {name} differs after pinning"
