"""member.status: a row per member from its own cluster; an unreachable one says so."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from hubfleet.console import Console
from hubfleet.deploy.member import DeployOptions, deploy_member
from hubfleet.helm import engine_from_env
from hubfleet.members.status import (
    COLUMNS,
    MemberRow,
    federation_status,
    unreachable_summary,
)
from tests.conftest_repo import MakeRepo


def test_status_shows_nodes_release_and_unreachable_members(
    deploy_repo: MakeRepo,
    kube_stub_factory,
    capsys,
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
    alpha, beta = rows["alpha"], rows["beta"]
    assert (alpha.nodes_ready, alpha.nodes_total, alpha.version) == (1, 1, "v1.32.5+k3s1")
    assert (alpha.release_revision, alpha.release_status) == (1, "deployed")
    assert alpha.credential == "token" and alpha.onboarding_left == () and alpha.reachable
    assert not beta.reachable and beta.stage == "prod"
    assert beta.problem is not None and beta.problem.startswith("cannot reach cluster at")
    assert alpha.release_updated is not None
    assert alpha.cells()[:6] == (
        "alpha",
        "staging",
        "kubeconfig",
        "1/1",
        "v1.32.5+k3s1",
        "r1 deployed " + alpha.release_updated[:10],
    )
    assert beta.cells()[3] == "down"
    assert unreachable_summary([alpha]) is None
    assert unreachable_summary([alpha, beta]) == f"member beta: {beta.problem}"
    record = beta.as_json()
    assert record["reachable"] is False and record["problem"] == beta.problem
    json.dumps(record)  # every field serialises


def test_the_table_fits_80_columns(tmp_path: Path) -> None:
    rows = [
        MemberRow(
            "edinburgh-gpu-lab",
            "staging",
            "microk8s",
            ("deploy", "harbor-secrets", "deploy-again", "health"),
            3,
            4,
            "v1.32.13",
            117,
            "deployed",
            "2026-12-06T07:13:05.123456789Z",
            364,
            "client certificate",
        ),
        MemberRow("beta", "prod", "kubeconfig", problem="cannot reach cluster at https://b"),
    ]
    for live in (False, True):
        out = io.StringIO()
        console = Console(stream=out, live=live, width=80)
        console.table(COLUMNS, [row.cells() for row in rows])
        text = out.getvalue()
        lines = [line for line in text.splitlines() if line.strip()]
        assert max(len(strip_ansi(line).rstrip()) for line in lines) <= 80
        words = strip_ansi(text).split()
        for word in ("edinburgh-gpu-lab", "3/4", "r117", "deployed", "364d", "4", "down"):
            assert word in words


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
