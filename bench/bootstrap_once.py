"""One k3s bootstrap of the bench member in a process of its own, as an operator's `invoke
k3s.bootstrap` is: Python's start and hubfleet's imports count, as ansible-playbook's own start
counts for the peer. Run by bench/bootstrap.py; prints what it did as one JSON line.

    python bench/bootstrap_once.py REPO MEMBER ROUTES_JSON [IDENTITY]
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hubfleet.files.repo import DeployRepo
from hubfleet.hosts.member_run import BootstrapOptions
from hubfleet.k3s import bootstrap as k3s_bootstrap


def main() -> None:
    repo, member, routes_json = sys.argv[1:4]
    identity = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    routes = {
        address: (host, int(port)) for address, (host, port) in json.loads(routes_json).items()
    }
    commands: dict[str, int] = {}
    reports = k3s_bootstrap.bootstrap(
        DeployRepo(Path(repo)),
        member,
        BootstrapOptions(identity=identity, routes=routes, ready_timeout_s=60),
        say=lambda line: None,
        commands=commands,
    )
    states = [r.state for r in reports]
    print(json.dumps({"commands": commands, "changed": sum(s != "ok" for s in states)}))


if __name__ == "__main__":
    main()
