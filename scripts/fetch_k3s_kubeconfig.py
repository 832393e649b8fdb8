#!/usr/bin/env python3
"""Fetch each k3s member's kubeconfig from its server, rewrite it for the member (server at the
public address, names and namespace the member's) and store it sops-encrypted in
secrets/MEMBER-kubeconfig.yaml. The same as `invoke k3s.kubeconfig MEMBER`, for several.

    python scripts/fetch_k3s_kubeconfig.py MEMBER [MEMBER ...] [--accept-host-key SHA256:...]
"""

from __future__ import annotations

import argparse

from hubfleet.cli import run_front


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "members", nargs="+", metavar="MEMBER", help="k3s members from config/federation.yaml"
    )
    parser.add_argument("--accept-host-key", help="trust an unknown host key with this fingerprint")
    parser.add_argument(
        "--identity", help="private key root accepts, when secrets/MEMBER.key does not exist yet"
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    args = parser.parse_args()

    def fetch_all() -> None:
        from hubfleet.tasks.k3s import fetch_kubeconfigs

        fetch_kubeconfigs(args.members, args.accept_host_key, args.identity)

    run_front(fetch_all, args.debug)


if __name__ == "__main__":
    main()
