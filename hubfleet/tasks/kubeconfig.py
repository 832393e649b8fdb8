"""kubeconfig.* tasks: rewrite a fetched kubeconfig for a member, merge a member's into yours.

Thin: flags in, hubfleet.kube.kubeconfig out. `merge` is the one place hubfleet writes a personal
kubeconfig, and only when asked: it backs the file up first and never changes its
current-context. Neither task prints credentials except `rewrite`, whose output is the
kubeconfig itself (pipe it into the encrypted secrets file).
"""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task


@task(
    help={
        "file": "the kubeconfig fetched from the host (k3s.yaml, or `microk8s config` output)",
        "member": "the member it belongs to: every name in it becomes this",
        "server": "the API server URL clients use, e.g. https://203.0.113.7:6443",
        "namespace": "set this namespace on the context (default: leave it as it is)",
        "debug": DEBUG_HELP,
    }
)
def rewrite(
    c: Context,
    file: str,
    member: str,
    server: str,
    namespace: str | None = None,
    debug: bool = False,
) -> None:
    """Print FILE rewritten for a member: names, server, namespace (FILE is left unchanged).

    Warns on stderr when the client certificate expires within 30 days.
    """

    def body() -> None:
        import datetime as dt
        import sys
        from pathlib import Path

        from hubfleet.errors import ConfigError
        from hubfleet.kube import kubeconfig

        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"{file}: no such file")
        data = kubeconfig.read_file(path)
        if data is None:
            raise ConfigError(f"{file}: empty; not a kubeconfig")
        result = kubeconfig.rewrite(data, member, server, namespace, source=file)
        warning = kubeconfig.cert_warning(result, dt.datetime.now(dt.UTC))
        if warning:
            print(f"warning: {file}: {warning}", file=sys.stderr)
        print(kubeconfig.as_yaml(result), end="")

    run_front(body, debug)


@task(
    help={
        "member": "the member whose kubeconfig (secrets/<member>-kubeconfig.yaml) to merge",
        "into": "the kubeconfig to merge into (default: ~/.kube/config, from $HOME)",
        "follow-symlinks": "when the kubeconfig is a symlink, write the file it points to "
        "(refused otherwise)",
        "debug": DEBUG_HELP,
    }
)
def merge(
    c: Context,
    member: str,
    into: str | None = None,
    follow_symlinks: bool = False,
    debug: bool = False,
) -> None:
    """Add or update a member's cluster, user and context in your kubeconfig (named MEMBER).

    The file is backed up first (<file>.bak-YYYYmmddHHMMSS), written 0600, and its
    current-context is kept (set to MEMBER only when it had none). Only a kubeconfig
    (apiVersion v1, kind Config) is touched; of a missing path, only the last folder is made
    (0700); a symlink is followed only with --follow-symlinks.
    """

    def body() -> None:
        import datetime as dt
        import os
        from pathlib import Path

        from hubfleet.cloud.credentials import member_credentials
        from hubfleet.errors import ConfigError
        from hubfleet.files.repo import find_repo
        from hubfleet.kube import kubeconfig
        from hubfleet.registry.members import load_registry

        repo = find_repo()
        record = load_registry(repo).member(member)
        creds = member_credentials(repo, record)
        entries = kubeconfig.member_entries(
            creds.kubeconfig, record.name, creds.context, source=creds.source
        )
        path = Path(into).expanduser() if into else kubeconfig.default_path(os.environ)
        kubeconfig.check_merge_target(path, follow_symlinks=follow_symlinks)
        before = kubeconfig.read_file(path)
        after = kubeconfig.merge_into(before, entries)
        changes = kubeconfig.merge_changes(before, entries)
        if after == before:
            print(f"{path} already has member {record.name}; nothing written")
            return
        try:
            backup = kubeconfig.write_file(path, after, dt.datetime.now())
        except OSError as err:
            raise ConfigError(f"cannot write {path}: {err.strerror}; nothing was changed") from None
        for change in changes:  # said once they are true
            print(change)
        if backup is not None:
            print(f"backed up the previous file to {backup}")
        print(f"wrote {path} (mode 0600)")
        if creds.expires_at is not None:
            print(
                f"member {record.name}'s token expires at {creds.expires_at:%Y-%m-%d %H:%M} UTC; "
                "run this again for a fresh one"
            )
        current = after.get("current-context")
        if before is not None and before.get("current-context"):
            print(f"current-context left at {current}")
        else:
            print(f"current-context set to {current} (the file had none)")

    run_front(body, debug)
