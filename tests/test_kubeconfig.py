"""Kubeconfigs as data (hubfleet.kube.kubeconfig) and the kubeconfig.* tasks: the member rewrite of
k3s and MicroK8s files, client certificate expiry, the merge into a personal kubeconfig with
its backup, and the tasks called as invoke would call them."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context

from hubfleet.cli import Exit
from hubfleet.errors import ConfigError
from hubfleet.kube import kubeconfig
from hubfleet.tasks import kubeconfig as kubeconfig_tasks
from tests.conftest_repo import MakeRepo

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def certificate_pem(days: int, now: dt.datetime = NOW) -> bytes:
    """A client certificate as k3s makes them (EC key, system:masters), valid `days` from now."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k3s-client-ca@1700000000")])
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "system:admin"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=365 - days))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


CA_DATA = b64(
    "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAj\n-----END CERTIFICATE-----\n"
)
KEY_DATA = b64("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKq1\n-----END EC PRIVATE KEY-----\n")


def k3s_kubeconfig(days: int = 300) -> dict[str, Any]:
    """/etc/rancher/k3s/k3s.yaml as k3s writes it."""
    return {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": CA_DATA,
                    "server": "https://127.0.0.1:6443",
                },
                "name": "default",
            }
        ],
        "contexts": [{"context": {"cluster": "default", "user": "default"}, "name": "default"}],
        "current-context": "default",
        "kind": "Config",
        "preferences": {},
        "users": [
            {
                "name": "default",
                "user": {
                    "client-certificate-data": b64(certificate_pem(days)),
                    "client-key-data": KEY_DATA,
                },
            }
        ],
    }


def microk8s_kubeconfig() -> dict[str, Any]:
    """`microk8s config` output (token auth)."""
    return {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": CA_DATA,
                    "server": "https://10.1.0.5:16443",
                },
                "name": "microk8s-cluster",
            }
        ],
        "contexts": [
            {"context": {"cluster": "microk8s-cluster", "user": "admin"}, "name": "microk8s"}
        ],
        "current-context": "microk8s",
        "kind": "Config",
        "preferences": {},
        "users": [{"name": "admin", "user": {"token": "bWljcm9rOHMtYWRtaW4tdG9rZW4="}}],
    }


# --- rewrite ----------------------------------------------------------------------------------


def test_rewrite_a_k3s_kubeconfig() -> None:
    original = k3s_kubeconfig()
    before = copy.deepcopy(original)
    result = kubeconfig.rewrite(original, "staging", "https://203.0.113.7:6443", "staging")
    assert original == before  # the input is not touched
    assert result == {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": CA_DATA,
                    "server": "https://203.0.113.7:6443",
                },
                "name": "staging",
            }
        ],
        "contexts": [
            {
                "context": {"cluster": "staging", "user": "staging", "namespace": "staging"},
                "name": "staging",
            }
        ],
        "current-context": "staging",
        "kind": "Config",
        "preferences": {},
        "users": [{"name": "staging", "user": before["users"][0]["user"]}],
    }
    assert list(result) == list(original)  # the file's key order is kept


def test_rewrite_a_microk8s_kubeconfig() -> None:
    result = kubeconfig.rewrite(
        microk8s_kubeconfig(), "gpu-lab", "https://198.51.100.20:16443", "binder"
    )
    assert result["clusters"] == [
        {
            "cluster": {
                "certificate-authority-data": CA_DATA,
                "server": "https://198.51.100.20:16443",
            },
            "name": "gpu-lab",
        }
    ]
    assert result["contexts"] == [
        {
            "context": {"cluster": "gpu-lab", "user": "gpu-lab", "namespace": "binder"},
            "name": "gpu-lab",
        }
    ]
    assert result["users"] == [
        {"name": "gpu-lab", "user": {"token": "bWljcm9rOHMtYWRtaW4tdG9rZW4="}}
    ]
    assert result["current-context"] == "gpu-lab"


def test_rewrite_without_namespace_keeps_the_contexts_own() -> None:
    source = microk8s_kubeconfig()
    source["contexts"][0]["context"]["namespace"] = "kube-system"
    result = kubeconfig.rewrite(source, "lab", "https://lab.example.org:16443")
    assert result["contexts"][0]["context"]["namespace"] == "kube-system"
    assert (
        "namespace"
        not in kubeconfig.rewrite(k3s_kubeconfig(), "m", "https://h:6443")["contexts"][0]["context"]
    )


def test_rewrite_keeps_only_the_contexts_own_cluster_and_user() -> None:
    source = k3s_kubeconfig()
    source["clusters"].append({"name": "other", "cluster": {"server": "https://other:6443"}})
    source["users"].append({"name": "other", "user": {"token": "t"}})
    result = kubeconfig.rewrite(source, "m", "https://h:6443")
    assert [c["name"] for c in result["clusters"]] == ["m"]
    assert [u["name"] for u in result["users"]] == ["m"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda k: k["contexts"].append({"name": "b", "context": {"cluster": "default"}}),
            "one context, found: default, b",
        ),
        (lambda k: k.update(contexts=[]), "one context, found: none"),
        (
            lambda k: k["contexts"][0]["context"].update(cluster="nope"),
            "names cluster 'nope', which is not defined",
        ),
        (
            lambda k: k["contexts"][0]["context"].update(user="nope"),
            "names user 'nope', which is not defined",
        ),
        (lambda k: k.update(users="x"), "`users` is not a list"),
    ],
)
def test_rewrite_refuses_what_it_cannot_make_sense_of(change: Any, message: str) -> None:
    source = k3s_kubeconfig()
    change(source)
    with pytest.raises(ConfigError, match=message):
        kubeconfig.rewrite(source, "m", "https://h:6443", source="k3s.yaml")


@pytest.mark.parametrize("server", ["http://203.0.113.7:6443", "203.0.113.7:6443", "https://"])
def test_rewrite_wants_an_https_server(server: str) -> None:
    with pytest.raises(ConfigError, match="not an https:// URL"):
        kubeconfig.rewrite(k3s_kubeconfig(), "m", server)


def test_member_entries_picks_a_named_context_of_many() -> None:
    source = k3s_kubeconfig()
    source["clusters"].append({"name": "gke_p_z_c", "cluster": {"server": "https://34.1.2.3"}})
    source["users"].append(
        {"name": "gke_p_z_c", "user": {"exec": {"command": "gke-gcloud-auth-plugin"}}}
    )
    source["contexts"].append(
        {"name": "gke_p_z_c", "context": {"cluster": "gke_p_z_c", "user": "gke_p_z_c"}}
    )
    result = kubeconfig.member_entries(source, "gke-prod", "gke_p_z_c")
    assert result["clusters"] == [{"name": "gke-prod", "cluster": {"server": "https://34.1.2.3"}}]
    assert result["users"] == [
        {"name": "gke-prod", "user": {"exec": {"command": "gke-gcloud-auth-plugin"}}}
    ]
    assert result["contexts"] == [
        {"name": "gke-prod", "context": {"cluster": "gke-prod", "user": "gke-prod"}}
    ]
    assert result["current-context"] == "gke-prod"


# --- client certificate expiry ----------------------------------------------------------------


def test_client_cert_days_left() -> None:
    assert kubeconfig.client_cert_days_left(k3s_kubeconfig(days=10), NOW) == 10
    assert kubeconfig.client_cert_days_left(k3s_kubeconfig(days=200), NOW) == 200
    assert (
        kubeconfig.client_cert_days_left(k3s_kubeconfig(days=10), NOW + dt.timedelta(days=12)) == -2
    )
    assert kubeconfig.client_cert_days_left(microk8s_kubeconfig(), NOW) is None
    # the rewrite keeps the certificate as it was
    rewritten = kubeconfig.rewrite(k3s_kubeconfig(days=200), "m", "https://h:6443")
    assert kubeconfig.client_cert_days_left(rewritten, NOW) == 200


def test_cert_warning_under_30_days() -> None:
    warning = kubeconfig.cert_warning(k3s_kubeconfig(days=10), NOW)
    assert warning is not None and warning.startswith("the client certificate expires in 10 days")
    assert "fetch the kubeconfig again" in warning
    assert kubeconfig.cert_warning(k3s_kubeconfig(days=200), NOW) is None
    assert kubeconfig.cert_warning(k3s_kubeconfig(days=30), NOW) is None
    assert kubeconfig.cert_warning(microk8s_kubeconfig(), NOW) is None
    expired = kubeconfig.cert_warning(k3s_kubeconfig(days=1), NOW + dt.timedelta(days=3))
    assert expired is not None and "has expired" in expired


def test_bad_certificate_data_is_a_config_error() -> None:
    source = k3s_kubeconfig()
    source["users"][0]["user"]["client-certificate-data"] = b64("not a certificate")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        kubeconfig.client_cert_days_left(source, NOW)


# --- merge --------------------------------------------------------------------------------------


def personal() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "work", "cluster": {"server": "https://work.example.org:6443"}},
            {"name": "staging", "cluster": {"server": "https://old.example.org:6443"}},
        ],
        "users": [
            {"name": "work", "user": {"token": "work-token"}},
            {"name": "staging", "user": {"token": "old-token"}},
        ],
        "contexts": [
            {"name": "work", "context": {"cluster": "work", "user": "work"}},
            {"name": "staging", "context": {"cluster": "staging", "user": "staging"}},
        ],
        "current-context": "work",
        "preferences": {"colors": True},
    }


_MEMBER_CFG = kubeconfig.rewrite(k3s_kubeconfig(), "staging", "https://203.0.113.7:6443", "staging")


def member_cfg() -> dict[str, Any]:
    """The member's stored kubeconfig (one certificate for the whole module)."""
    return copy.deepcopy(_MEMBER_CFG)


def test_merge_replaces_the_members_entries_and_keeps_the_rest() -> None:
    before = personal()
    merged = kubeconfig.merge_into(before, member_cfg())
    assert before == personal()  # not mutated
    assert merged["current-context"] == "work"
    assert merged["preferences"] == {"colors": True}
    assert [c["name"] for c in merged["clusters"]] == ["work", "staging"]  # in place
    assert merged["clusters"][0] == personal()["clusters"][0]
    assert merged["clusters"][1] == member_cfg()["clusters"][0]
    assert merged["users"][1] == member_cfg()["users"][0]
    assert merged["contexts"][1] == member_cfg()["contexts"][0]
    assert [str(c) for c in kubeconfig.merge_changes(before, member_cfg())] == [
        "cluster staging: updated",
        "user staging: updated",
        "context staging: updated",
    ]
    assert [c.action for c in kubeconfig.merge_changes(merged, member_cfg())] == ["unchanged"] * 3


def test_merge_adds_a_new_member() -> None:
    cfg = kubeconfig.rewrite(microk8s_kubeconfig(), "lab", "https://lab.example.org:16443")
    merged = kubeconfig.merge_into(personal(), cfg)
    assert [c["name"] for c in merged["contexts"]] == ["work", "staging", "lab"]
    assert merged["current-context"] == "work"
    assert {c.action for c in kubeconfig.merge_changes(personal(), cfg)} == {"added"}


def test_merge_into_nothing_sets_the_current_context() -> None:
    merged = kubeconfig.merge_into(None, member_cfg())
    assert merged["current-context"] == "staging"
    assert merged["clusters"] == member_cfg()["clusters"]
    no_current = personal()
    del no_current["current-context"]
    assert kubeconfig.merge_into(no_current, member_cfg())["current-context"] == "staging"
    nulls = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": None,
        "users": None,
        "contexts": None,
        "current-context": "",
    }
    assert kubeconfig.merge_into(nulls, member_cfg())["current-context"] == "staging"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_file_backs_up_first_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / ".kube" / "config"
    assert kubeconfig.write_file(path, personal(), NOW) is None  # nothing to back up
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    old = path.read_bytes()
    merged = kubeconfig.merge_into(kubeconfig.read_file(path), member_cfg())
    backup = kubeconfig.write_file(path, merged, NOW)
    assert backup == tmp_path / ".kube" / "config.bak-20260301120000"
    assert backup.read_bytes() == old
    assert mode(backup) == 0o600
    assert mode(path) == 0o600
    assert kubeconfig.read_file(path) == merged
    # a second write in the same second keeps the first backup
    second = kubeconfig.write_file(path, personal(), NOW)
    assert second == tmp_path / ".kube" / "config.bak-20260301120000-2"
    assert backup.read_bytes() == old
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "config",
        "config.bak-20260301120000",
        "config.bak-20260301120000-2",
    ]  # no temp file left behind


def test_write_file_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(yaml.safe_dump(personal()))
    link = tmp_path / "config"
    link.symlink_to(real)
    kubeconfig.write_file(link, member_cfg(), NOW)
    assert link.is_symlink()
    assert kubeconfig.read_file(real) == member_cfg()


def test_read_file(tmp_path: Path) -> None:
    assert kubeconfig.read_file(tmp_path / "missing") is None
    (tmp_path / "empty").write_text("")
    assert kubeconfig.read_file(tmp_path / "empty") is None
    (tmp_path / "list").write_text("- a\n")
    with pytest.raises(ConfigError, match="not a kubeconfig"):
        kubeconfig.read_file(tmp_path / "list")
    (tmp_path / "bad").write_text("a: [\n")
    with pytest.raises(ConfigError, match=r"bad:1: malformed YAML: .*; not a kubeconfig"):
        kubeconfig.read_file(tmp_path / "bad")


def test_default_path_comes_from_home() -> None:
    assert kubeconfig.default_path({"HOME": "/home/op"}) == Path("/home/op/.kube/config")
    with pytest.raises(ConfigError, match="HOME is not set"):
        kubeconfig.default_path({})


# --- the tasks --------------------------------------------------------------------------------


def test_rewrite_task_prints_the_rewritten_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fetched = tmp_path / "k3s.yaml"
    config = k3s_kubeconfig()
    fresh = certificate_pem(365, dt.datetime.now(dt.UTC))
    config["users"][0]["user"]["client-certificate-data"] = b64(fresh)
    fetched.write_text(yaml.safe_dump(config))
    before = fetched.read_bytes()
    kubeconfig_tasks.rewrite(
        Context(),
        str(fetched),
        member="staging",
        server="https://203.0.113.7:6443",
        namespace="staging",
    )
    out, err = capsys.readouterr()
    assert err == ""
    printed = yaml.safe_load(out)
    assert printed["current-context"] == "staging"
    assert printed["clusters"][0]["cluster"]["server"] == "https://203.0.113.7:6443"
    assert printed["contexts"][0]["context"] == {
        "cluster": "staging",
        "user": "staging",
        "namespace": "staging",
    }
    assert printed["users"][0]["user"] == config["users"][0]["user"]
    assert fetched.read_bytes() == before


def test_rewrite_task_warns_about_a_certificate_close_to_expiry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fetched = tmp_path / "k3s.yaml"
    now = dt.datetime.now(dt.UTC)
    config = k3s_kubeconfig()
    config["users"][0]["user"]["client-certificate-data"] = b64(certificate_pem(10, now))
    fetched.write_text(yaml.safe_dump(config))
    kubeconfig_tasks.rewrite(Context(), str(fetched), member="m", server="https://h:6443")
    out, err = capsys.readouterr()
    assert err.startswith(f"warning: {fetched}: the client certificate expires in ")
    assert yaml.safe_load(out)["current-context"] == "m"


def test_rewrite_task_failures_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as exited:
        kubeconfig_tasks.rewrite(
            Context(), str(tmp_path / "nope.yaml"), member="m", server="https://h:6443"
        )
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yaml'}: no such file\n"


def test_merge_task(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = member_cfg()
    repo = deploy_repo(
        members={"staging": {"domain": "staging.example.org"}},
        kubeconfigs={"staging": stored},
    )
    monkeypatch.chdir(repo.root)
    home = Path(os.environ["HOME"])  # deploy_repo points HOME at a temp dir
    target = home / ".kube" / "config"
    target.parent.mkdir()
    target.write_text(yaml.safe_dump(personal()))
    old = target.read_bytes()

    kubeconfig_tasks.merge(Context(), "staging")
    out, err = capsys.readouterr()
    assert err == ""
    merged = kubeconfig.read_file(target)
    assert merged is not None
    assert merged["current-context"] == "work"
    assert merged["clusters"][1] == stored["clusters"][0]
    assert merged["users"][1] == stored["users"][0]
    assert mode(target) == 0o600
    backups = sorted(target.parent.glob("config.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == old and mode(backups[0]) == 0o600
    assert "cluster staging: updated" in out
    assert "current-context left at work" in out
    # never a credential in the output
    for secret in (stored["users"][0]["user"]["client-certificate-data"], KEY_DATA, "old-token"):
        assert secret not in out

    kubeconfig_tasks.merge(Context(), "staging")
    out, _ = capsys.readouterr()
    assert "nothing written" in out
    assert len(list(target.parent.glob("config.bak-*"))) == 1


def test_merge_task_into_a_new_file(
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    repo = deploy_repo(
        members={"staging": {"domain": "staging.example.org"}},
        kubeconfigs={"staging": member_cfg()},
    )
    monkeypatch.chdir(repo.root)
    target = tmp_path / "elsewhere" / "kubeconfig"
    target.parent.mkdir()
    kubeconfig_tasks.merge(Context(), "staging", into=str(target))
    out, _ = capsys.readouterr()
    assert kubeconfig.read_file(target) == kubeconfig.merge_into(None, member_cfg())
    assert mode(target) == 0o600
    assert "current-context set to staging (the file had none)" in out
    assert not list(target.parent.glob("*.bak-*"))


def test_merge_task_touches_nothing_that_is_not_a_kubeconfigs_place(
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    repo = deploy_repo(
        members={"staging": {"domain": "staging.example.org"}},
        kubeconfigs={"staging": member_cfg()},
    )
    monkeypatch.chdir(repo.root)
    values = tmp_path / "values.yaml"
    values.write_text("hub:\n  replicas: 2\n")
    linked = tmp_path / "linked"
    linked.symlink_to(values)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone" / "config")
    prose = tmp_path / "notes.txt"
    prose.write_text("key: [unclosed\nmore: text\n")
    versionless = tmp_path / "versionless"
    versionless.write_text("kind: Config\nclusters: []\n")
    other_kind = tmp_path / "other-kind"
    other_kind.write_text("apiVersion: v1\nkind: ConfigMap\n")
    real = tmp_path / "real-config"
    real.write_text(yaml.safe_dump(personal()))
    link_to_real = tmp_path / "link-to-real"
    link_to_real.symlink_to(real)
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    # root writes into a 0500 folder anyway; sysfs refuses new files even to root
    unwritable = Path("/sys") if os.geteuid() == 0 else readonly
    cases = {
        str(tmp_path / "no" / "such" / "dir" / "config"): f"error: {tmp_path / 'no/such'} "
        "does not exist; create it first (only the last folder is made)",
        str(dangling): f"error: {dangling} is a symlink to {tmp_path / 'gone/config'}, which does "
        "not exist; point --into at a kubeconfig file",
        str(linked): f"error: {linked} is a symlink to {values}; to write that file, add "
        "--follow-symlinks",
        str(link_to_real): f"error: {link_to_real} is a symlink to {real}; to write that file, "
        "add --follow-symlinks",
        str(values): f"error: {values} is not a kubeconfig (keys hub); not touching it",
        str(versionless): f"error: {versionless} is not a kubeconfig (no apiVersion: v1); "
        "not touching it",
        str(other_kind): f"error: {other_kind} is not a kubeconfig (kind ConfigMap); "
        "not touching it",
        str(prose): f"error: {prose}:2: malformed YAML: did not find expected ',' or ']'; "
        "not a kubeconfig, not touching it",
        str(unwritable / "hubfleet-config"): f"error: cannot write "
        f"{unwritable / 'hubfleet-config'}: Permission denied; nothing was changed",
    }
    before = {p: p.read_bytes() for p in (values, prose, versionless, other_kind, real)}
    try:
        for into, expected in cases.items():
            with pytest.raises(Exit):
                kubeconfig_tasks.merge(Context(), "staging", into=into)
            out, err = capsys.readouterr()
            assert err == expected + "\n", into
            assert out == ""  # nothing said done before it was
    finally:
        readonly.chmod(0o700)
    assert not (tmp_path / "no").exists() and not (tmp_path / "gone").exists()
    assert {p: p.read_bytes() for p in (values, prose, versionless, other_kind, real)} == before
    assert not list(tmp_path.glob("*.bak-*"))


def test_merge_task_follows_a_symlink_when_asked_and_makes_only_the_last_folder(
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    repo = deploy_repo(
        members={"staging": {"domain": "staging.example.org"}},
        kubeconfigs={"staging": member_cfg()},
    )
    monkeypatch.chdir(repo.root)
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(yaml.safe_dump(personal()))
    link = tmp_path / "config-link"
    link.symlink_to(real)
    kubeconfig_tasks.merge(Context(), "staging", into=str(link), follow_symlinks=True)
    capsys.readouterr()
    assert link.is_symlink()  # the link stays; the file it points to got the member
    merged = kubeconfig.read_file(real)
    assert merged is not None and "staging" in [c["name"] for c in merged["contexts"]]

    fresh = tmp_path / "new-folder" / "config"  # one missing folder: made, 0700
    kubeconfig_tasks.merge(Context(), "staging", into=str(fresh))
    assert mode(fresh.parent) == 0o700 and mode(fresh) == 0o600


def test_merge_task_names_a_missing_kubeconfig(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = deploy_repo(members={"staging": {"domain": "staging.example.org"}})
    monkeypatch.chdir(repo.root)
    with pytest.raises(Exit):
        kubeconfig_tasks.merge(Context(), "staging")
    assert "no kubeconfig at secrets/staging-kubeconfig.yaml" in capsys.readouterr().err


def test_rewrite_task_given_a_flag_as_file_points_at_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(Exit):
        kubeconfig_tasks.rewrite(Context(), "-x", member="m", server="https://h:6443")
    assert "for help run: invoke --help kubeconfig.rewrite" in capsys.readouterr().err
