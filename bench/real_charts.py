"""Deploy dry-run and validate with the REAL upstream charts (../shared/charts as the cache).
Prints figures; asserts nothing.

Goals (issue 11), for a member running the real binderhub (its jupyterhub inside) and harbor
charts with Harbor's secrets pinned:
- `invoke deploy M --dry-run` <= 1.0 s wall, beside the floor: the raw Helm SDK loading and
  rendering the same charts with the same values (in process, and as its own `python -c`);
- `invoke validate` over 100 such members <= 10 s.
Goal (issue 12), for a full k3s binder member (the same, with its support release: traefik,
cert-manager, prometheus, grafana):
- `invoke deploy M --dry-run` of both releases <= 1.5 s, beside the raw SDK render of both.
Medians of several runs, all measured in this one run.

    python bench/real_charts.py [--runs 5] [--members 100]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHARED_CHARTS = ROOT.parent / "shared" / "charts"
DEMO_KEY = ROOT / "secrets" / "demo-insecure.agekey"
sys.path.insert(0, str(ROOT))

from hubfleet.cloud.harbor import PINNED_SECRETS  # noqa: E402
from hubfleet.files.repo import DeployRepo  # noqa: E402
from hubfleet.secrets import sops  # noqa: E402


def recipient() -> str:
    for line in DEMO_KEY.read_text().splitlines():
        if line.startswith("# public key: "):
            return line.removeprefix("# public key: ").strip()
    raise SystemExit(f"{DEMO_KEY}: no public key line")


def member_secrets() -> dict[str, object]:
    """What a member of this stack keeps encrypted: the hub's secrets, Harbor's S3 keys, and
    the secrets Harbor generated on its first deploy, pinned (harbor.stabilize-secrets)."""
    values: dict[str, object] = {
        "binderhub": {"jupyterhub": {"hub": {"cookieSecret": secrets.token_hex(32)}}},
        "harbor": {
            "persistence": {
                "imageChartStorage": {
                    "s3": {"accesskey": secrets.token_hex(10), "secretkey": secrets.token_hex(20)}
                }
            }
        },
    }
    for pinned in PINNED_SECRETS:
        here: dict[str, object] = values
        *parents, leaf = pinned.value.split(".")
        for key in parents:
            here = here.setdefault(key, {})  # type: ignore[assignment]
        here[leaf] = secrets.token_hex(16)
    return values


def make_repo(target: Path, members: int, support: bool = False) -> DeployRepo:
    """`members` binder members with Harbor; with `support`, each runs its support release."""
    shutil.copytree(ROOT / "chart", target / "chart", ignore=shutil.ignore_patterns("charts"))
    if support:
        ignore = shutil.ignore_patterns("charts")
        shutil.copytree(ROOT / "support", target / "support", ignore=ignore)
    (target / "config").mkdir()
    (target / "secrets" / "config").mkdir(parents=True)
    rule = {"creation_rules": [{"path_regex": "(^|/)secrets/", "age": recipient()}]}
    (target / ".sops.yaml").write_text(yaml.safe_dump(rule))
    records = {}
    for i in range(members):
        name = f"m{i:03d}"
        records[name] = {
            "stage": "prod",
            "provider": "kubeconfig",
            "domain": f"{name}.fleet.example",
            "chart": "chart",
            "s3": {"endpoint": "https://s3.fleet.example", "bucket": f"{name}-harbor"},
        }
        if support:
            records[name]["support"] = {"email": "ops@fleet.example"}
    (target / "config" / "federation.yaml").write_text(yaml.safe_dump({"members": records}))
    (target / "config" / "common.yaml").write_text("binderhubEnabled: true\nharborEnabled: true\n")
    repo = DeployRepo(target)
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(DEMO_KEY)}
    for name, record in records.items():
        host = f"registry.{record['domain']}"
        harbor = {
            "externalURL": f"https://{host}",
            "expose": {"ingress": {"hosts": {"core": host}}},
        }
        (target / "config" / f"{name}.yaml").write_text(yaml.safe_dump({"harbor": harbor}))
        sops.write_encrypted(
            repo, repo.member_secret_values(name), yaml.safe_dump(member_secrets()), env
        )
        if support:
            grafana = {"grafana": {"adminPassword": secrets.token_hex(12)}}
            path = repo.member_secret_values(name, "support")
            path.parent.mkdir(parents=True, exist_ok=True)
            sops.write_encrypted(repo, path, yaml.safe_dump(grafana), env)
    return repo


def wall(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> tuple[float, float]:
    """(first, median of the rest) wall seconds of a command that must succeed."""
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return times[0], statistics.median(times[1:])


FLOOR = """
import json, sys, time
import yaml, helm_python as helm
values = json.load(open(sys.argv[2]))
t = time.perf_counter()
with helm.Chart.load(sys.argv[1]) as chart:
    out = chart.render(values, name="m000", namespace="m000", is_install=True)
print(len(out), time.perf_counter() - t)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--members", type=int, default=100)
    args = parser.parse_args()
    if not SHARED_CHARTS.is_dir():
        raise SystemExit(f"{SHARED_CHARTS}: the real upstream charts are missing")
    with tempfile.TemporaryDirectory(prefix="hubfleet-bench-") as tmp:
        base = Path(tmp)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "HUBFLEET_"))},
            "SOPS_AGE_KEY_FILE": str(DEMO_KEY),
            "HUBFLEET_CHART_CACHE": str(SHARED_CHARTS),
            "HOME": str(base),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        print(f"setting up {args.members} members (binderhub + harbor, pinned secrets) ...")
        repo = make_repo(base / "repo", args.members)
        invoke = [str(BIN / "invoke"), "--search-root", str(ROOT)]

        first, dry_run = wall([*invoke, "deploy", "m000", "--dry-run"], repo.root, env, args.runs)

        # the floor: the same values, rendered by the Helm SDK from the same charts
        from hubfleet.registry.members import load_registry
        from hubfleet.values.layers import member_values

        os.environ.update(SOPS_AGE_KEY_FILE=str(DEMO_KEY))
        values = member_values(repo, load_registry(repo).member("m000")).user.values
        values_file = base / "values.json"
        values_file.write_text(json.dumps(values))
        floors, inner = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", FLOOR, str(repo.root / "chart"), str(values_file)],
                capture_output=True,
                text=True,
                check=True,
            )
            floors.append(time.perf_counter() - start)
            inner.append(float(done.stdout.split()[1]))
        floor, floor_inner = statistics.median(floors), statistics.median(inner)

        _, validate = wall([*invoke, "validate"], repo.root, env, max(1, args.runs // 2))

        # the floor of validate: every member's values rendered by the SDK, on every core
        import helm_python

        registry = load_registry(repo)
        every = [member_values(repo, m).user.values for m in registry.members.values()]

        def render(values: dict[str, object]) -> None:
            with helm_python.Chart.load(repo.root / "chart") as chart:
                chart.render(values, name="m", namespace="m", is_install=True)

        cores = os.cpu_count() or 1
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=cores) as pool:
            list(pool.map(render, every))
        validate_floor = time.perf_counter() - start

        # and the secrets a validate must decrypt: one sops call per member's file
        from hubfleet.values.layers import secret_layer_files

        files = [f for m in registry.members.values() for f in secret_layer_files(repo, m)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda f: sops.decrypt(repo, f), files))
        decrypt_floor = time.perf_counter() - start

        # a full k3s member: its support release too
        full = make_repo(base / "full", 1, support=True)
        _, full_dry_run = wall([*invoke, "deploy", "m000", "--dry-run"], full.root, env, args.runs)
        from hubfleet.registry.support import releases

        full_member = load_registry(full).member("m000")
        full_values = [member_values(full, r).user.values for r in releases(full_member)]
        (base / "support.json").write_text(json.dumps(full_values[0]))
        (base / "member.json").write_text(json.dumps(full_values[1]))
        full_floors = []
        for _ in range(args.runs):
            start = time.perf_counter()
            for chart, values_json in (("support", "support.json"), ("chart", "member.json")):
                subprocess.run(
                    [sys.executable, "-c", FLOOR, str(full.root / chart), str(base / values_json)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            full_floors.append(time.perf_counter() - start)
        full_floor = statistics.median(full_floors)

    print()
    print(f"{'measure':<58} {'seconds':>8}  goal")
    print(f"{'deploy m000 --dry-run (first, charts copied from cache)':<58} {first:8.3f}")
    print(f"{'deploy m000 --dry-run (median)':<58} {dry_run:8.3f}  <= 1.0")
    print(f"{'floor: python -c (import helm SDK, load, render)':<58} {floor:8.3f}")
    print(f"{'floor: Helm SDK load + render alone':<58} {floor_inner:8.3f}")
    print(f"{'ratio dry-run / floor (python -c)':<58} {dry_run / floor:8.2f}x")
    print(f"{f'validate, {args.members} members (median)':<58} {validate:8.3f}  <= 10.0")
    print(f"{'validate per member':<58} {validate / args.members:8.3f}")
    label = f"floor: {args.members} SDK renders on {os.cpu_count()} cores, in process"
    print(f"{label:<58} {validate_floor:8.3f}")
    print(f"{f'floor: {len(files)} sops decrypts, 8 at a time':<58} {decrypt_floor:8.3f}")
    both = validate_floor + decrypt_floor
    print(f"{'ratio validate / (renders + decrypts)':<58} {validate / both:8.2f}x")
    print(
        f"{'full k3s member, both releases: deploy --dry-run (median)':<58} {full_dry_run:8.3f}  <= 1.5"
    )
    print(f"{'floor: two python -c (import, load, render each chart)':<58} {full_floor:8.3f}")
    print(f"{'ratio full dry-run / floor':<58} {full_dry_run / full_floor:8.2f}x")


if __name__ == "__main__":
    main()
