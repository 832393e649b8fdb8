"""The deploy of one member, as data flows:

member record -> values layers (secrets decrypted in memory) -> validation -> chart
dependencies -> render -> (dry-run: plan, stop) -> credentials -> diff against the live release
-> (nothing changed: skip) -> confirm -> upgrade-or-install -> rollout wait (rollback on
failure) -> health checks -> one summary line.

Everything a deploy needs travels in arguments; nothing global is read or changed, so two
members can be deployed at once in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from hubfleet.deploy.findings import explain_schema_error, unread_values
from hubfleet.deploy.manifests import (
    ObjectChange,
    diff_objects,
    parse_manifests,
)
from hubfleet.deploy.plan import Rendered, changes_text, plan_text
from hubfleet.deploy.support import apply_support_crds, support_crds
from hubfleet.errors import ConfigError, HubfleetError, RenderError, RolloutError
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import load_mapping
from hubfleet.helm.dependencies import (
    declared_dependencies,
    enabled_dependencies,
    installable,
)
from hubfleet.helm.engine import HelmEngine
from hubfleet.helm.errors import SchemaError
from hubfleet.helm.stack import chart_stack, missing_nested_charts
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.kube.rollout import RolloutState
from hubfleet.registry.members import Member, load_registry
from hubfleet.values.layers import MemberValues, member_values
from hubfleet.values.merge import redact

Say = Callable[[str], None]
Confirm = Callable[[str], bool]
# While a deploy waits for its rollouts: given a title, a context giving the callback that is
# told each change of a workload's state (a front's live table; by default a line each).
WatchRollouts = Callable[[str], AbstractContextManager[Callable[[RolloutState], None]]]


@dataclass(frozen=True)
class DeployOptions:
    dry_run: bool = False
    diff: bool = False  # show the diff against the live release and stop
    yes: bool = False
    timeout_s: int = 300
    force: bool = False
    health_timeout_s: float = 120.0


@dataclass(frozen=True)
class DeployResult:
    member: str
    outcome: str  # planned | unchanged | deployed | diffed
    revision: int | None
    seconds: float
    changes: tuple[ObjectChange, ...] = ()
    part: str = "member"  # which release: the hub ("member") or "support"
    support: DeployResult | None = None  # the support release's, deployed before this one


def _chart_meta(chart_dir: Path, shown: str) -> tuple[str, str]:
    meta = load_mapping(chart_dir / "Chart.yaml", f"{shown}/Chart.yaml").data
    return str(meta.get("name", "?")), str(meta.get("version", "?"))


TOKEN_MARGIN_S = 120  # render, diff and upgrade before the rollout wait starts


def _check_token_lifetime(member: Member, creds: ClusterCredentials, timeout_s: int) -> None:
    """A short-lived cluster token (GKE) must outlive the deploy, rollout wait included."""
    import datetime as dt

    if creds.expires_at is None:
        return
    left = (creds.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
    if left < timeout_s + TOKEN_MARGIN_S:
        raise HubfleetError(
            f"member {member.name}: the cluster token expires in {max(left, 0) / 60:.0f} min, "
            f"before this deploy's {timeout_s} s timeout ends; use a shorter --timeout"
        )


def _check_harbor_storage(member: Member, values: MemberValues) -> None:
    from hubfleet.errors import ConfigError
    from hubfleet.values.harbor_storage import harbor_storage_problem

    problem = harbor_storage_problem(member, values.effective.values)
    if problem:
        raise ConfigError(problem)


def render_member(
    repo: DeployRepo,
    member: Member,
    engine: HelmEngine,
    decrypted: Mapping[Path, str | Exception] | None = None,
) -> Rendered:
    """Values, validation, dependencies and render: all a deploy needs before the cluster,
    and all `invoke validate` checks (`decrypted`: the secrets files, decrypted once)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    chart_dir = repo.root / member.chart
    shown_chart = repo.relative(chart_dir)
    values = member_values(repo, member, decrypted=decrypted)
    if member.part == "member":
        _check_harbor_storage(member, values)
    timings["decrypt"] = values.decrypt_s
    timings["read+merge"] = time.perf_counter() - start - values.decrypt_s

    mark = time.perf_counter()
    # first: subcharts carry schemas of their own; only those the values enable are needed
    wanted = enabled_dependencies(declared_dependencies(chart_dir), values.effective.values)
    engine.build_dependencies(chart_dir, only=wanted)
    stack = chart_stack(chart_dir, values.effective.values)
    incomplete = missing_nested_charts(stack, chart_dir)
    if incomplete:
        raise RenderError(incomplete[0])
    secrets = values.effective.secret_strings()
    timings["dependencies"] = time.perf_counter() - mark
    mark = time.perf_counter()
    try:
        # Helm coalesces the values with every chart's defaults and checks every chart's
        # values.schema.json before it renders (both engines), so one call does both
        manifests = engine.render(chart_dir, member.release, member.namespace, values.user.values)
        objects = parse_manifests(manifests)
    except SchemaError as err:
        # from None: Helm's own text (the cause) may quote a value from a secrets layer
        raise ConfigError(explain_schema_error(err, values, chart_dir, shown_chart)) from None
    except HubfleetError as err:  # a template or a rendered manifest may quote a secret
        text = redact(str(err), secrets)
        if text == str(err):
            raise
        raise type(err)(text) from None
    timings["render"] = time.perf_counter() - mark
    name, version = _chart_meta(chart_dir, shown_chart)
    unread = unread_values(values, stack, member.name)
    return Rendered(
        member,
        chart_dir,
        name,
        version,
        values,
        manifests,
        objects,
        timings,
        tuple(unread),
        tuple(wanted),
    )


def deploy_member(
    repo: DeployRepo,
    name: str,
    engine: HelmEngine,
    options: DeployOptions,
    say: Say = print,
    confirm: Confirm | None = None,
    environ: Mapping[str, str] | None = None,
    credentials: ClusterCredentials | None = None,
    watch_rollouts: WatchRollouts | None = None,
    only: str | None = None,
) -> DeployResult:
    """Deploy member `name` (or plan/diff it) and return what happened: its support release
    first when it runs one (hubfleet.registry.support), then its hub; `only` ("support" or
    "member") deploys one of them. The result is the last release's, with the support
    release's result in `support`.

    `credentials` replaces the member's own decrypted kubeconfig (tests point it at a stub);
    `watch_rollouts` shows the wait for the workloads (default: a line per change, via `say`)."""
    from hubfleet.registry.support import releases

    member = load_registry(repo).member(name)
    chosen = releases(member, only)
    if not chosen:
        raise ConfigError(
            f"member {member.name}: runs no support release (no support block in "
            f"{repo.relative(repo.registry)}); deploy it without --only support"
        )
    # rendered all first: a broken support values file stops the deploy before anything changes
    rendered = [render_member(repo, release, engine) for release in chosen]
    creds = credentials
    results: list[DeployResult] = []
    for one in rendered:
        if creds is None and not options.dry_run:
            from hubfleet.cloud.credentials import member_credentials

            creds = member_credentials(repo, member)
        results.append(
            _deploy_release(
                repo, one, engine, options, say, confirm, environ, creds, watch_rollouts
            )
        )
    deployed = any(r.outcome == "deployed" for r in results)
    if member.health_check and deployed:
        _check_health(member, rendered, options, say)
    last = results[-1]
    if len(results) > 1:
        return replace(last, support=results[0])
    return last


def _check_health(
    member: Member, rendered: list[Rendered], options: DeployOptions, say: Say
) -> None:
    """The member's public hosts as its users reach them, hub and support release alike."""
    from hubfleet.deploy.health import health_checks, run_health_checks
    from hubfleet.registry.support import support_of

    by_part = {r.member.part: r.values.effective.values for r in rendered}
    if "member" not in by_part:
        by_part["member"] = {}
    checks = health_checks(by_part["member"], by_part.get("support"))
    support = support_of(member)
    trusted = support is None or support.issuer != "selfsigned"
    run_health_checks(
        member.name, checks, timeout_s=options.health_timeout_s, say=say, trusted=trusted
    )


def _deploy_release(
    repo: DeployRepo,
    rendered: Rendered,
    engine: HelmEngine,
    options: DeployOptions,
    say: Say,
    confirm: Confirm | None,
    environ: Mapping[str, str] | None,
    creds: ClusterCredentials | None,
    watch_rollouts: WatchRollouts | None,
) -> DeployResult:
    started = time.perf_counter()
    member = rendered.member
    for line in rendered.unread:
        say(f"warning: {line}")
    secrets = rendered.secret_strings()
    crds = support_crds(engine, member, rendered.chart_dir, rendered.values.effective.values)

    if options.dry_run:
        say(plan_text(repo, rendered, crds))
        say(f"{member.name}: dry run, nothing was changed")
        return DeployResult(
            member.name, "planned", None, time.perf_counter() - started, part=member.part
        )

    from hubfleet.kube import client as kube
    from hubfleet.kube.rollout import workloads_in_manifest

    assert creds is not None  # deploy_member reads them for anything but a dry run
    _check_token_lifetime(member, creds, options.timeout_s)
    with kube.member_api(creds) as api:
        kube.check_reachable(api, creds)
        live = engine.status(creds, member.release, member.namespace)
        live_objects = parse_manifests([live.manifest]) if live else []
        planned = rendered.objects
        if live:
            # what the upgrade would store, rendered against the cluster: charts that keep a
            # generated secret (lookup) or pick an API version by the cluster's capabilities
            # render differently offline, and would never look unchanged
            with installable(rendered.chart_dir, rendered.enabled) as chart_dir:
                upgrade = engine.planned_upgrade(
                    creds, chart_dir, member.release, member.namespace, rendered.values.user.values
                )
            planned = parse_manifests([upgrade.manifest])
        changes = diff_objects(live_objects, planned, member.namespace)
        where = f"revision {live.revision} ({live.status})" if live else "not installed"
        say(f"{member.name}: live release {member.release} in {member.namespace}: {where}")
        # a new chart version is a change even when its objects are the same: the release
        # then records the chart the repo has
        bumped = live is not None and live.chart_version not in ("", rendered.chart_version)
        if bumped and live is not None:
            say(f"  chart version {live.chart_version} -> {rendered.chart_version}")
        say(changes_text(changes, secrets))
        if options.diff:
            return DeployResult(
                member.name,
                "diffed",
                live.revision if live else None,
                time.perf_counter() - started,
                tuple(changes),
                part=member.part,
            )
        if live and live.status == "deployed" and not changes and not bumped and not options.force:
            say(
                f"{member.name}: nothing changed; skipping the upgrade of {member.release} "
                "(--force deploys anyway)"
            )
            return DeployResult(
                member.name,
                "unchanged",
                live.revision,
                time.perf_counter() - started,
                part=member.part,
            )
        env = {} if environ is None else environ
        if not (options.yes or env.get("CI")):
            what = "member" if member.part == "member" else "the support release of member"
            question = f"Deploy {len(changes)} change(s) to {what} {member.name} ({member.stage})?"
            if confirm is None or not confirm(question):
                raise HubfleetError(
                    f"member {member.name}: deploy not confirmed; nothing was changed "
                    "(--yes deploys without asking)"
                )
        if crds:
            apply_support_crds(api, crds, member, options.timeout_s, say)
        action = "upgrading" if live else "installing"
        say(f"{member.name}: {action} release {member.release} (timeout {options.timeout_s}s)")
        with installable(rendered.chart_dir, rendered.enabled) as chart_dir:
            release = engine.upgrade_or_install(
                creds,
                chart_dir,
                member.release,
                member.namespace,
                rendered.values.user.values,
                timeout_s=options.timeout_s,
                wait=False,
            )
        targets = [
            (w.kind, w.name) for w in workloads_in_manifest(rendered.objects, member.namespace)
        ]
        watch = watch_rollouts or (lambda title: nullcontext(lambda state: say(f"  {state}")))
        try:
            with watch(
                f"member {member.name}: waiting for {len(targets)} workload(s) of {member.release}"
            ) as seen:
                kube.wait_for_rollouts(
                    api, member.namespace, targets, options.timeout_s, on_progress=seen
                )
        except RolloutError as err:
            for report in kube.pod_diagnostics(api, member.namespace):
                for line in report.lines():
                    say(redact(f"  {line}", secrets))
            of = "" if member.part == "member" else f" of release {member.release}"
            if live is not None:
                engine.rollback(creds, member.release, member.namespace, live.revision)
                raise RolloutError(
                    f"member {member.name}: {err}; rolled back to revision {live.revision}{of}"
                ) from err
            raise RolloutError(
                f"member {member.name}: {err}; no earlier revision{of} to roll back to"
            ) from err

    seconds = time.perf_counter() - started
    say(
        f"{member.name}: deployed revision {release.revision} of {member.release} "
        f"in {member.namespace} in {seconds:.1f}s ({len(changes)} object(s) changed)"
    )
    return DeployResult(
        member.name, "deployed", release.revision, seconds, tuple(changes), part=member.part
    )
