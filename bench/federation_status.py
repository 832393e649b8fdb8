"""`federation.status` over many members served on loopback: real HTTPS servers (certificates
made here, trusted through SSL_CERT_FILE), each member's /health and /versions probed.
Prints the wall time of the status (bounded parallel probes) beside the same probes one at a
time, in the same process. Asserts nothing.

Goal (issue 13): 100 members <= 3 s.

    python bench/federation_status.py [--members 100] [--runs 3] [--servers 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hubfleet.files.repo import DeployRepo  # noqa: E402
from hubfleet.members.federation_status import federation_status  # noqa: E402

SERVE = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from cryptography.hazmat.primitives import serialization
from tests.test_federation_status import VERSIONS, Member
from tests.test_https_check import make_cert
base, count = Path(sys.argv[2]), int(sys.argv[3])
ca_cert, ca_key = make_cert("Bench Root", None, [], 3650, ca=True)
(base / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
servers = [Member(base, *make_cert("localhost", (ca_cert.subject, ca_key), ["localhost"], 80), VERSIONS)
           for _ in range(count)]
print(" ".join(s.url for s in servers), flush=True)
time.sleep(3600)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", type=int, default=4, help="HTTPS servers the members share")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hubfleet-bench-") as tmp:
        base = Path(tmp)
        # the members' web fronts in a process of their own, as remote hosts would be
        served = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(ROOT), str(base), str(args.servers)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            urls = (served.stdout.readline() if served.stdout else "").split()
            if len(urls) != args.servers:
                raise SystemExit("bench: the HTTPS servers did not start")
            os.environ["SSL_CERT_FILE"] = str(base / "ca.pem")
            parallel, serial = measure(base, urls, args)
        finally:
            served.kill()
            served.wait()
    print(f"{'measure':<52} {'seconds':>8}  goal")
    print(f"{f'federation.status, {args.members} members (median)':<52} {parallel:8.3f}  <= 3.0")
    print(f"{'baseline: the same probes one at a time':<52} {serial:8.3f}")
    print(f"{'speed-up':<52} {serial / parallel:8.2f}x")


def measure(base: Path, urls: list[str], args: argparse.Namespace) -> tuple[float, float]:
    repo_dir = base / "repo"
    (repo_dir / "config").mkdir(parents=True)
    shutil.copytree(ROOT / "charts" / "demo", repo_dir / "charts" / "demo")
    members = {}
    for i in range(args.members):
        url = urls[i % len(urls)]
        block: dict[str, object] = {
            "weight": 1,
            "health": f"{url}/health",
            "versions": f"{url}/versions",
        }
        if i == 0:
            block["prime"] = True
        members[f"m{i:03d}"] = {
            "stage": "prod",
            "provider": "kubeconfig",
            "domain": f"m{i:03d}.fleet.example",
            "chart": "charts/demo",
            "federation": block,
        }
    registry = {"federation": {"domain": "fleet.example", "redirector": "m000"}, "members": members}
    (repo_dir / "config" / "federation.yaml").write_text(yaml.safe_dump(registry))
    repo = DeployRepo(repo_dir)

    def timed(workers: int) -> float:
        start = time.perf_counter()
        rows = federation_status(repo, timeout_s=5, workers=workers)
        seconds = time.perf_counter() - start
        bad = [r for r in rows if r.attention]
        if bad:
            raise SystemExit(f"bench: unexpected attention: {bad[0].attention}")
        return seconds

    parallel = statistics.median(timed(32) for _ in range(args.runs))
    serial = statistics.median(timed(1) for _ in range(max(1, args.runs // 2)))
    return parallel, serial


if __name__ == "__main__":
    main()
