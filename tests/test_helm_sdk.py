"""The SDK Helm engine against the real Helm Go SDK (helm-python-sdk), offline.

Charts come from tests/charts (copied to a temp dir when a test may write into them). There
is no Kubernetes API server here: cluster calls are tested against a closed 127.0.0.1 port
(unreachable) and against `HelmStorageStub`, which answers only the endpoints Helm reads
release records through.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import helm_python
import pytest

from hubfleet.errors import ClusterError, ConfigError, RenderError
from hubfleet.helm import sdk
from hubfleet.helm.engine import ReleaseInfo
from hubfleet.helm.errors import shown_path
from hubfleet.helm.sdk import SdkEngine
from hubfleet.kube.credentials import ClusterCredentials, credentials_from_kubeconfig

CHARTS = Path(__file__).parent / "charts"


@pytest.fixture
def engine() -> SdkEngine:
    return SdkEngine()


def copy_chart(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(CHARTS / name, target)
    return target


def write_chart(root: Path, name: str, template: str, chart_extra: str = "") -> Path:
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n{chart_extra}"
    )
    (chart / "values.yaml").write_text("{}\n")
    (chart / "templates" / "cm.yaml").write_text(template)
    return chart


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubeconfig(server: str, member: str = "demo") -> ClusterCredentials:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": member, "cluster": {"server": server}}],
        "users": [{"name": member, "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": member, "context": {"cluster": member, "user": member}}],
        "current-context": member,
    }
    return credentials_from_kubeconfig(member, config, f"secrets/{member}-kubeconfig.yaml")


# --- render -------------------------------------------------------------------------------


def test_render_uses_values_release_and_namespace(engine: SdkEngine) -> None:
    hi = engine.render(CHARTS / "tiny", "hub", "staging", {"greeting": "hi", "replicaCount": 3})
    bye = engine.render(CHARTS / "tiny", "hub", "staging", {"greeting": "bye"})

    # empty.yaml renders to whitespace and NOTES.txt is not a manifest: both left out
    assert sorted(hi) == ["tiny/templates/configmap.yaml", "tiny/templates/deployment.yaml"]
    assert 'greeting: "hi"' in hi["tiny/templates/configmap.yaml"]
    assert 'greeting: "bye"' in bye["tiny/templates/configmap.yaml"]
    assert "name: hub-greeting\n  namespace: staging" in hi["tiny/templates/configmap.yaml"]
    assert "replicas: 3" in hi["tiny/templates/deployment.yaml"]
    assert "replicas: 1" in bye["tiny/templates/deployment.yaml"]  # the chart default


def test_render_null_deletes_a_default_and_the_schema_catches_it(engine: SdkEngine) -> None:
    with pytest.raises(ConfigError) as err:
        engine.render(CHARTS / "tiny", "hub", "ns", {"greeting": None})
    assert str(err.value) == (
        f"chart {shown_path(CHARTS / 'tiny')}: values fail values.schema.json: "
        "greeting: required but missing"
    )


def test_render_error_keeps_the_template_file_and_line(engine: SdkEngine) -> None:
    with pytest.raises(RenderError) as err:
        engine.render(CHARTS / "broken", "hub", "ns", {})
    assert str(err.value) == (
        f"chart {shown_path(CHARTS / 'broken')}: template broken/templates/cm.yaml:7: "
        'parse error: function "nosuchfunc" not defined'
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            'a: {{ required "needs.value is required" .Values.needs }}\n',
            "template shapes/templates/cm.yaml:1: needs.value is required",
        ),
        (
            "x: 1\ny: {{ index .Values.list 5 }}\n",
            "template shapes/templates/cm.yaml:2: at <index .Values.list 5>: "
            "error calling index: index out of range: 5",
        ),
        (
            "x: 1\n\ny: {{ .Values.name.sub.deeper }}\n",
            "template shapes/templates/cm.yaml:3: at <.Values.name.sub.deeper>: "
            "can't evaluate field sub in type interface {}",
        ),
    ],
)
def test_render_error_shapes_become_one_line(
    engine: SdkEngine, tmp_path: Path, template: str, expected: str
) -> None:
    chart = write_chart(tmp_path, "shapes", template)
    (chart / "values.yaml").write_text("name: demo\nlist: [1]\n")
    with pytest.raises(RenderError) as err:
        engine.render(chart, "hub", "ns", {})
    assert "\n" not in str(err.value)
    assert str(err.value).endswith(expected), str(err.value)


def test_render_of_a_missing_chart_names_the_directory(engine: SdkEngine, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"^chart .*nowhere: cannot load the chart: "):
        engine.render(tmp_path / "nowhere", "hub", "ns", {})


# --- lint and schema ------------------------------------------------------------------------


def test_lint_finds_the_error_in_a_broken_chart(engine: SdkEngine) -> None:
    findings = engine.lint(CHARTS / "broken", {})
    errors = [f for f in findings if f.severity == "error"]
    assert len(errors) == 1
    assert errors[0].path == "templates/"
    assert "broken/templates/cm.yaml:7" in errors[0].message


def test_lint_passes_a_good_chart(engine: SdkEngine) -> None:
    findings = engine.lint(CHARTS / "tiny", {"greeting": "hi"})
    assert [f for f in findings if f.severity in ("error", "warning")] == []
    assert all(f.severity == "info" for f in findings)  # e.g. "icon is recommended"


def test_lint_reports_schema_violations_as_findings(engine: SdkEngine) -> None:
    findings = engine.lint(CHARTS / "tiny", {"replicaCount": "three"})
    assert any(f.severity == "error" and "/replicaCount" in f.message for f in findings)


def test_schema_violation_names_the_chart_and_key(engine: SdkEngine) -> None:
    with pytest.raises(ConfigError) as err:
        engine.validate_values_schema(CHARTS / "tiny", {"replicaCount": "three"})
    assert str(err.value) == (
        f"chart {shown_path(CHARTS / 'tiny')}: values fail values.schema.json: "
        "replicaCount: got string, want integer"
    )


def test_schema_names_nested_and_missing_keys(engine: SdkEngine) -> None:
    with pytest.raises(ConfigError) as err:
        engine.validate_values_schema(
            CHARTS / "tiny", {"image": {"tag": None, "repository": 5}, "replicaCount": -1}
        )
    message = str(err.value)
    assert "\n" not in message
    assert "replicaCount: minimum: got -1, want 0" in message
    assert "image.tag: required but missing" in message
    assert "image.repository: got number, want string" in message


def test_schema_passes_good_values_and_charts_without_a_schema(engine: SdkEngine) -> None:
    engine.validate_values_schema(CHARTS / "tiny", {"greeting": "hi"})  # merged over defaults
    engine.validate_values_schema(CHARTS / "broken", {"anything": [1, 2]})  # no schema


# --- dependencies ---------------------------------------------------------------------------


def test_vendored_subchart_needs_nothing(engine: SdkEngine, tmp_path: Path) -> None:
    chart = copy_chart("withdep", tmp_path)
    before = sorted(p.name for p in (chart / "charts").iterdir())
    engine.build_dependencies(chart)
    assert sorted(p.name for p in (chart / "charts").iterdir()) == before
    rendered = engine.render(chart, "hub", "ns", {})
    assert 'message: "from-parent"' in rendered["withdep/charts/sub/templates/configmap.yaml"]


def test_chart_without_dependencies_is_left_alone(engine: SdkEngine, tmp_path: Path) -> None:
    chart = copy_chart("tiny", tmp_path)
    engine.build_dependencies(chart)
    assert not (chart / "charts").exists()


def test_file_dependency_is_packaged_offline(engine: SdkEngine, tmp_path: Path) -> None:
    shutil.copytree(CHARTS / "withdep" / "charts" / "sub", tmp_path / "src" / "sub")
    chart = write_chart(
        tmp_path,
        "local",
        "a: b\n",
        "dependencies:\n  - name: sub\n    version: 0.1.0\n    repository: file://../src/sub\n",
    )
    engine.build_dependencies(chart)
    assert [p.name for p in (chart / "charts").iterdir()] == ["sub-0.1.0.tgz"]
    assert "local/charts/sub/templates/configmap.yaml" in engine.render(chart, "hub", "ns", {})


def test_unvendored_remote_dependency_fails_with_the_repo_and_how_to_vendor(
    engine: SdkEngine, tmp_path: Path
) -> None:
    chart = copy_chart("withdep-remote", tmp_path)
    with pytest.raises(RenderError) as err:
        engine.build_dependencies(chart)
    message = str(err.value)
    assert "\n" not in message
    assert "dependency jupyterhub 4.1.0 from https://hub.jupyter.org/helm-chart/" in message
    assert "fetching is off (HUBFLEET_HELM_FETCH=1 allows it)" in message
    assert message.endswith(
        "fetch it: invoke charts.update (or vendor it: helm pull jupyterhub --repo "
        f"https://hub.jupyter.org/helm-chart/ --version '4.1.0' -d {shown_path(chart)}/charts)"
    )
    assert not (chart / "charts").exists()  # nothing half-done left behind


def test_dependency_found_in_the_chart_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    helm_python.package(CHARTS / "withdep" / "charts" / "sub", destination=cache)
    helm_python.package(CHARTS / "tiny", destination=cache)  # another chart: never picked
    chart = write_chart(
        tmp_path,
        "cached",
        "a: b\n",
        "dependencies:\n  - name: sub\n    version: ~0.1.0\n"
        "    repository: https://charts.example.invalid\n",
    )
    SdkEngine(chart_cache=cache).build_dependencies(chart)
    assert [p.name for p in (chart / "charts").iterdir()] == ["sub-0.1.0.tgz"]


def test_dependencies_are_resolved_again_only_when_the_chart_changed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    helm_python.package(CHARTS / "withdep" / "charts" / "sub", destination=cache)
    chart = write_chart(
        tmp_path,
        "cached",
        "a: b\n",
        "dependencies:\n  - name: sub\n    version: ~0.1.0\n"
        "    repository: https://charts.example.invalid\n",
    )
    engine = SdkEngine(chart_cache=cache)
    listed: list[Path] = []
    real = sdk._dependency_states
    engine.build_dependencies(chart)
    with pytest.MonkeyPatch.context() as patch:

        def counted(chart_dir: Path) -> list[Any]:
            listed.append(chart_dir)
            return real(chart_dir)

        patch.setattr(sdk, "_dependency_states", counted)
        engine.build_dependencies(chart)  # same files: the answer is known
        assert listed == []
        engine.build_dependencies(chart, only=["sub"])  # another question: asked
        assert listed == [chart]
        (chart / "charts" / "sub-0.1.0.tgz").unlink()  # charts/ changed: resolved again
        engine.build_dependencies(chart)
        assert len(listed) > 1  # listed again (and once more after the copy)
    assert [p.name for p in (chart / "charts").iterdir()] == ["sub-0.1.0.tgz"]


def test_cached_chart_of_the_wrong_version_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    helm_python.package(CHARTS / "withdep" / "charts" / "sub", destination=cache)
    chart = write_chart(
        tmp_path,
        "cached",
        "a: b\n",
        "dependencies:\n  - name: sub\n    version: 2.0.0\n    repository: https://charts.example.invalid\n",
    )
    with pytest.raises(RenderError, match=rf"is not in charts/ nor the chart cache {cache} and"):
        SdkEngine(chart_cache=cache).build_dependencies(chart)
    assert list((chart / "charts").iterdir()) == []


@pytest.fixture
def local_chart_repo(tmp_path: Path) -> Iterator[str]:
    """A chart repository (index.yaml + the sub chart) served on 127.0.0.1."""
    repo = tmp_path / "repo"
    helm_python.package(CHARTS / "withdep" / "charts" / "sub", destination=repo)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(repo)))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    helm_python.repo_index_generate(repo, base_url=url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fetch_when_allowed_pulls_into_the_cache(tmp_path: Path, local_chart_repo: str) -> None:
    chart = write_chart(
        tmp_path,
        "fetched",
        "a: b\n",
        f"dependencies:\n  - name: sub\n    version: ^0.1.0\n    repository: {local_chart_repo}\n",
    )
    cache = tmp_path / "cache"
    SdkEngine(chart_cache=cache, fetch_dependencies=True).build_dependencies(chart)
    assert [p.name for p in cache.iterdir()] == ["sub-0.1.0.tgz"]
    assert [p.name for p in (chart / "charts").iterdir()] == ["sub-0.1.0.tgz"]


def test_failed_fetch_names_the_repo(tmp_path: Path) -> None:
    repo = f"http://127.0.0.1:{closed_port()}"
    chart = write_chart(
        tmp_path,
        "unfetchable",
        "a: b\n",
        f"dependencies:\n  - name: sub\n    version: 0.1.0\n    repository: {repo}\n",
    )
    with pytest.raises(RenderError) as err:
        SdkEngine(chart_cache=tmp_path / "cache", fetch_dependencies=True).build_dependencies(chart)
    assert f"dependency sub 0.1.0 from {repo} is not in charts/" in str(err.value)
    assert "fetching it failed (" in str(err.value)
    assert "vendor it: helm pull sub --repo" in str(err.value)


# --- releases -------------------------------------------------------------------------------


def test_dry_run_install_needs_no_cluster(engine: SdkEngine) -> None:
    info = engine.dry_run_install(None, CHARTS / "tiny", "hub", "staging", {"greeting": "yo"})
    assert isinstance(info, ReleaseInfo)
    assert (info.name, info.namespace, info.revision) == ("hub", "staging", 1)
    assert (info.chart, info.chart_version, info.app_version) == ("tiny", "0.1.0", "1.2.3")
    assert "# Source: tiny/templates/configmap.yaml" in info.manifest
    assert 'greeting: "yo"' in info.manifest
    assert "NOTES" not in info.manifest


def test_dry_run_install_with_an_unreachable_member_still_works(engine: SdkEngine) -> None:
    creds = kubeconfig(f"https://127.0.0.1:{closed_port()}")
    info = engine.dry_run_install(creds, CHARTS / "tiny", "hub", "ns", {})
    assert info.revision == 1


def test_dry_run_install_maps_chart_errors(engine: SdkEngine) -> None:
    with pytest.raises(RenderError, match=r"template broken/templates/cm.yaml:7: parse error"):
        engine.dry_run_install(None, CHARTS / "broken", "hub", "ns", {})
    with pytest.raises(ConfigError, match=r"values fail values.schema.json: replicaCount: minimum"):
        engine.dry_run_install(None, CHARTS / "tiny", "hub", "ns", {"replicaCount": -2})


def test_concurrent_dry_runs_keep_their_own_values(engine: SdkEngine) -> None:
    def one(i: int) -> str:
        return engine.dry_run_install(
            None, CHARTS / "tiny", f"m{i}", f"ns{i}", {"greeting": f"g{i}"}
        ).manifest

    with ThreadPoolExecutor(max_workers=4) as pool:
        manifests = list(pool.map(one, range(8)))
    for i, manifest in enumerate(manifests):
        assert f'greeting: "g{i}"' in manifest and f"namespace: ns{i}" in manifest


@pytest.mark.parametrize(
    "call",
    [
        lambda e, c: e.status(c, "hub", "ns"),
        lambda e, c: e.history(c, "hub", "ns"),
        lambda e, c: e.rollback(c, "hub", "ns", 1),
        lambda e, c: e.upgrade_or_install(
            c, CHARTS / "tiny", "hub", "ns", {}, timeout_s=5, wait=True
        ),
    ],
    ids=["status", "history", "rollback", "upgrade_or_install"],
)
def test_unreachable_member_is_a_cluster_error_naming_it(engine: SdkEngine, call: Any) -> None:
    server = f"https://127.0.0.1:{closed_port()}"
    creds = kubeconfig(server, member="edge-1")
    started = time.monotonic()
    with pytest.raises(ClusterError) as err:
        call(engine, creds)
    # a guard against hanging, not a speed goal: a refused connection fails at once
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert message.startswith(f"member edge-1 ({server}): cluster unreachable: ")
    assert "connection refused" in message and "\n" not in message


# --- release records, through a stub of Helm's release storage --------------------------


def helm_secret(
    name: str, namespace: str, revision: int, status: str, description: str
) -> dict[str, Any]:
    """A release record stored the way Helm's secret driver stores it (gzip+base64 JSON)."""
    record = {
        "name": name,
        "namespace": namespace,
        "version": revision,
        "info": {
            "first_deployed": "2026-01-01T00:00:00Z",
            "last_deployed": f"2026-01-0{revision}T00:00:00Z",
            "description": description,
            "status": status,
            "notes": "",
        },
        "chart": {
            "metadata": {"name": "tiny", "version": f"0.{revision}.0", "appVersion": "1.2.3"}
        },
        "config": {},
        "manifest": f"---\n# Source: tiny/templates/configmap.yaml\nrevision: {revision}\n",
    }
    blob = base64.b64encode(gzip.compress(json.dumps(record).encode())).decode()
    return {
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": namespace,
            "labels": {"owner": "helm", "name": name, "status": status, "version": str(revision)},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(blob.encode()).decode()},
    }


class HelmStorageStub(BaseHTTPRequestHandler):
    """A stub Kubernetes API server: only /version and reading secrets, which is all Helm's
    secret storage driver needs to answer status and history. Not a Kubernetes API server."""

    secrets: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if url.path == "/version":
            self.reply(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"})
        elif parts[:3] == ["api", "v1", "namespaces"] and parts[4:5] == ["secrets"]:
            mine = [s for s in self.secrets if s["metadata"]["namespace"] == parts[3]]
            if len(parts) == 6:
                found = [s for s in mine if s["metadata"]["name"] == parts[5]]
                if found:
                    self.reply(200, {"kind": "Secret", "apiVersion": "v1", **found[0]})
                else:
                    self.reply(
                        404,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "reason": "NotFound",
                            "code": 404,
                        },
                    )
                return
            selector = parse_qs(url.query).get("labelSelector", [""])[0]
            wanted = dict(kv.split("=", 1) for kv in selector.split(",") if kv)
            items = [
                s
                for s in mine
                if all(s["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
            self.reply(
                200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": items}
            )
        else:
            self.reply(
                404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
            )

    def reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def storage_stub() -> Iterator[str]:
    handler = type(
        "Stub",
        (HelmStorageStub,),
        {
            "secrets": [
                helm_secret("hub", "prod", 1, "superseded", "Install complete"),
                helm_secret("hub", "prod", 2, "failed", 'Upgrade "hub" failed: timed out'),
                helm_secret("hub", "prod", 3, "deployed", "Rollback to 1"),
                helm_secret("hub", "other", 1, "deployed", "Install complete"),
            ]
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_status_is_the_latest_revision_with_manifest(engine: SdkEngine, storage_stub: str) -> None:
    info = engine.status(kubeconfig(storage_stub), "hub", "prod")
    assert info == ReleaseInfo(
        name="hub",
        namespace="prod",
        revision=3,
        status="deployed",
        chart="tiny",
        chart_version="0.3.0",
        app_version="1.2.3",
        updated="2026-01-03T00:00:00Z",
        description="Rollback to 1",
        manifest="---\n# Source: tiny/templates/configmap.yaml\nrevision: 3\n",
    )


def test_history_is_oldest_first_with_descriptions(engine: SdkEngine, storage_stub: str) -> None:
    revisions = engine.history(kubeconfig(storage_stub), "hub", "prod")
    assert [(r.revision, r.status, r.description) for r in revisions] == [
        (1, "superseded", "Install complete"),
        (2, "failed", 'Upgrade "hub" failed: timed out'),
        (3, "deployed", "Rollback to 1"),
    ]
    assert all(r.manifest == "" and r.namespace == "prod" for r in revisions)


def test_missing_release_is_none_and_empty_history(engine: SdkEngine, storage_stub: str) -> None:
    creds = kubeconfig(storage_stub)
    assert engine.status(creds, "nothere", "prod") is None
    assert engine.history(creds, "nothere", "prod") == []


def test_the_members_context_is_the_one_used(engine: SdkEngine, storage_stub: str) -> None:
    dead = f"https://127.0.0.1:{closed_port()}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "live", "cluster": {"server": storage_stub}},
            {"name": "dead", "cluster": {"server": dead}},
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "live", "context": {"cluster": "live", "user": "u"}},
            {"name": "dead", "context": {"cluster": "dead", "user": "u"}},
        ],
        "current-context": "dead",
    }
    creds = credentials_from_kubeconfig("demo", config, "secrets/demo-kubeconfig.yaml", "live")
    status = engine.status(creds, "hub", "other")
    assert status is not None and status.revision == 1
