"""federation.status against a federation served on loopback: real HTTPS servers with
certificates made in the test: a healthy prime, a member whose certificate expires in 10 days,
one whose /versions differ from the prime's, one that is down."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from hubfleet.files.repo import DeployRepo
from hubfleet.members.federation_status import federation_status
from tests.conftest_repo import MakeRepo
from tests.test_https_check import Key, make_cert, trusted_ca  # noqa: F401 (fixture)

VERSIONS = {"binderhub": "1.0.0-0.dev.git.3959.hb9fad995", "builder": "repo2docker:2025.08.0"}


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # many probes at once, as a real web front takes them


class Member:
    """One member's web front: /health and /versions over HTTPS, on loopback."""

    def __init__(self, tmp: Path, cert: Any, key: Key, versions: dict[str, str]) -> None:
        pem = tmp / f"{id(self)}.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
        body = json.dumps(versions).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = {"/health": b'{"ok": true}', "/versions": body}.get(self.path)
                self.send_response(200 if payload else 404)
                self.send_header("Content-Length", str(len(payload or b"")))
                self.end_headers()
                self.wfile.write(payload or b"")

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"https://localhost:{self.server.server_address[1]}"


@pytest.fixture
def federation(
    deploy_repo: MakeRepo,
    tmp_path: Path,
    trusted_ca: tuple[Any, Key],  # noqa: F811
) -> Iterator[DeployRepo]:
    servers = {
        "prime": Member(tmp_path, *make_cert("localhost", trusted_ca, ["localhost"], 80), VERSIONS),
        "expiring": Member(
            tmp_path, *make_cert("localhost", trusted_ca, ["localhost"], 10), VERSIONS
        ),
        "skewed": Member(
            tmp_path,
            *make_cert("localhost", trusted_ca, ["localhost"], 80),
            {**VERSIONS, "builder": "old"},
        ),
    }
    down = "https://localhost:9"  # nothing listens there
    urls = {**{n: m.url for n, m in servers.items()}, "down": down}
    repo = deploy_repo({n: {"domain": f"{n}.example.org"} for n in urls})
    registry = yaml.safe_load(repo.registry.read_text())
    registry["federation"] = {"domain": "fleet.example.org", "redirector": "prime"}
    for name, url in urls.items():
        block: dict[str, Any] = {
            "weight": 10,
            "health": f"{url}/health",
            "versions": f"{url}/versions",
        }
        if name == "prime":
            block["prime"] = True
        registry["members"][name]["federation"] = block
    repo.registry.write_text(yaml.safe_dump(registry))
    yield repo
    for member in servers.values():
        member.server.shutdown()
        member.server.server_close()


def test_each_row_says_what_needs_attention(federation: DeployRepo) -> None:
    rows = {row.member: row for row in federation_status(federation, timeout_s=2)}
    assert rows["prime"].attention == () and rows["prime"].health == "ok"
    assert rows["prime"].versions == "same" and rows["prime"].https_days_left in (79, 80)
    assert rows["expiring"].attention == ("HTTPS certificate: 9 days left",) or rows[
        "expiring"
    ].attention == ("HTTPS certificate: 10 days left",)
    assert rows["skewed"].versions == "skew"
    assert rows["skewed"].attention == (
        "versions differ from the prime's: the redirector sends it nothing",
    )
    assert rows["down"].health.startswith("no TLS answer from localhost:9")
    assert rows["down"].attention[0].startswith("health: no TLS answer from localhost:9")


def test_the_task_prints_the_table_or_json_and_exits_1(
    federation: DeployRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke.context import Context

    from hubfleet.cli import Exit
    from hubfleet.tasks import federation as tasks

    monkeypatch.setenv("HUBFLEET_ROOT", str(federation.root))
    with pytest.raises(Exit) as caught:
        tasks.status(Context(), json=True, timeout=2)
    assert caught.value.code == 1
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [r["member"] for r in rows] == ["down", "expiring", "prime", "skewed"]  # registry order
    assert rows[2]["weight"] == 10 and rows[2]["prime"] is True
    assert captured.err.startswith(
        "error: 3 member(s) need attention (down, expiring, skewed); the first: member down: "
        "health: no TLS answer from localhost:9"
    )


def test_with_an_engine_each_members_cluster_is_asked_too(
    federation: DeployRepo, kube_stub: Any
) -> None:
    from hubfleet.helm.sdk import SdkEngine
    from hubfleet.secrets import sops

    config = kube_stub.kubeconfig(cluster="prime", user="prime", context="prime")
    sops.write_encrypted(federation, federation.member_kubeconfig("prime"), yaml.safe_dump(config))
    rows = {row.member: row for row in federation_status(federation, 2, engine=SdkEngine())}
    prime = rows["prime"]
    assert prime.release == "not installed"
    assert prime.attention == ("release: not installed",)
    assert rows["expiring"].nodes == "-"  # its credentials are not here: its cluster not asked
    assert "nodes" in prime.as_json() and prime.cells()[8] == "not installed"
