"""`invoke harbor.stabilize-secrets`: real sops/age, the stub Kubernetes API."""

from __future__ import annotations

import base64

import pytest

from hubfleet.cloud import harbor
from hubfleet.errors import ClusterError
from hubfleet.files.repo import DeployRepo
from hubfleet.secrets import sops
from tests.conftest_repo import MakeRepo, secret_values, tree_snapshot
from tests.kube_stub import KubeStub

# What Harbor generated (made up, distinctive, so the output can be searched for them)
GENERATED = {
    "alpha-harbor-core": {
        "secret": "core-secret-Xq7",
        "CSRF_KEY": "csrf-key-Yz8",
        "REGISTRY_CREDENTIAL_PASSWORD": "registry-cred-pw-Ab1",
        "HARBOR_ADMIN_PASSWORD": "not-pinned-here",
    },
    # made by the umbrella chart (chart/templates/harbor-token.yaml), not by Harbor's
    "harbor-token": {
        "tls.key": "-----BEGIN PRIVATE KEY-----\nTOKENKEY\n-----END PRIVATE KEY-----\n",
        "tls.crt": "-----BEGIN CERTIFICATE-----\nTOKENCERT\n-----END CERTIFICATE-----\n",
    },
    "alpha-harbor-jobservice": {"JOBSERVICE_SECRET": "jobservice-secret-Cd2"},
    "alpha-harbor-registry": {"REGISTRY_HTTP_SECRET": "registry-http-secret-Ef3"},
    "alpha-harbor-registry-htpasswd": {
        "REGISTRY_HTPASSWD": "harbor_registry_user:$2y$10$abcdefghijklmnopqrstuv"
    },
}
EXPECTED = {
    "harbor.core.secret": "core-secret-Xq7",
    "harbor.core.xsrfKey": "csrf-key-Yz8",
    "harbor.core.tokenKey": GENERATED["harbor-token"]["tls.key"],
    "harbor.core.tokenCert": GENERATED["harbor-token"]["tls.crt"],
    "harbor.registry.credentials.password": "registry-cred-pw-Ab1",
    "harbor.jobservice.secret": "jobservice-secret-Cd2",
    "harbor.registry.secret": "registry-http-secret-Ef3",
    "harbor.registry.credentials.htpasswdString": GENERATED["alpha-harbor-registry-htpasswd"][
        "REGISTRY_HTPASSWD"
    ],
}


def put_secrets(stub: KubeStub, secrets: dict[str, dict[str, str]], namespace: str) -> None:
    for name, data in secrets.items():
        stub.put(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }
        )


def assert_no_value(text: str) -> None:
    """No generated value (nor a line of one, PEM markers aside) shows in `text`."""
    for secret in GENERATED.values():
        for value in secret.values():
            for line in value.splitlines():
                assert line.startswith("-----") or line not in text


@pytest.fixture
def repo(deploy_repo: MakeRepo, kube_stub: KubeStub) -> DeployRepo:
    kubeconfig = kube_stub.kubeconfig(cluster="alpha", user="alpha-admin", context="alpha")
    return deploy_repo({"alpha": {"domain": "alpha.example.org"}}, {"alpha": kubeconfig})


def dig(data: object, dotted: str) -> object:
    for key in dotted.split("."):
        assert isinstance(data, dict), dotted
        data = data[key]
    return data


def test_first_run_pins_every_key_then_a_rerun_changes_nothing(
    repo: DeployRepo, kube_stub: KubeStub, capsys: pytest.CaptureFixture[str]
) -> None:
    put_secrets(kube_stub, GENERATED, "alpha")
    path = repo.member_secret_values("alpha")
    result = harbor.stabilize_secrets(repo, "alpha")
    assert set(result.changed) == set(EXPECTED) and result.unchanged == ()
    stored = sops.decrypt_yaml(repo, path)
    for dotted, value in EXPECTED.items():
        assert dig(stored, dotted) == value
    # what was there stays
    assert stored["hub"] == secret_values("alpha")["hub"]
    assert sops.is_encrypted(path)
    out = capsys.readouterr().out
    assert "harbor.core.tokenCert: pinned" in out
    assert "pinned 8 Harbor secret(s) in secrets/config/alpha.yaml" in out

    before = tree_snapshot(repo.root)
    again = harbor.stabilize_secrets(repo, "alpha")
    assert again.changed == () and set(again.unchanged) == set(EXPECTED)
    assert str(again) == "all 8 Harbor secrets already pinned"
    assert tree_snapshot(repo.root) == before  # byte for byte: not even re-encrypted
    out += capsys.readouterr().out
    assert "Harbor's 8 secrets already pinned in secrets/config/alpha.yaml" in out
    assert_no_value(out)


def test_a_changed_value_is_updated(repo: DeployRepo, kube_stub: KubeStub) -> None:
    put_secrets(kube_stub, GENERATED, "alpha")
    harbor.stabilize_secrets(repo, "alpha")
    changed = {**GENERATED, "alpha-harbor-jobservice": {"JOBSERVICE_SECRET": "rotated-Gh4"}}
    put_secrets(kube_stub, changed, "alpha")
    lines: list[str] = []
    result = harbor.stabilize_secrets(repo, "alpha", say=lines.append)
    assert result.changed == ("harbor.jobservice.secret",)
    assert str(result) == "pinned 1 Harbor secret(s), 7 already pinned"
    stored = sops.decrypt_yaml(repo, repo.member_secret_values("alpha"))
    assert stored["harbor"]["jobservice"]["secret"] == "rotated-Gh4"
    assert "rotated-Gh4" not in "\n".join(lines)


def test_a_missing_secret_says_to_deploy_first_and_writes_nothing(
    repo: DeployRepo, kube_stub: KubeStub
) -> None:
    partial = {k: v for k, v in GENERATED.items() if k != "alpha-harbor-jobservice"}
    put_secrets(kube_stub, partial, "alpha")
    before = tree_snapshot(repo.root)
    with pytest.raises(ClusterError) as err:
        harbor.stabilize_secrets(repo, "alpha")
    assert str(err.value) == (
        "member alpha: Secret alpha/alpha-harbor-jobservice not found; Harbor has not been "
        "deployed yet: deploy first (invoke deploy alpha), then rerun"
    )
    assert tree_snapshot(repo.root) == before


def test_a_missing_key_is_named(repo: DeployRepo, kube_stub: KubeStub) -> None:
    broken = {**GENERATED, "alpha-harbor-registry": {"OTHER": "x"}}
    put_secrets(kube_stub, broken, "alpha")
    with pytest.raises(ClusterError, match="alpha-harbor-registry has no key REGISTRY_HTTP_SECRET"):
        harbor.stabilize_secrets(repo, "alpha")


def test_release_names_containing_harbor_are_the_fullname() -> None:
    assert harbor.secret_names("alpha") == [
        "alpha-harbor-core",
        "harbor-token",
        "alpha-harbor-jobservice",
        "alpha-harbor-registry",
        "alpha-harbor-registry-htpasswd",
    ]
    assert harbor.secret_names("my-harbor")[0] == "my-harbor-core"


def test_the_task_prints_key_names_only(
    repo: DeployRepo,
    kube_stub: KubeStub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from invoke.context import Context

    from hubfleet.cli import Exit
    from hubfleet.tasks import harbor as harbor_tasks

    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))
    with pytest.raises(Exit):
        harbor_tasks.stabilize_secrets(Context(), "alpha")
    err = capsys.readouterr().err
    assert err.startswith("error: member alpha: Secret alpha/alpha-harbor-core not found")
    put_secrets(kube_stub, GENERATED, "alpha")
    harbor_tasks.stabilize_secrets(Context(), "alpha")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for key in EXPECTED:
        assert f"{key}: pinned" in text
    assert_no_value(text)


def test_credentials_given_replace_the_members_kubeconfig(
    deploy_repo: MakeRepo, kube_stub: KubeStub
) -> None:
    from tests.conftest_kube import credentials_for

    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})  # no kubeconfig stored
    put_secrets(kube_stub, GENERATED, "alpha")
    result = harbor.stabilize_secrets(
        repo, "alpha", say=lambda _: None, credentials=credentials_for(kube_stub, "alpha")
    )
    assert len(result.changed) == 8
