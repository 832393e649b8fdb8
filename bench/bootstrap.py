"""How long a k3s bootstrap takes on 1, 3 and 6 harness hosts behind added latency, how many
SSH commands (round trips) each host and step costs, and (--peer ansible) how a tuned Ansible
play doing only the host preparation compares on the same hosts in the same run. Prints
figures (medians of --repeat runs, each on fresh hosts); asserts nothing.

Goals (issues 3 and 16): 6 hosts <= 1.3 x the 1-host time at 50 ms (every host installs in one
wave: agents do not wait for the server's install); a no-op rerun with 0 changed and 1 command
per host; the first run >= 15 x faster than the Ansible baseline and the rerun >= 30 x.

    sudo python bench/bootstrap.py [--latency-ms 0,50] [--sizes 1,3,6] [--repeat 3]
        [--peer ansible] [--fresh]

hubfleet runs in this process, after one untimed warm-up run. With --fresh the largest size is
also timed with each hubfleet run a process of its own (bench/bootstrap_once.py): Python's
start and hubfleet's imports counted, as ansible-playbook's start is counted for the peer.
Each first run also prints how busy the machine was (CPU-seconds of all its processes: the
test hosts share this machine's cores, which real hosts do not).

The peer (needs ansible-core: `pip install -e '.[bench]'`) runs bench/ansible/k3s-host-prep.yml
(forks 10, pipelining, ControlPersist) on the largest size's hosts after hubfleet's two runs:
the files the play writes and the operators' key are taken back first (untimed), then the
play's first run and its no-op rerun are timed, `ansible-playbook`'s own start included.

Needs what the test hosts need (root, ip netns, sshd): see tests/harness.py. Traffic goes only
to 127.0.0.1 (the delaying proxies, which both tools connect through) and to the lab's own
namespaces.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from hubfleet.files.repo import DeployRepo  # noqa: E402
from hubfleet.hosts.member_run import BootstrapOptions  # noqa: E402
from hubfleet.k3s import bootstrap as k3s_bootstrap  # noqa: E402
from tests.harness import HostLab, skip_reason  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import ansible_peer  # noqa: E402

FACTS: dict[str, Any] = {"mem_gb": 16, "cpus": 8, "disk_gb": 100, "os_release": "ubuntu-24.04"}


def make_repo(where: Path, lab: HostLab, hosts: list[Any], key: Path) -> DeployRepo:
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


def busy_cpu_s() -> float:
    """CPU-seconds this machine has spent busy since boot (all its processes: hubfleet, the test
    hosts' sshd and stand-ins, the proxies), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_size(n: int, latency_ms: float, peer: str | None) -> dict[str, Any]:
    """One measurement on `n` fresh hosts: hubfleet's first run and no-op rerun, then (with a
    peer) the peer's first run and rerun on the same hosts."""
    with HostLab() as lab, tempfile.TemporaryDirectory(prefix="hubfleet-bench-") as tmp:
        hosts = [lab.add_host(**FACTS) for _ in range(n)]
        routes = {h.address: lab.latency_proxy(h, latency_ms) for h in hosts}
        repo = make_repo(Path(tmp) / "repo", lab, hosts, Path(tmp) / "age.key")
        os.environ["SOPS_AGE_KEY_FILE"] = str(Path(tmp) / "age.key")  # this script's own process
        options = BootstrapOptions(identity=lab.client_key_path, routes=routes, ready_timeout_s=60)
        first_commands: dict[str, int] = {}
        again_commands: dict[str, int] = {}
        started, busy = time.perf_counter(), busy_cpu_s()
        first = k3s_bootstrap.bootstrap(
            repo, "bench", options, say=lambda line: None, commands=first_commands
        )
        first_s = time.perf_counter() - started
        first_busy = busy_cpu_s() - busy
        started = time.perf_counter()
        again = k3s_bootstrap.bootstrap(
            repo,
            "bench",
            BootstrapOptions(routes=routes, ready_timeout_s=60),
            say=lambda line: None,
            commands=again_commands,
        )
        again_s = time.perf_counter() - started
        result: dict[str, Any] = {}
        if peer == "ansible":
            play_first, play_again = ansible_peer.first_and_rerun(
                repo, "bench", hosts, routes, lab.client_key_path, Path(tmp) / "ansible"
            )
            result.update(
                peer_first_s=play_first.seconds,
                peer_again_s=play_again.seconds,
                peer_changed_first=play_first.changed,
                peer_changed_again=play_again.changed,
            )
    per_step: dict[str, list[int]] = defaultdict(list)
    for report in first:
        per_step[report.step].append(report.commands)
    result.update(
        first_s=first_s,
        first_busy=first_busy,
        again_s=again_s,
        changed_again=sum(1 for r in again if r.state != "ok"),
        states_first=Counter(r.state for r in first),
        commands_per_host=first_commands,
        commands_per_step={k: max(v) for k, v in per_step.items()},
        commands_again=again_commands,
    )
    return result


def run_fresh(n: int, latency_ms: float) -> dict[str, Any]:
    """hubfleet's first run and no-op rerun on `n` fresh hosts, each in a process of its own
    (bench/bootstrap_once.py), timed from its start to its end: Python's start and hubfleet's
    imports included, as ansible-playbook's start is for the peer."""
    with HostLab() as lab, tempfile.TemporaryDirectory(prefix="hubfleet-bench-") as tmp:
        hosts = [lab.add_host(**FACTS) for _ in range(n)]
        routes = {h.address: lab.latency_proxy(h, latency_ms) for h in hosts}
        repo = make_repo(Path(tmp) / "repo", lab, hosts, Path(tmp) / "age.key")
        env = {**os.environ, "SOPS_AGE_KEY_FILE": str(Path(tmp) / "age.key")}
        once = [sys.executable, str(ROOT / "bench" / "bootstrap_once.py"), str(repo.root), "bench"]
        timed = {}
        for label, extra in (("first", [str(lab.client_key_path)]), ("again", [])):
            started = time.perf_counter()
            proc = subprocess.run(
                [*once, json.dumps(routes), *extra], env=env, capture_output=True, text=True
            )
            timed[label] = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(f"bench/bootstrap_once.py failed: {proc.stderr.strip()[-400:]}")
            timed[f"{label}_changed"] = json.loads(proc.stdout)["changed"]
    return timed


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The last run's details, with the median of every timing over the runs."""
    merged = dict(runs[-1])
    for key in ("first_s", "first_busy", "again_s", "peer_first_s", "peer_again_s"):
        if key in merged:
            merged[key] = statistics.median(r[key] for r in runs)
    merged["changed_again"] = max(r["changed_again"] for r in runs)
    return merged


def report(latency_ms: float, results: dict[int, dict[str, Any]], repeat: int) -> None:
    sizes = list(results)
    base = results[sizes[0]]["first_s"]
    runs = f"median of {repeat} runs" if repeat > 1 else "1 run"
    runs += ", in this warm process"
    print(f"k3s bootstrap over SSH with {latency_ms:.0f} ms added round-trip latency ({runs})")
    for n, r in results.items():
        ratio = r["first_s"] / base
        rerun = r["again_s"] / r["first_s"]
        print(
            f"  {n} host(s): first run {r['first_s']:6.2f} s ({ratio:.2f}x the 1-host time), "
            f"no-op rerun {r['again_s']:5.2f} s ({rerun:.0%} of first; {r['changed_again']} changed)"
        )
        first_cmds = ", ".join(f"{h} {c}" for h, c in r["commands_per_host"].items())
        again_cmds = ", ".join(f"{h} {c}" for h, c in r["commands_again"].items())
        cores = os.cpu_count() or 1
        print(
            f"    machine busy during the first run: {r['first_busy']:.2f} CPU-s of "
            f"{r['first_s'] * cores:.2f} ({cores} cores; hubfleet, the hosts' sshd and stand-ins)"
        )
        print(f"    commands per host (first run, facts included): {first_cmds}")
        print(f"    commands per host (no-op rerun): {again_cmds}")
    steps = results[sizes[-1]]["commands_per_step"]
    print(
        "  round trips per step (most on any host, first run): "
        + ", ".join(f"{s} {c}" for s, c in steps.items())
    )
    if 6 in results:
        print(f"  goal 6 hosts <= 1.3 x 1 host: {results[6]['first_s'] / base:.2f}x")
    largest = results[sizes[-1]]
    fresh = largest.get("fresh")
    if fresh:
        print(
            f"  {sizes[-1]} host(s), each run a process of its own (Python's start and imports "
            f"included): first run {fresh['first']:6.2f} s, no-op rerun {fresh['again']:5.2f} s "
            f"({fresh['again_changed']} changed)"
        )
    if "peer_first_s" in largest:
        n = sizes[-1]
        print(f"  beside Ansible on the same {n} host(s) (host prep only: forks 10, pipelining):")
        print(
            f"    first run: hubfleet {largest['first_s']:6.2f} s, Ansible "
            f"{largest['peer_first_s']:6.2f} s ({largest['peer_changed_first']} changed): "
            f"hubfleet {largest['peer_first_s'] / largest['first_s']:.1f}x faster (goal >= 15x)"
        )
        print(
            f"    no-op rerun: hubfleet {largest['again_s']:6.2f} s, Ansible "
            f"{largest['peer_again_s']:6.2f} s ({largest['peer_changed_again']} changed): "
            f"hubfleet {largest['peer_again_s'] / largest['again_s']:.1f}x faster (goal >= 30x)"
        )
        if fresh:
            print(
                f"    as processes of their own: first run "
                f"{largest['peer_first_s'] / fresh['first']:.1f}x faster, no-op rerun "
                f"{largest['peer_again_s'] / fresh['again']:.1f}x faster"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", default="50", help="one or more, comma-separated")
    parser.add_argument("--sizes", default="1,3,6")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (medians shown)")
    parser.add_argument("--peer", choices=["ansible"], default=None)
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="also time the largest size with each hubfleet run a process of its own",
    )
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    if args.peer == "ansible" and ansible_peer.ansible_playbook() is None:
        raise SystemExit("--peer ansible needs ansible-core: pip install -e '.[bench]'")
    if not 1 <= args.repeat <= 20:
        raise SystemExit("--repeat: from 1 to 20")
    sizes = [int(s) for s in args.sizes.split(",")]
    # untimed: hubfleet's imports and first calls, so the in-process figures below are all of a
    # warm process (the cold start is what --fresh measures)
    run_size(1, 0.0, None)
    for latency in [float(x) for x in args.latency_ms.split(",")]:
        results = {}
        for n in sizes:
            peer = args.peer if n == sizes[-1] else None
            results[n] = median_of([run_size(n, latency, peer) for _ in range(args.repeat)])
            if args.fresh and n == sizes[-1]:
                runs = [run_fresh(n, latency) for _ in range(args.repeat)]
                results[n]["fresh"] = {
                    key: statistics.median(r[key] for r in runs) for key in runs[0]
                }
        report(latency, results, args.repeat)


if __name__ == "__main__":
    main()
