"""`invoke member.new` against test hosts (faked facts), `invoke member.remove` on deploy repos.

Real sops/age; real SSH to harness hosts (tests/harness.py) for the facts member.new sizes from.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import load_mapping
from hubfleet.hosts.hostkeys import HostKeyDecision
from hubfleet.hosts.ssh import HostUnreachableError
from hubfleet.members.new import MASK, NewMemberOptions, new_member
from hubfleet.members.remove import registry_without, remove_member
from hubfleet.members.templates import NewMember
from hubfleet.registry import sizing
from hubfleet.registry.members import check_registry, load_registry
from hubfleet.secrets import sops
from tests.conftest_repo import PROJECT, MakeRepo, tree_snapshot
from tests.harness import HostLab, TestHost

REGISTRY = """\
# The federation (a comment that must survive)
members:
  # alpha: the first member
  alpha:
    stage: staging
    provider: kubeconfig
    domain: alpha.example.org
    chart: charts/demo  # the test chart

  # gamma comes next
  gamma:
    stage: prod
    provider: kubeconfig
    domain: gamma.example.org
    chart: charts/demo
"""
SECRET_KEYS = {
    "binderhub.jupyterhub.hub.cookieSecret": 64,
    "binderhub.jupyterhub.hub.services.binder.apiToken": 64,
    "binderhub.jupyterhub.proxy.secretToken": 64,
    "harbor.harborAdminPassword": 24,
    "harbor.secretKey": 16,
    "harbor.database.internal.password": 24,
}


@pytest.fixture
def repo(deploy_repo: MakeRepo) -> DeployRepo:
    made = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}, "gamma": {"domain": "gamma.example.org"}}
    )
    made.registry.write_text(REGISTRY)
    shutil.copytree(PROJECT / "config" / "templates", made.root / "config" / "templates")
    (made.root / "chart").mkdir()
    shutil.copy(PROJECT / "chart" / "Chart.yaml", made.root / "chart" / "Chart.yaml")
    return made


def request_for(host: TestHost, name: str = "beta", **kw: object) -> NewMember:
    return NewMember(name, host.address, kw.pop("domain", "beta.example.org"), **kw)  # type: ignore[arg-type]


def options_for(lab: HostLab, host: TestHost, **kw: object) -> NewMemberOptions:
    return NewMemberOptions(
        identity=lab.client_key_path,
        host_key=HostKeyDecision(accept=host.host_key_fingerprint),
        connect_timeout_s=2.0,
        **kw,  # type: ignore[arg-type]
    )


def dig(data: object, dotted: str) -> object:
    for key in dotted.split("."):
        assert isinstance(data, dict), dotted
        data = data[key]
    return data


def test_new_member_is_registered_sized_and_given_fresh_encrypted_secrets(
    repo: DeployRepo, host_lab: HostLab, capsys: pytest.CaptureFixture[str]
) -> None:
    host = host_lab.add_host(mem_gb=64, cpus=16, disk_gb=200)
    new_member(repo, request_for(host), options_for(host_lab, host))
    out = capsys.readouterr().out

    # the registry: the old text byte for byte, the new block appended, and valid
    text = repo.registry.read_text()
    assert text.startswith(REGISTRY)
    assert text[len(REGISTRY) :] == (
        "  beta:\n"
        "    # added by invoke member.new\n"
        "    stage: staging\n"
        "    provider: k3s\n"
        "    domain: beta.example.org\n"
        "    support:\n"
        "      issuer: selfsigned\n"
        "    hosts:\n"
        f"      - address: {host.address}\n"
    )
    # no --email and no other member's to share: self-signed until one is set, and said so
    assert "no --email: its certificates come from the self-signed issuer" in out
    assert check_registry(repo)[1] == []
    member = load_registry(repo).member("beta")
    assert (member.provider, member.stage, member.hosts[0].address) == (
        "k3s",
        "staging",
        host.address,
    )
    assert host.host_key_line in (repo.root / "config" / "known_hosts").read_text()

    # the values: hostnames from the domain, sizing by the formulas
    values = load_mapping(repo.member_values("beta")).data
    header = repo.member_values("beta").read_text()
    disk = float(re.search(r"16 CPUs, 64.0 GB RAM, ([0-9.]+) GB disk", header).group(1))  # type: ignore[union-attr]
    assert 190 < disk <= 200
    binder = values["binderhub"]
    assert binder["ingress"]["hosts"] == ["beta.example.org"]
    assert binder["jupyterhub"]["ingress"]["hosts"] == ["hub.beta.example.org"]
    assert binder["config"]["BinderHub"]["hub_url"] == "https://hub.beta.example.org"
    assert values["harbor"]["expose"]["ingress"]["hosts"]["core"] == "registry.beta.example.org"
    assert values["harbor"]["externalURL"] == "https://registry.beta.example.org"
    support = load_mapping(repo.member_values("beta", "support")).data
    assert support["grafana"]["ingress"]["hosts"] == ["grafana.beta.example.org"]
    assert "grafana" not in values  # Grafana is the support release's
    # 64 GB, 16 CPUs: maxPods round(1.75 x 64) = 112; dind 2-8 CPUs, 4-8 GiB; users fit in
    # RAM (64 - 4 - 8 GB) / 450 MB = 118, in pod slots 112 - 25 = 87: quota 87
    assert sizing.max_pods(64) == 112
    assert binder["config"]["LaunchQuota"]["total_quota"] == 87 == sizing.launch_quota(64, 112, 8)
    assert binder["dind"]["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "8", "memory": "8Gi"},
    }
    high, low = sizing.image_cleaner_thresholds(disk)
    assert binder["imageCleaner"] == {
        "imageGCThresholdType": "absolute",
        "imageGCThresholdHigh": int(high) * 10**9,
        "imageGCThresholdLow": int(low) * 10**9,
    }
    assert binder["jupyterhub"]["singleuser"]["memory"]["guarantee"] == "450M"
    assert "maxPods is 112" in header

    # the secrets: encrypted, fresh, distinct, never printed
    path = repo.member_secret_values("beta")
    assert sops.is_encrypted(path)
    stored = sops.decrypt_yaml(repo, path)
    found = {key: dig(stored, key) for key in SECRET_KEYS}
    assert all(isinstance(v, str) and len(v) == SECRET_KEYS[k] for k, v in found.items())
    assert all(re.fullmatch(r"[0-9a-f]{64}", str(found[k])) for k in list(SECRET_KEYS)[:3])
    assert len(set(found.values())) == len(found)
    keys = dig(stored, "binderhub.jupyterhub.hub.config.CryptKeeper.keys")
    assert isinstance(keys, list) and re.fullmatch(r"[0-9a-f]{64}", keys[0])
    support_path = repo.member_secret_values("beta", "support")
    assert sops.is_encrypted(support_path)
    grafana = dig(sops.decrypt_yaml(repo, support_path), "grafana.adminPassword")
    assert isinstance(grafana, str) and len(grafana) == 24
    for value in [*found.values(), keys[0], grafana]:
        assert str(value) not in out
    assert "launch quota 87, maxPods 112" in out

    # a second member gets secrets of its own
    host2 = host_lab.add_host(mem_gb=16, cpus=4, disk_gb=50)
    new_member(
        repo, request_for(host2, "delta", domain="delta.example.org"), options_for(host_lab, host2)
    )
    other = sops.decrypt_yaml(repo, repo.member_secret_values("delta"))
    assert not set(map(str, found.values())) & {str(dig(other, k)) for k in SECRET_KEYS}
    small = load_mapping(repo.member_values("delta")).data["binderhub"]
    # 16 GB: maxPods at its floor of 30 leaves 5 launches (RAM would hold 20)
    assert small["config"]["LaunchQuota"]["total_quota"] == 5
    assert check_registry(repo)[1] == []


def test_dry_run_writes_nothing_and_masks_secrets(
    repo: DeployRepo, host_lab: HostLab, capsys: pytest.CaptureFixture[str]
) -> None:
    host = host_lab.add_host(mem_gb=32, cpus=8, disk_gb=100)
    before = tree_snapshot(repo.root)
    plan = new_member(repo, request_for(host), options_for(host_lab, host, dry_run=True))
    assert tree_snapshot(repo.root) == before
    out = capsys.readouterr().out
    assert "--- config/federation.yaml (appended)\n  beta:" in out
    assert "--- config/beta.yaml\n" in out and "total_quota: " in out
    assert "--- secrets/config/beta.yaml (encrypted; values masked)" in out
    assert f'cookieSecret: "{MASK}"' in out
    assert f"--- config/known_hosts (appended)\n{host.host_key_line}" in out
    assert "dry run, nothing written" in out
    secrets = plan.files[1].content
    for value in re.findall(r'"([^"]+)"', secrets):
        assert value not in out


def test_an_existing_name_is_refused_naming_its_line(repo: DeployRepo) -> None:
    before = tree_snapshot(repo.root)
    request = NewMember("gamma", "192.0.2.1", "new.example.org")
    with pytest.raises(HubfleetError, match=r"^member gamma exists in config/federation.yaml:11$"):
        new_member(repo, request, NewMemberOptions())
    assert tree_snapshot(repo.root) == before


@pytest.mark.parametrize(
    ("name", "domain", "message"),
    [
        ("Beta", "beta.example.org", "member name 'Beta' is not a DNS label"),
        ("beta", "https://beta.example.org", "domain 'https://beta.example.org' is malformed"),
        ("beta", "beta.example.org.", "domain 'beta.example.org.' is malformed"),
        ("beta", "localhost", "domain 'localhost' is malformed"),
        ("beta", "alpha.example.org", "domain alpha.example.org is already member alpha's"),
    ],
)
def test_bad_names_and_domains_are_refused_before_contact(
    repo: DeployRepo, name: str, domain: str, message: str
) -> None:
    before = tree_snapshot(repo.root)
    with pytest.raises(HubfleetError) as err:
        new_member(repo, NewMember(name, "192.0.2.1", domain), NewMemberOptions())
    assert str(err.value).startswith(message)
    assert tree_snapshot(repo.root) == before


def test_an_unreachable_host_writes_nothing(repo: DeployRepo, host_lab: HostLab) -> None:
    host = host_lab.add_host()
    host.link_down()
    before = tree_snapshot(repo.root)
    with pytest.raises(HostUnreachableError, match=f"host {host.address}: unreachable"):
        new_member(repo, request_for(host), options_for(host_lab, host))
    assert tree_snapshot(repo.root) == before


def test_an_unaccepted_host_key_writes_nothing(repo: DeployRepo, host_lab: HostLab) -> None:
    host = host_lab.add_host()
    before = tree_snapshot(repo.root)
    options = NewMemberOptions(identity=host_lab.client_key_path, connect_timeout_s=2.0)
    with pytest.raises(HubfleetError, match="unknown host key SHA256:"):
        new_member(repo, request_for(host), options)
    assert tree_snapshot(repo.root) == before


def test_a_failure_while_writing_rolls_everything_back(repo: DeployRepo, host_lab: HostLab) -> None:
    host = host_lab.add_host(mem_gb=16, cpus=4, disk_gb=50)
    (repo.root / "chart" / "Chart.yaml").unlink()  # the registry check fails after writing
    before = tree_snapshot(repo.root)
    with pytest.raises(
        ConfigError, match=r"not adding member beta: .* no chart at chart/Chart\.yaml"
    ):
        new_member(repo, request_for(host), options_for(host_lab, host))
    assert tree_snapshot(repo.root) == before
    assert not repo.member_secret_values("beta").exists()


def test_microk8s_members_get_a_main_host_and_a_metallb_pool(
    repo: DeployRepo, host_lab: HostLab
) -> None:
    host = host_lab.add_host(mem_gb=16, cpus=4, disk_gb=50)
    new_member(
        repo, request_for(host, provider="microk8s", stage="prod"), options_for(host_lab, host)
    )
    member = load_registry(repo).member("beta")
    assert member.hosts[0].role == "main"
    assert member.microk8s["metallb"] == f"{host.address}/32"


# --- member.remove ------------------------------------------------------------------------


def test_remove_keeps_the_rest_of_the_registry_byte_for_byte(repo: DeployRepo) -> None:
    remove_member(repo, "alpha", purge=False, confirm=lambda q: True, say=lambda _: None)
    assert repo.registry.read_text() == (
        "# The federation (a comment that must survive)\n"
        "members:\n"
        "  # gamma comes next\n"
        "  gamma:\n"
        "    stage: prod\n"
        "    provider: kubeconfig\n"
        "    domain: gamma.example.org\n"
        "    chart: charts/demo\n"
    )
    assert repo.member_values("alpha").exists()  # no purge: files stay
    assert repo.member_secret_values("alpha").exists()
    remove_member(repo, "gamma", purge=False, confirm=lambda q: True, say=lambda _: None)
    assert repo.registry.read_text() == (
        "# The federation (a comment that must survive)\nmembers: {}\n"
    )
    assert check_registry(repo)[1] == []


def test_remove_the_last_member_of_several(repo: DeployRepo) -> None:
    remove_member(repo, "gamma", purge=False, confirm=lambda q: True, say=lambda _: None)
    text = repo.registry.read_text()
    assert text == REGISTRY[: REGISTRY.index("  # gamma comes next")]
    assert list(load_registry(repo).members) == ["alpha"]


def test_remove_with_purge_deletes_the_members_files_only(repo: DeployRepo) -> None:
    for name in (
        "alpha.key",
        "alpha.key.pub",
        "alpha-wireguard.yaml",
        "alpha-kubeconfig.yaml",
        "alpha-gke.yaml",
        "alpha-tofu.yaml",
    ):
        (repo.secrets_dir / name).write_text("x")
    progress = repo.root / ".hubfleet" / "onboarding" / "alpha.json"
    progress.parent.mkdir(parents=True)
    progress.write_text("{}")
    tofu_work = repo.root / ".hubfleet" / "tofu" / "alpha" / "s3"
    tofu_work.mkdir(parents=True)
    (repo.secrets_dir / "alphabet.key").write_text("not alpha's")
    questions: list[str] = []
    lines: list[str] = []

    def agree(question: str) -> bool:
        questions.append(question)
        return True

    deleted = remove_member(repo, "alpha", purge=True, confirm=agree, say=lines.append)
    assert [repo.relative(p) for p in deleted] == [
        "config/alpha.yaml",
        "secrets/config/alpha.yaml",
        "secrets/alpha-kubeconfig.yaml",
        "secrets/alpha.key",
        "secrets/alpha.key.pub",
        "secrets/alpha-wireguard.yaml",
        "secrets/alpha-gke.yaml",
        "secrets/alpha-tofu.yaml",
        ".hubfleet/onboarding/alpha.json",
    ]
    assert all(not p.exists() for p in deleted)
    assert not tofu_work.parent.exists()
    assert any("ran OpenTofu stacks (s3)" in line for line in lines)
    assert (repo.secrets_dir / "alphabet.key").exists()
    assert repo.member_values("gamma").exists() and repo.member_secret_values("gamma").exists()
    assert questions[0].startswith("Remove member alpha from config/federation.yaml and delete 9")
    assert "deleted secrets/alpha.key" in lines


def test_remove_not_confirmed_changes_nothing(repo: DeployRepo) -> None:
    before = tree_snapshot(repo.root)
    with pytest.raises(HubfleetError, match="not removed"):
        remove_member(repo, "alpha", purge=True, confirm=lambda q: False)
    assert tree_snapshot(repo.root) == before


def test_remove_an_unknown_member_suggests(repo: DeployRepo) -> None:
    with pytest.raises(HubfleetError, match="did you mean alpha"):
        remove_member(repo, "alpah", purge=False, confirm=lambda q: True)


def test_remove_task_refuses_without_a_terminal_or_yes(
    repo: DeployRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke.context import Context

    from hubfleet.cli import Exit
    from hubfleet.tasks import member as member_tasks

    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))
    before = tree_snapshot(repo.root)
    with pytest.raises(Exit):
        member_tasks.remove(Context(), "alpha")
    assert "no terminal to confirm on; rerun with --yes" in capsys.readouterr().err
    assert tree_snapshot(repo.root) == before
    member_tasks.remove(Context(), "alpha", purge=True, yes=True)
    assert "alpha" not in load_registry(repo).members
    assert not repo.member_values("alpha").exists()


def test_registry_without_keeps_flow_style_out() -> None:
    from hubfleet.files.yamlfile import parse_with_lines

    text = "members:\n  a: {stage: prod, provider: gke, domain: a.example.org}\n  b: {}\n"
    doc = parse_with_lines(text, Path("f.yaml"))
    assert yaml.safe_load(registry_without(text, doc, "a")) == {"members": {"b": {}}}


def test_a_gke_member_is_added_without_a_host_sized_from_its_user_nodes(
    repo: DeployRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke.context import Context

    from hubfleet.cli import Exit
    from hubfleet.cloud.tofu_runs import prepare
    from hubfleet.tasks import member as member_tasks

    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))
    before = tree_snapshot(repo.root)
    with pytest.raises(Exit):
        member_tasks.new(Context(), "gpu", "gpu.example.org", provider="gke", gke_project="p-1234")
    assert "a gke member needs --gke-project and --gke-location" in capsys.readouterr().err
    with pytest.raises(Exit):
        member_tasks.new(Context(), "vm", "vm.example.org")
    assert "a k3s member needs --host" in capsys.readouterr().err
    assert tree_snapshot(repo.root) == before

    member_tasks.new(
        Context(),
        "gpu",
        "gpu.example.org",
        provider="gke",
        gke_project="gpu-lab-1234",
        gke_location="us-central1-a",
        node_cpus=16,
        node_ram_gb=60,
    )
    said = capsys.readouterr().out
    assert "GKE user nodes: 16 CPUs, 60.0 GB RAM, 100.0 GB disk -> launch quota" in said
    assert "next: invoke tofu.apply gpu gke --save-outputs" in said
    member = load_registry(repo).member("gpu")
    assert (member.provider, member.hosts) == ("gke", ())
    assert dict(member.gke) == {
        "project": "gpu-lab-1234",
        "location": "us-central1-a",
        "cluster": "gpu",
    }
    values = repo.member_values("gpu").read_text()
    assert "from GKE user nodes: 16 CPUs, 60.0 GB RAM" in values
    assert sops.is_encrypted(repo.member_secret_values("gpu"))
    assert not (repo.root / "config" / "known_hosts").exists()  # nothing was contacted
    # the registry entry is what the gke stack reads
    shutil.copytree(PROJECT / "terraform", repo.root / "terraform")
    tfvars = prepare(repo, "gpu", "gke").tfvars
    assert (tfvars["gke_project"], tfvars["gke_location"], tfvars["gke_cluster"]) == (
        "gpu-lab-1234",
        "us-central1-a",
        "gpu",
    )
