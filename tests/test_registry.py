"""The member registry: schema checks of every member, file:line errors, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubfleet.errors import ConfigError, UnknownMemberError
from hubfleet.files.repo import DeployRepo, find_repo
from hubfleet.registry.members import check_registry, load_registry

GOOD = """\
members:
  alpha:
    stage: staging
    provider: kubeconfig
    domain: alpha.example.org
    chart: charts/c
  beta:
    stage: prod
    provider: k3s
    domain: beta.example.org
    namespace: binder
    release: bhub
    chart: charts/c
    hosts:
      - address: 10.0.0.5
        user: ubuntu
        port: 2222
        role: server
"""


def make_repo(tmp_path: Path, registry: str) -> DeployRepo:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "federation.yaml").write_text(registry)
    chart = tmp_path / "charts" / "c"
    chart.mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    return DeployRepo(tmp_path)


def problems(tmp_path: Path, registry: str) -> list[str]:
    return [str(p) for p in check_registry(make_repo(tmp_path, registry))[1]]


def test_a_good_registry_loads_with_defaults(tmp_path: Path) -> None:
    registry = load_registry(make_repo(tmp_path, GOOD))
    alpha, beta = registry.member("alpha"), registry.member("beta")
    assert (alpha.namespace, alpha.release, alpha.hosts) == ("alpha", "alpha", ())
    assert (beta.namespace, beta.release) == ("binder", "bhub")
    assert beta.hosts[0].user == "ubuntu" and beta.hosts[0].port == 2222
    assert [m.name for m in registry.by_stage("prod")] == ["beta"]


def test_an_unknown_key_in_a_later_member_names_member_key_and_line(tmp_path: Path) -> None:
    bad = GOOD.replace("    release: bhub\n", "    release: bhub\n    replicas: 3\n")
    found = problems(tmp_path, bad)
    assert found == [
        "config/federation.yaml:13: member beta: key 'replicas': unknown key "
        "(allowed: stage, provider, domain, namespace, release, chart, kube_context, health_check, hosts, k3s, microk8s, sizing, s3, gke, tofu, support, federation)"
    ]


def test_every_member_is_checked_not_only_the_first(tmp_path: Path) -> None:
    members = "".join(
        f"  m{i}:\n    stage: {'prod' if i != 9 else 'production'}\n    provider: kubeconfig\n"
        f"    domain: m{i}.example.org\n    chart: charts/c\n"
        for i in range(10)
    )
    found = problems(tmp_path, "members:\n" + members)
    assert len(found) == 1
    assert found[0].startswith(
        "config/federation.yaml:48: member m9: key 'stage': 'production' is not one of"
    )


def test_all_problems_are_reported_in_file_order(tmp_path: Path) -> None:
    bad = GOOD.replace("stage: staging", "stage: nope").replace("port: 2222", "port: 99999")
    found = problems(tmp_path, bad)
    assert [f.split(":")[1] for f in found] == ["3", "17"]
    assert "key 'hosts.0.port'" in found[1]


def test_unknown_key_in_a_host_points_at_its_line(tmp_path: Path) -> None:
    bad = GOOD.replace("        role: server\n", "        role: server\n        sudo: true\n")
    found = problems(tmp_path, bad)
    assert len(found) == 1 and found[0].startswith(
        "config/federation.yaml:19: member beta: key 'sudo'"
    )


def test_a_missing_required_key_is_named(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("    domain: alpha.example.org\n", ""))
    assert found == ["config/federation.yaml:2: member alpha: key 'domain': is required"]


def test_self_hosted_members_need_hosts_and_others_may_not_have_them(tmp_path: Path) -> None:
    no_hosts = GOOD.split("    hosts:")[0]
    assert problems(tmp_path, no_hosts) == [
        "config/federation.yaml:7: member beta: key 'hosts': is required"
    ]
    with_hosts = GOOD.replace(
        "    chart: charts/c\n  beta",
        "    chart: charts/c\n    hosts: [{address: 1.2.3.4}]\n  beta",
    )
    assert problems(tmp_path, with_hosts)[0].startswith(
        "config/federation.yaml:7: member alpha: key 'hosts': only k3s and microk8s"
    )


def test_bad_member_name_and_domain(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        GOOD.replace("  alpha:", "  Alpha_1:").replace("alpha.example.org", "not a domain"),
    )
    assert any("'Alpha_1' is not a valid member name" in f for f in found)
    assert any("'not a domain' is not a valid domain name" in f for f in found)


def test_missing_chart_and_shared_domain(tmp_path: Path) -> None:
    bad = GOOD.replace("    chart: charts/c\n  beta", "    chart: charts/missing\n  beta").replace(
        "beta.example.org", "alpha.example.org"
    )
    found = problems(tmp_path, bad)
    assert (
        "config/federation.yaml:6: member alpha: key 'chart': no chart at charts/missing/Chart.yaml"
        in found
    )
    assert (
        "config/federation.yaml:10: member beta: key 'domain': also the domain of member alpha"
        in found
    )


def test_duplicate_member_is_an_error_with_both_lines(tmp_path: Path) -> None:
    dup = GOOD + "  alpha:\n    stage: prod\n    provider: kubeconfig\n    domain: x.example.org\n"
    with pytest.raises(
        ConfigError, match=r"federation.yaml:19: duplicate key 'alpha' \(first at line 2\)"
    ):
        load_registry(make_repo(tmp_path, dup))


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config/federation.yaml:4: malformed YAML"):
        load_registry(make_repo(tmp_path, "members:\n  a:\n    stage: [prod\n    provider: x\n"))


def test_load_registry_raises_the_first_problem_and_counts_the_rest(tmp_path: Path) -> None:
    bad = GOOD.replace("stage: staging", "stage: nope").replace("stage: prod", "stage: nope")
    with pytest.raises(
        ConfigError, match=r":3: member alpha: .*\(and 1 more; run: invoke validate\)$"
    ):
        load_registry(make_repo(tmp_path, bad))


def test_unknown_member_suggests_close_names(tmp_path: Path) -> None:
    registry = load_registry(make_repo(tmp_path, GOOD))
    with pytest.raises(UnknownMemberError, match=r"unknown member 'alpah'.*did you mean alpha"):
        registry.member("alpah")
    with pytest.raises(UnknownMemberError, match=r"\(members: alpha, beta\)"):
        registry.member("zzz")


def test_find_repo_walks_up_and_honours_hubfleet_root(tmp_path: Path) -> None:
    make_repo(tmp_path, GOOD)
    deep = tmp_path / "charts" / "c"
    assert find_repo(deep, environ={}).root == tmp_path.resolve()
    assert find_repo(Path("/"), environ={"HUBFLEET_ROOT": str(tmp_path)}).root == tmp_path.resolve()


def test_k3s_settings_are_checked_and_only_for_k3s_members(tmp_path: Path) -> None:
    k3s = GOOD + "    k3s:\n      version: v1.32.5+k3s1\n      max_pods: 5\n"
    assert problems(tmp_path, k3s) == [
        "config/federation.yaml:21: member beta: key 'k3s.max_pods': 5 is less than the minimum of 10"
    ]
    both = GOOD + "    k3s:\n      version: v1.32.5+k3s1\n      channel: stable\n"
    assert problems(tmp_path, both) == [
        "config/federation.yaml:19: member beta: key 'k3s': set version or channel, not both"
    ]
    not_k3s = GOOD.replace(
        "    chart: charts/c\n  beta", "    chart: charts/c\n    k3s: {}\n  beta"
    )
    assert problems(tmp_path, not_k3s) == [
        "config/federation.yaml:7: member alpha: key 'k3s': only k3s members have k3s settings"
    ]


def test_hosts_are_found_by_address_or_name(tmp_path: Path) -> None:
    beta = load_registry(make_repo(tmp_path, GOOD)).member("beta")
    assert beta.host("10.0.0.5").port == 2222
    assert beta.host("10.0.0.5").public == "10.0.0.5"
    with pytest.raises(
        UnknownMemberError, match=r"member beta has no host '10.9.9.9' \(hosts: 10.0.0.5\)"
    ):
        beta.host("10.9.9.9")


MICROK8S = """\
  gamma:
    stage: prod
    provider: microk8s
    domain: gamma.example.org
    chart: charts/c
    hosts:
      - address: 192.168.1.10
        role: main
        public_address: 203.0.113.10
      - address: 172.16.5.20
        role: worker
    microk8s:
      channel: 1.32/stable
      metallb: 192.168.1.200-192.168.1.210
      gpu: true
      wireguard:
        subnet: 10.8.0.0/24
"""


def test_a_microk8s_member_loads(tmp_path: Path) -> None:
    gamma = load_registry(make_repo(tmp_path, GOOD + MICROK8S)).member("gamma")
    assert [h.role for h in gamma.hosts] == ["main", "worker"]
    assert gamma.microk8s["channel"] == "1.32/stable"
    assert gamma.microk8s["wireguard"] == {"subnet": "10.8.0.0/24"}
    assert load_registry(make_repo(tmp_path, GOOD)).member("beta").microk8s == {}


def test_microk8s_settings_only_for_microk8s_members(tmp_path: Path) -> None:
    on_k3s = GOOD + "    microk8s: {channel: 1.32/stable, metallb: 10.0.0.1-10.0.0.9}\n"
    assert problems(tmp_path, on_k3s) == [
        "config/federation.yaml:19: member beta: key 'microk8s': only microk8s members have "
        "microk8s settings"
    ]
    without = GOOD + MICROK8S.split("    microk8s:\n")[0]
    assert problems(tmp_path, without) == [
        "config/federation.yaml:19: member gamma: key 'microk8s': is required"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("channel: 1.32/stable", "channel: latest"),
            "key 'microk8s.channel': 'latest' is not a valid channel",
        ),
        (
            ("      metallb: 192.168.1.200-192.168.1.210\n", ""),
            "key 'metallb': is required",
        ),
        (
            ("metallb: 192.168.1.200-192.168.1.210", "metallb: 192.168.1.200"),
            "key 'microk8s.metallb': '192.168.1.200' is not a valid metallb",
        ),
        (
            (
                "gpu: true",
                "gpu: true\n      refresh_hold: 720h\n      refresh_window: sat,02:00-04:00",
            ),
            "key 'microk8s': set refresh_hold or refresh_window, not both",
        ),
        (
            ("gpu: true", "gpu: true\n      refresh_hold: a week"),
            "key 'microk8s.refresh_hold': 'a week' is not a valid refresh_hold",
        ),
        (
            ("subnet: 10.8.0.0/24", "subnet: 10.8.0.0"),
            "key 'microk8s.wireguard.subnet': '10.8.0.0' is not a valid subnet",
        ),
        (
            ("gpu: true", "gpu: true\n      token_ttl: 5"),
            "key 'microk8s.token_ttl': 5 is less than the minimum of 10",
        ),
    ],
)
def test_microk8s_settings_are_checked(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    found = problems(tmp_path, GOOD + MICROK8S.replace(*change))
    assert len(found) == 1 and expected in found[0], found


def test_host_roles_are_checked_per_provider(tmp_path: Path) -> None:
    k3s_main = GOOD.replace("        role: server\n", "        role: main\n")
    assert problems(tmp_path, k3s_main) == [
        "config/federation.yaml:18: member beta: key 'hosts.0.role': 'main' is not a k3s host "
        "role (use server or agent)"
    ]
    mk8s_agent = GOOD + MICROK8S.replace("role: worker", "role: agent")
    assert problems(tmp_path, mk8s_agent) == [
        "config/federation.yaml:29: member gamma: key 'hosts.1.role': 'agent' is not a microk8s "
        "host role (use main or worker)"
    ]
    no_role = GOOD + MICROK8S.replace("        role: worker\n", "")
    assert problems(tmp_path, no_role) == [
        "config/federation.yaml:28: member gamma: key 'role': is required"
    ]


@pytest.mark.parametrize(
    ("change", "mains"), [(("role: worker", "role: main"), 2), (("role: main", "role: worker"), 0)]
)
def test_a_microk8s_member_has_exactly_one_main(
    tmp_path: Path, change: tuple[str, str], mains: int
) -> None:
    record = MICROK8S.replace(*change)
    assert problems(tmp_path, GOOD + record) == [
        f"config/federation.yaml:24: member gamma: key 'hosts': a microk8s member needs exactly "
        f"one host with role main, not {mains}"
    ]
