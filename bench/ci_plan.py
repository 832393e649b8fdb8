"""How long `ci.plan` takes on a generated 100-member repo. Prints figures; asserts nothing.

Goal (issue 6): a generated 100-member repo plans in <= 1 s. A git repo is made in a temp dir
(registry + plain and secret values per member) with one commit per change; each figure is the
median of several runs of planning BASE...HEAD (git diff, both registries read and parsed, the
head one schema-checked): in-process, and as a fresh `python` process (import included).

    python bench/ci_plan.py [--runs 5] [--members 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 1.0


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def registry(members: int, edited: frozenset[int] = frozenset()) -> str:
    lines = ["# generated federation", "members:"]
    for i in range(members):
        name = f"member{i:03d}"
        lines += [
            f"  {name}:",
            f"    stage: {'prod' if i % 3 else 'staging'}",
            "    provider: kubeconfig",
            f"    domain: {name}.fleet.example",
            "    chart: charts/demo",
        ]
        if i in edited:
            lines.append("    health_check: true")
    return "\n".join(lines) + "\n"


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def make_repo(root: Path, members: int) -> dict[str, tuple[str, str]]:
    """The repo and its changes: name -> (base commit, head commit)."""
    (root / "config").mkdir(parents=True)
    (root / "secrets" / "config").mkdir(parents=True)
    (root / "charts" / "demo").mkdir(parents=True)
    (root / "charts" / "demo" / "Chart.yaml").write_text(
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n"
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "bench@example.org")
    git(root, "config", "user.name", "bench")
    git(root, "config", "commit.gpgsign", "false")
    (root / "config" / "federation.yaml").write_text(registry(members))
    (root / "config" / "common.yaml").write_text("hub:\n  replicas: 1\n")
    for i in range(members):
        name = f"member{i:03d}"
        (root / "config" / f"{name}.yaml").write_text(f"ingress:\n  host: {name}.fleet.example\n")
        (root / "secrets" / "config" / f"{name}.yaml").write_text("sops: placeholder\n")
        (root / "secrets" / f"{name}-kubeconfig.yaml").write_text("sops: placeholder\n")
    changes: dict[str, tuple[str, str]] = {}
    base = commit(root, "initial")
    (root / "config" / "common.yaml").write_text("hub:\n  replicas: 2\n")
    head = commit(root, "common values")
    changes["common file -> all"] = (base, head)
    (root / "config" / "member042.yaml").write_text("ingress:\n  host: changed.fleet.example\n")
    changes["one member's values"] = (head, commit(root, "one member"))
    base = git(root, "rev-parse", "HEAD")
    (root / "config" / "federation.yaml").write_text(registry(members, frozenset({3, 50, 97})))
    changes["registry edit, 3 records"] = (base, commit(root, "registry"))
    return changes


def in_process(root: Path, base: str, head: str, runs: int) -> tuple[float, int]:
    from hubfleet.ci.plan import plan_for_repo
    from hubfleet.files.repo import DeployRepo

    repo = DeployRepo(root)
    times = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = len(plan_for_repo(repo, base, head).deploy)
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def fresh_process(root: Path, base: str, head: str, runs: int) -> float:
    code = (
        "import sys; from pathlib import Path; from hubfleet.ci.plan import plan_for_repo; "
        "from hubfleet.files.repo import DeployRepo; "
        "print(plan_for_repo(DeployRepo(Path(sys.argv[1])), sys.argv[2], sys.argv[3]).matrix())"
    )
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, str(root), base, head],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--members", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hubfleet-ci-plan-") as tmp:
        root = Path(tmp) / "repo"
        start = time.perf_counter()
        changes = make_repo(root, args.members)
        print(f"generated {args.members}-member git repo in {time.perf_counter() - start:.2f} s")
        print(f"median of {args.runs} runs; goal <= {GOAL_S:.1f} s per plan")
        print(f"{'change':<28} {'deploys':>7} {'in-process':>11} {'new process':>12}  goal")
        for label, (base, head) in changes.items():
            inside, count = in_process(root, base, head, args.runs)
            outside = fresh_process(root, base, head, args.runs)
            verdict = "ok" if outside <= GOAL_S else "OVER"
            print(f"{label:<28} {count:>7} {inside:>10.3f}s {outside:>11.3f}s  {verdict}")


if __name__ == "__main__":
    main()
