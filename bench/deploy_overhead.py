"""How long hubfleet's own work takes around a deploy. Prints figures; asserts nothing.

Goals (issue 2): `invoke deploy demo --dry-run` <= 1.0 s wall, `invoke --list` <= 0.3 s,
`invoke validate` over a generated 100-member federation <= 5 s. Each figure is the median of
several runs, next to a baseline (a bare `python -c pass`) measured in the same run.

    python bench/deploy_overhead.py [--runs 5] [--members 100]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO_KEY = ROOT / "secrets" / "demo-insecure.agekey"


def wall(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def split(env: dict[str, str]) -> dict[str, float]:
    """The in-process split of a dry-run: import, decrypt+merge, validate, render."""
    code = """
import json, time
t0 = time.perf_counter()
from hubfleet.files.repo import find_repo
from hubfleet.registry.members import load_registry
from hubfleet.deploy.member import render_member
from hubfleet.helm import engine_from_env
import os
t1 = time.perf_counter()
repo = find_repo()
member = load_registry(repo).member("demo")
t2 = time.perf_counter()
r = render_member(repo, member, engine_from_env(os.environ))
out = {"import": t1 - t0, "registry": t2 - t1, **r.timings}
print(json.dumps(out))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    import json

    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def make_federation(target: Path, members: int, env: dict[str, str]) -> None:
    """A deploy repo with `members` members, each with plain and encrypted values."""
    shutil.copytree(ROOT / "charts" / "demo", target / "charts" / "demo")
    (target / "config").mkdir()
    (target / "secrets" / "config").mkdir(parents=True)
    shutil.copy(ROOT / ".sops.yaml", target / ".sops.yaml")
    lines = ["members:"]
    for i in range(members):
        name = f"member{i:03d}"
        stage = "prod" if i % 3 else "staging"
        lines += [
            f"  {name}:",
            f"    stage: {stage}",
            "    provider: kubeconfig",
            f"    domain: {name}.fleet.example",
            "    chart: charts/demo",
        ]
        (target / "config" / f"{name}.yaml").write_text(f"hub:\n  replicas: {1 + i % 3}\n")
    (target / "config" / "federation.yaml").write_text("\n".join(lines) + "\n")
    (target / "config" / "common.yaml").write_text("demo:\n  greeting: hi\n")
    sops = str(BIN / "sops")

    def encrypt(i: int) -> None:
        path = target / "secrets" / "config" / f"member{i:03d}.yaml"
        plain = (
            f"hub:\n  cookieSecret: {os.urandom(32).hex()}\n  proxyToken: {os.urandom(32).hex()}\n"
        )
        out = subprocess.run(
            [
                sops,
                "--config",
                str(target / ".sops.yaml"),
                "--encrypt",
                "--input-type",
                "yaml",
                "--output-type",
                "yaml",
                "--filename-override",
                f"secrets/config/member{i:03d}.yaml",
                "/dev/stdin",
            ],
            input=plain,
            capture_output=True,
            text=True,
            check=True,
            cwd=target,
            env=env,
        )
        path.write_text(out.stdout)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(encrypt, range(members)))
    common = "hub:\n  proxyToken: " + os.urandom(32).hex() + "\n"
    out = subprocess.run(
        [
            sops,
            "--config",
            str(target / ".sops.yaml"),
            "--encrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "--filename-override",
            "secrets/config/common.yaml",
            "/dev/stdin",
        ],
        input=common,
        capture_output=True,
        text=True,
        check=True,
        cwd=target,
        env=env,
    )
    (target / "secrets" / "config" / "common.yaml").write_text(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--members", type=int, default=100)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "HUBFLEET_"))}
    env["SOPS_AGE_KEY_FILE"] = str(DEMO_KEY)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    invoke = str(BIN / "invoke")

    baseline = wall([sys.executable, "-c", "pass"], ROOT, env, args.runs)
    dry_run = wall([invoke, "deploy", "demo", "--dry-run"], ROOT, env, args.runs)
    listing = wall([invoke, "--list"], ROOT, env, args.runs)
    parts = split(env)

    with tempfile.TemporaryDirectory(prefix="hubfleet-bench-") as tmp:
        fed = Path(tmp)
        make_federation(fed, args.members, env)
        validate = wall(
            [invoke, "validate"], ROOT, {**env, "HUBFLEET_ROOT": str(fed)}, max(1, args.runs // 2)
        )

    print(f"baseline  python -c pass                       {baseline:6.3f} s")
    print(
        f"invoke deploy demo --dry-run                   {dry_run:6.3f} s  (goal <= 1.0 s; "
        f"{dry_run / baseline:.1f}x baseline)"
    )
    work = sum(v for k, v in parts.items() if k != "import")
    parts = {"startup (python, invoke, imports)": dry_run - work, **parts}
    parts.pop("import")
    print("  split: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in parts.items()))
    print(
        f"invoke --list                                  {listing:6.3f} s  (goal <= 0.3 s; "
        f"{listing / baseline:.1f}x baseline)"
    )
    print(
        f"invoke validate, {args.members} members                    {validate:6.3f} s  (goal <= 5 s)"
    )


if __name__ == "__main__":
    main()
