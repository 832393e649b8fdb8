"""Preflight facts: parsing the gathering script's output and judging a host."""

from __future__ import annotations

from dataclasses import replace

from hubfleet.hosts.facts import parse_facts, preflight_problems

UBUNTU = """\
os_id=ubuntu
os_version=24.04
os_name=Ubuntu 24.04.1 LTS
arch=x86_64
cpus=16
mem_kb=65843200
disk_free_kb=209715200
systemd=running
time_synced=yes
listening=22 53
uid=0
hostname=node-1
"""


def test_parse_facts_reads_every_field() -> None:
    facts = parse_facts(UBUNTU)
    assert (facts.os_id, facts.os_version, facts.arch, facts.cpus) == (
        "ubuntu",
        "24.04",
        "x86_64",
        16,
    )
    assert facts.ram_gb == 62.8
    assert facts.disk_free_gb == 200.0
    assert facts.listening == frozenset({22, 53})
    assert facts.hostname == "node-1" and facts.uid == 0


def test_a_good_host_has_no_problems() -> None:
    assert preflight_problems(parse_facts(UBUNTU)) == []


def test_each_problem_is_named() -> None:
    bad = replace(
        parse_facts(UBUNTU),
        os_id="centos",
        os_name="CentOS 7",
        arch="ppc64le",
        cpus=1,
        ram_gb=2.0,
        disk_free_gb=5.0,
        systemd="offline",
        time_synced="no",
        listening=frozenset({22, 443, 6443}),
        uid=1000,
    )
    assert preflight_problems(bad) == [
        "OS CentOS 7 is not Ubuntu >= 22.04 or Debian >= 11",
        "architecture ppc64le is not x86_64 or aarch64",
        "1 CPU(s), need at least 2",
        "2.0 GB RAM, need at least 4",
        "5.0 GB free for /var/lib/rancher, need at least 20",
        "systemd is not running (state: offline)",
        "clock not synchronised by NTP (timedatectl: NTPSynchronized != yes)",
        "port(s) 443, 6443 already in use",
        "not root and sudo -n did not give root",
    ]


def test_old_releases_and_missing_tools() -> None:
    old = parse_facts(UBUNTU.replace("24.04", "20.04"))
    assert preflight_problems(old) == ["OS Ubuntu 20.04.1 LTS is older than ubuntu 22.04"]
    sparse = parse_facts("os_id=debian\nos_version=12\nuid=0\n")
    assert "0 CPU(s), need at least 2" in preflight_problems(sparse)


def test_ports_held_by_k3s_itself_are_fine_on_a_bootstrapped_host() -> None:
    running = replace(parse_facts(UBUNTU), listening=frozenset({22, 6443, 80, 443}))
    assert preflight_problems(running, k3s_running=True) == []
