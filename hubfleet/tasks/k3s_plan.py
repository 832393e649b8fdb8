"""k3s.upgrade-plan: a k3s member's system-upgrade-controller Plans, printed or applied.

Thin: flags in, hubfleet.k3s.upgrade_plan out.
"""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task


@task(
    help={
        "member": "the k3s member, as named in config/federation.yaml",
        "apply": "apply the Plans to the member's cluster (create or replace; unchanged: ok)",
        "debug": DEBUG_HELP,
    }
)
def upgrade_plan(c: Context, member: str, apply: bool = False, debug: bool = False) -> None:
    """Print a k3s member's automatic-upgrade Plans as YAML, or --apply them to its cluster.

    The Plans follow k3s.upgrade in the registry (channel or version, concurrency, window);
    applying needs system-upgrade-controller installed on the cluster.
    """

    def body() -> None:
        from hubfleet.errors import ConfigError
        from hubfleet.files.repo import find_repo
        from hubfleet.k3s import upgrade_plan as plans
        from hubfleet.registry.members import load_registry

        repo = find_repo()
        record = load_registry(repo).member(member)
        if record.provider != "k3s":
            raise ConfigError(
                f"member {record.name} is a {record.provider} member; upgrade Plans are for k3s"
            )
        rendered = plans.render_plans(record)
        if not apply:
            print(plans.plans_yaml(rendered), end="")
            return

        from hubfleet.cloud.credentials import member_credentials
        from hubfleet.kube import client as kube

        creds = member_credentials(repo, record)
        with kube.member_api(creds) as api:
            kube.check_reachable(api, creds)
            outcomes = plans.apply_plans(api, rendered, where=f"member {record.name}")
        for outcome in outcomes:
            print(outcome)

    run_front(body, debug)
