"""How long a k3s bootstrap takes on 1, 3 and 6 harness hosts behind added latency, and how
many SSH commands (round trips) each host and step costs. Prints figures; asserts nothing.

Goals (issue 3): 6 hosts <= 1.3 x the 1-host time; a no-op rerun <= 25% of the first run with
0 changed; as few round trips per step as check-then-change allows.

    sudo python bench/bootstrap.py [--latency-ms 50] [--sizes 1,3,6]

Needs what the test hosts need (root, ip netns, sshd): see tests/harness.py. Traffic goes only
to 127.0.0.1 (the delaying proxies) and to the lab's own namespaces.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from hubfleet.files.repo import DeployRepo  # noqa: E402
from hubfleet.hosts.bootstrap import BootstrapOptions  # noqa: E402
from hubfleet.k3s import bootstrap as k3s_bootstrap  # noqa: E402
from tests.harness import HostLab, skip_reason  # noqa: E402

FACTS = {"mem_gb": 16, "cpus": 8, "disk_gb": 100, "os_release": "ubuntu-24.04"}


def make_repo(where: Path, lab: HostLab, hosts: list, key: Path) -> DeployRepo:
    """A deploy repo with one k3s member on `hosts`, encrypted to a fresh age key."""
    age = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True)
    recipient = age.stderr.strip().split()[-1]
    shutil.copytree(ROOT / "charts" / "demo", where / "charts" / "demo")
    (where / "config").mkdir(parents=True)
    (where / "secrets").mkdir()
    (where / ".sops.yaml").write_text(
        yaml.safe_dump({"creation_rules": [{"path_regex": "(^|/)secrets/", "age": recipient}]})
    )
    member = {
        "stage": "staging",
        "provider": "k3s",
        "domain": "bench.example.org",
        "chart": "charts/demo",
        "hosts": [
            {"address": h.address, "role": "server" if i == 0 else "agent"}
            for i, h in enumerate(hosts)
        ],
        "k3s": {"version": "v1.32.5+k3s1"},
    }
    (where / "config" / "federation.yaml").write_text(
        yaml.safe_dump({"members": {"bench": member}})
    )
    (where / "config" / "known_hosts").write_text("".join(h.host_key_line + "\n" for h in hosts))
    return DeployRepo(where)


def run_size(n: int, latency_ms: float) -> dict[str, object]:
    with HostLab() as lab, tempfile.TemporaryDirectory(prefix="hubfleet-bench-") as tmp:
        hosts = [lab.add_host(**FACTS) for _ in range(n)]
        routes = {h.address: lab.latency_proxy(h, latency_ms) for h in hosts}
        repo = make_repo(Path(tmp) / "repo", lab, hosts, Path(tmp) / "age.key")
        os.environ["SOPS_AGE_KEY_FILE"] = str(Path(tmp) / "age.key")  # this script's own process
        options = BootstrapOptions(identity=lab.client_key_path, routes=routes, ready_timeout_s=60)
        first_commands: dict[str, int] = {}
        again_commands: dict[str, int] = {}
        started = time.perf_counter()
        first = k3s_bootstrap.bootstrap(
            repo, "bench", options, say=lambda line: None, commands=first_commands
        )
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        again = k3s_bootstrap.bootstrap(
            repo,
            "bench",
            BootstrapOptions(routes=routes, ready_timeout_s=60),
            say=lambda line: None,
            commands=again_commands,
        )
        again_s = time.perf_counter() - started
    per_step: dict[str, list[int]] = defaultdict(list)
    for report in first:
        per_step[report.step].append(report.commands)
    return {
        "first_s": first_s,
        "again_s": again_s,
        "changed_again": sum(1 for r in again if r.state != "ok"),
        "states_first": Counter(r.state for r in first),
        "commands_per_host": first_commands,
        "commands_per_step": {k: max(v) for k, v in per_step.items()},
        "commands_again": again_commands,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--sizes", default="1,3,6")
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {n: run_size(n, args.latency_ms) for n in sizes}
    base = results[sizes[0]]["first_s"]
    print(f"k3s bootstrap over SSH with {args.latency_ms:.0f} ms added round-trip latency")
    for n, r in results.items():
        ratio = r["first_s"] / base  # type: ignore[operator]
        rerun = r["again_s"] / r["first_s"]  # type: ignore[operator]
        print(
            f"  {n} host(s): first run {r['first_s']:6.2f} s ({ratio:.2f}x the 1-host time), "
            f"no-op rerun {r['again_s']:5.2f} s ({rerun:.0%} of first; {r['changed_again']} changed)"
        )
        hosts = r["commands_per_host"]
        print(
            f"    commands per host (first run, facts included): {', '.join(f'{h} {c}' for h, c in hosts.items())}"
        )  # type: ignore[union-attr]
        print(
            f"    commands per host (no-op rerun): {', '.join(f'{h} {c}' for h, c in r['commands_again'].items())}"
        )  # type: ignore[union-attr]
    steps = results[sizes[-1]]["commands_per_step"]
    print(
        "  round trips per step (most on any host, first run): "
        + ", ".join(f"{s} {c}" for s, c in steps.items())
    )  # type: ignore[union-attr]
    goal_6 = results.get(6, {}).get("first_s")
    if goal_6:
        print(f"  goal 6 hosts <= 1.3 x 1 host: {goal_6 / base:.2f}x")  # type: ignore[operator]


if __name__ == "__main__":
    main()
