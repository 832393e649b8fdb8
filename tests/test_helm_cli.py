"""The CLI Helm engine: argv builders and parsers as pure functions, then the real subprocess
path end to end against a fake `helm` on PATH (there is no helm binary here), and the choice
of engine from the environment.

The fake helm is a small Python script written by the test: it records its argv, stdin, the
environment keys that could steer it, and the mode and content of the kubeconfig it was
given, then prints the canned answer for its subcommand.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.errors import ClusterError, ConfigError, HubfleetError, RenderError, RolloutError
from hubfleet.helm import engine_from_env
from hubfleet.helm.cli import MISSING_HELM, CliEngine
from hubfleet.helm.cli_argv import (
    dependency_list_argv,
    dry_run_argv,
    history_argv,
    lint_argv,
    package_argv,
    pull_argv,
    render_argv,
    rollback_argv,
    status_argv,
    upgrade_argv,
)
from hubfleet.helm.cli_output import (
    error_text,
    helm_major_from_version,
    history_from_json,
    parse_dependency_list,
    parse_lint_output,
    parse_template_output,
    release_from_json,
    values_yaml,
)
from hubfleet.helm.engine import DependencyState, LintFinding, ReleaseInfo
from hubfleet.helm.sdk import SdkEngine
from hubfleet.kube.credentials import (
    ClusterCredentials,
    credentials_from_kubeconfig,
    kubeconfig_file,
)

CHARTS = Path(__file__).parent / "charts"
KC = Path("/tmp/hubfleet-helm-x/kubeconfig")
SECRET = "s3cr3t-hub-token"


def creds(member: str = "edge-1", server: str = "https://10.0.0.5:6443") -> ClusterCredentials:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "kube-token-value"}}],
        "contexts": [{"name": f"{member}-ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": f"{member}-ctx",
    }
    return credentials_from_kubeconfig(member, config, f"secrets/{member}-kubeconfig.yaml")


# --- argv -----------------------------------------------------------------------------------


def test_upgrade_argv_helm4() -> None:
    argv = upgrade_argv(
        Path("chart"), "hub", "prod", kubeconfig=KC, context="edge-1-ctx", timeout_s=600, wait=True
    )
    assert argv == [
        "helm", "upgrade", "--install", "hub", "chart", "--namespace", "prod",
        "--values", "-", "--output", "json", "--history-max", "10", "--timeout", "600s",
        "--create-namespace", "--wait", "--rollback-on-failure",
        "--kubeconfig", str(KC), "--kube-context", "edge-1-ctx",
    ]  # fmt: skip


def test_upgrade_argv_helm3_uses_atomic() -> None:
    argv = upgrade_argv(
        Path("chart"), "hub", "prod", kubeconfig=KC, context="c", timeout_s=60, wait=True,
        helm_major=3, helm="/usr/bin/helm",
    )  # fmt: skip
    assert argv[0] == "/usr/bin/helm"
    assert "--atomic" in argv and "--rollback-on-failure" not in argv


def test_upgrade_argv_without_wait_cannot_roll_back() -> None:
    argv = upgrade_argv(
        Path("chart"), "hub", "prod", kubeconfig=KC, context="c", timeout_s=60, wait=False,
        create_namespace=False,
    )  # fmt: skip
    assert argv == [
        "helm", "upgrade", "--install", "hub", "chart", "--namespace", "prod",
        "--values", "-", "--output", "json", "--history-max", "10", "--timeout", "60s",
        "--kubeconfig", str(KC), "--kube-context", "c",
    ]  # fmt: skip


def test_read_and_offline_argv() -> None:
    chart = Path("charts/demo")
    assert render_argv(chart, "hub", "prod") == [
        "helm", "template", "hub", "charts/demo", "--namespace", "prod", "--values", "-",
    ]  # fmt: skip
    assert lint_argv(chart) == ["helm", "lint", "charts/demo", "--values", "-"]
    assert status_argv("hub", "prod", kubeconfig=KC, context="c") == [
        "helm", "status", "hub", "--namespace", "prod", "--output", "json",
        "--kubeconfig", str(KC), "--kube-context", "c",
    ]  # fmt: skip
    assert history_argv("hub", "prod", kubeconfig=KC, context="c") == [
        "helm", "history", "hub", "--namespace", "prod", "--output", "json", "--max", "256",
        "--kubeconfig", str(KC), "--kube-context", "c",
    ]  # fmt: skip
    assert rollback_argv("hub", "prod", 4, kubeconfig=KC, context="c") == [
        "helm", "rollback", "hub", "4", "--namespace", "prod",
        "--kubeconfig", str(KC), "--kube-context", "c",
    ]  # fmt: skip
    assert rollback_argv("hub", "prod", None, kubeconfig=KC, context="c")[:4] == [
        "helm", "rollback", "hub", "--namespace",
    ]  # fmt: skip
    assert dry_run_argv(chart, "hub", "prod", kubeconfig=KC, context=None) == [
        "helm", "install", "hub", "charts/demo", "--namespace", "prod", "--dry-run=client",
        "--values", "-", "--output", "json", "--kubeconfig", str(KC),
    ]  # fmt: skip
    assert dependency_list_argv(chart) == ["helm", "dependency", "list", "charts/demo"]
    assert package_argv(Path("src/sub"), Path("charts/demo/charts")) == [
        "helm", "package", "src/sub", "--destination", "charts/demo/charts",
    ]  # fmt: skip


def test_pull_argv_for_http_and_oci_repositories() -> None:
    http = DependencyState("jupyterhub", "4.1.0", "https://hub.jupyter.org/helm-chart/", "missing")
    oci = DependencyState("harbor", "1.16.0", "oci://registry.example.org/charts/", "missing")
    assert pull_argv(http, Path("cache")) == [
        "helm", "pull", "jupyterhub", "--repo", "https://hub.jupyter.org/helm-chart/",
        "--version", "4.1.0", "--destination", "cache",
    ]  # fmt: skip
    assert pull_argv(oci, Path("cache")) == [
        "helm", "pull", "oci://registry.example.org/charts/harbor",
        "--version", "1.16.0", "--destination", "cache",
    ]  # fmt: skip


def test_values_go_to_stdin_as_yaml_not_argv() -> None:
    values = {"hub": {"token": SECRET, "removed": None}, "list": [1, {"a": "b"}]}
    text = values_yaml(values)
    assert yaml.safe_load(text) == values  # nulls kept: Helm deletes those keys
    argv = upgrade_argv(Path("c"), "hub", "ns", kubeconfig=KC, context="c", timeout_s=1, wait=True)
    assert "--values" in argv and argv[argv.index("--values") + 1] == "-"
    assert not any(SECRET in arg or "--set" in arg for arg in argv)


# --- parsing ----------------------------------------------------------------------------------


def test_parse_template_output() -> None:
    text = (
        "---\n# Source: tiny/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\n"
        "---\n# Source: tiny/templates/two.yaml\nkind: A\n"
        "---\n# Source: tiny/templates/two.yaml\nkind: B\n"
    )
    assert parse_template_output(text) == {
        "tiny/templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\n",
        "tiny/templates/two.yaml": "kind: A\n---\nkind: B\n",
    }


def test_parse_lint_output() -> None:
    text = (
        "==> Linting charts/broken\n"
        "[INFO] Chart.yaml: icon is recommended\n"
        "[ERROR] templates/: template: broken/templates/cm.yaml:7:8\n"
        '  executing "broken/templates/cm.yaml" at <index .Values.list 5>:\n'
        "    error calling index: index out of range: 5\n"
        "\n"
        "Error: 1 chart(s) linted, 1 chart(s) failed\n"
    )
    assert parse_lint_output(text) == [
        LintFinding("info", "Chart.yaml", "icon is recommended"),
        LintFinding(
            "error",
            "templates/",
            'template: broken/templates/cm.yaml:7:8: executing "broken/templates/cm.yaml" '
            "at <index .Values.list 5>: error calling index: index out of range: 5",
        ),
    ]


def test_parse_dependency_list() -> None:
    text = (
        "NAME      \tVERSION\tREPOSITORY                         \tSTATUS       \n"
        "sub       \t0.1.0  \tfile://charts/sub                  \tunpacked     \n"
        "jupyterhub\t4.1.0  \thttps://hub.jupyter.org/helm-chart/\twrong version\n"
        "\n"
    )
    assert parse_dependency_list(text) == [
        DependencyState("sub", "0.1.0", "file://charts/sub", "unpacked"),
        DependencyState(
            "jupyterhub", "4.1.0", "https://hub.jupyter.org/helm-chart/", "wrong version"
        ),
    ]


RELEASE_JSON: dict[str, Any] = {
    "name": "hub",
    "namespace": "prod",
    "version": 7,
    "info": {
        "first_deployed": "2026-01-01T00:00:00Z",
        "last_deployed": "2026-02-01T10:00:00Z",
        "description": "Upgrade complete",
        "status": "deployed",
    },
    "chart": {
        "metadata": {"name": "binderhub", "version": "1.0.0-0.dev.git.3", "appVersion": "1.0"}
    },
    "manifest": "---\nkind: ConfigMap\n",
}


def test_release_from_json() -> None:
    assert release_from_json(RELEASE_JSON) == ReleaseInfo(
        "hub", "prod", 7, "deployed", "binderhub", "1.0.0-0.dev.git.3", "1.0",
        "2026-02-01T10:00:00Z", "Upgrade complete", "---\nkind: ConfigMap\n",
    )  # fmt: skip


def test_history_from_json_splits_the_chart_label() -> None:
    entries: list[Mapping[str, Any]] = [
        {"revision": 1, "updated": "2026-01-01T00:00:00Z", "status": "superseded",
         "chart": "binder-hub-1.0.0-0.dev.git.3", "app_version": "1.0",
         "description": "Install complete"},
        {"revision": 2, "updated": "2026-01-02T00:00:00Z", "status": "failed",
         "chart": "tiny-0.2.0", "app_version": "", "description": "Upgrade failed: timed out"},
    ]  # fmt: skip
    history = history_from_json(entries, "hub", "prod")
    assert [(h.chart, h.chart_version, h.revision, h.status) for h in history] == [
        ("binder-hub", "1.0.0-0.dev.git.3", 1, "superseded"),
        ("tiny", "0.2.0", 2, "failed"),
    ]
    assert history[1].description == "Upgrade failed: timed out" and history[1].manifest == ""


def test_helm_major_from_version() -> None:
    assert helm_major_from_version("v3.14.2") == 3
    assert helm_major_from_version("v4.0.1+g1234") == 4
    assert helm_major_from_version("garbage") == 4


def test_kubeconfig_file_is_private_and_removed_also_on_failure() -> None:
    with pytest.raises(RuntimeError), kubeconfig_file("apiVersion: v1\n") as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.read_text() == "apiVersion: v1\n"
        seen = path
        raise RuntimeError("helm blew up")
    assert not seen.exists() and not seen.parent.exists()


# --- engine choice ----------------------------------------------------------------------------


def test_engine_from_env_choices(tmp_path: Path) -> None:
    assert isinstance(engine_from_env({}), SdkEngine)
    assert isinstance(engine_from_env({"HUBFLEET_HELM": "sdk"}), SdkEngine)
    environ = {"HUBFLEET_HELM": "cli", "PATH": "/nowhere", "HUBFLEET_CHART_CACHE": str(tmp_path)}
    snapshot = dict(environ)
    cli = engine_from_env(environ)
    assert isinstance(cli, CliEngine) and cli.chart_cache == tmp_path
    assert not cli.fetch_dependencies
    assert environ == snapshot  # read, never changed
    fetching = engine_from_env({"HUBFLEET_HELM_FETCH": "1", "HOME": "/home/op"})
    assert isinstance(fetching, SdkEngine) and fetching.fetch_dependencies
    assert fetching.chart_cache == Path("/home/op/.cache/hubfleet/charts")
    with pytest.raises(
        HubfleetError, match=r"HUBFLEET_HELM='helm2' is not a Helm engine; use sdk or cli"
    ):
        engine_from_env({"HUBFLEET_HELM": "helm2"})


def test_missing_helm_binary(tmp_path: Path) -> None:
    engine = CliEngine(environ={"PATH": str(tmp_path)})
    with pytest.raises(HubfleetError) as err:
        engine.render(CHARTS / "tiny", "hub", "ns", {})
    assert str(err.value) == MISSING_HELM
    assert MISSING_HELM == (
        "helm CLI not found on PATH (HUBFLEET_HELM=cli); install helm or unset HUBFLEET_HELM"
    )


# --- end to end through a fake helm -----------------------------------------------------------

FAKE_HELM = """#!{python}
import json, os, stat, sys
argv = sys.argv[1:]
steering = sorted(k for k in os.environ if k == "KUBECONFIG" or k.startswith("HELM_KUBE"))
record = {{"argv": argv, "stdin": sys.stdin.read(), "steering_env": steering}}
if "--kubeconfig" in argv:
    path = argv[argv.index("--kubeconfig") + 1]
    record["kubeconfig"] = {{"path": path, "mode": stat.S_IMODE(os.stat(path).st_mode),
                            "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
                            "content": open(path).read()}}
with open(os.environ["FAKE_HELM_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
answers = json.load(open(os.environ["FAKE_HELM_ANSWERS"]))
answer = answers.get(argv[0], {{"stdout": "", "stderr": "", "rc": 0}})
sys.stdout.write(answer.get("stdout", ""))
sys.stderr.write(answer.get("stderr", ""))
sys.exit(answer.get("rc", 0))
"""


class FakeHelm:
    def __init__(self, root: Path):
        self.bin = root / "bin"
        self.bin.mkdir()
        script = self.bin / "helm"
        script.write_text(FAKE_HELM.format(python=sys.executable))
        script.chmod(0o755)
        self.log = root / "helm.log"
        self.answers_file = root / "answers.json"
        self.answer()

    def answer(self, **answers: dict[str, Any]) -> None:
        self.answers_file.write_text(json.dumps(answers))

    def engine(self, **extra_env: str) -> CliEngine:
        environ = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_HELM_LOG": str(self.log),
            "FAKE_HELM_ANSWERS": str(self.answers_file),
            **extra_env,
        }
        return CliEngine(environ=environ)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake(tmp_path: Path) -> FakeHelm:
    return FakeHelm(tmp_path)


def test_upgrade_end_to_end(fake: FakeHelm) -> None:
    fake.answer(
        version={"stdout": "v4.1.0"},
        upgrade={
            "stdout": json.dumps(RELEASE_JSON),
            "stderr": 'Release "hub" has been upgraded.\n',
        },
    )
    member = creds()
    engine = fake.engine(
        KUBECONFIG="/root/.kube/config", HELM_KUBETOKEN="leak", HELM_KUBECONTEXT="x"
    )
    values = {"hub": {"token": SECRET}}

    info = engine.upgrade_or_install(
        member, CHARTS / "tiny", "hub", "prod", values, timeout_s=300, wait=True
    )

    assert info == release_from_json(RELEASE_JSON)
    version, upgrade = fake.calls()
    assert version["argv"] == ["version", "--template", "{{.Version}}"]
    kube = upgrade["kubeconfig"]
    assert upgrade["argv"] == [
        "upgrade", "--install", "hub", str(CHARTS / "tiny"), "--namespace", "prod",
        "--values", "-", "--output", "json", "--history-max", "10", "--timeout", "300s",
        "--create-namespace", "--wait", "--rollback-on-failure",
        "--kubeconfig", kube["path"], "--kube-context", "edge-1-ctx",
    ]  # fmt: skip
    assert yaml.safe_load(upgrade["stdin"]) == values
    assert not any(SECRET in arg for arg in upgrade["argv"])
    assert kube["mode"] == 0o600 and kube["dir_mode"] == 0o700
    assert yaml.safe_load(kube["content"]) == dict(member.kubeconfig)
    assert not Path(kube["path"]).exists() and not Path(kube["path"]).parent.exists()
    assert upgrade["steering_env"] == []  # KUBECONFIG and HELM_KUBE* never reach helm


def test_failed_upgrade_removes_the_kubeconfig_and_names_the_member(fake: FakeHelm) -> None:
    fake.answer(
        upgrade={
            "rc": 1,
            "stderr": "Error: UPGRADE FAILED: Kubernetes cluster unreachable: Get "
            '"https://10.0.0.5:6443/version": dial tcp 10.0.0.5:6443: '
            "connect: connection refused\n",
        }
    )
    with pytest.raises(ClusterError) as err:
        fake.engine().upgrade_or_install(
            creds(), CHARTS / "tiny", "hub", "prod", {}, timeout_s=30, wait=False
        )
    assert str(err.value).startswith("member edge-1 (https://10.0.0.5:6443): cluster unreachable: ")
    (call,) = fake.calls()  # no `helm version`: without --wait there is no rollback flag to pick
    assert "--wait" not in call["argv"]
    assert not Path(call["kubeconfig"]["path"]).parent.exists()


def test_upgrade_timeout_is_a_rollout_error(fake: FakeHelm) -> None:
    fake.answer(
        version={"stdout": "v3.15.0"},
        upgrade={"rc": 1, "stderr": "Error: UPGRADE FAILED: context deadline exceeded\n"},
    )
    with pytest.raises(
        RolloutError,
        match=r"release hub in namespace prod: upgrade did not become ready within 30s",
    ):
        fake.engine().upgrade_or_install(
            creds(), CHARTS / "tiny", "hub", "prod", {}, timeout_s=30, wait=True
        )
    assert "--atomic" in fake.calls()[-1]["argv"]  # helm 3 spelling


def test_status_and_history_end_to_end(fake: FakeHelm) -> None:
    history = [{"revision": 7, "updated": "u", "status": "deployed", "chart": "tiny-0.1.0",
                "app_version": "1", "description": "Upgrade complete"}]  # fmt: skip
    fake.answer(
        status={"stdout": json.dumps(RELEASE_JSON)}, history={"stdout": json.dumps(history)}
    )
    engine = fake.engine()
    assert engine.status(creds(), "hub", "prod") == release_from_json(RELEASE_JSON)
    assert [h.revision for h in engine.history(creds(), "hub", "prod")] == [7]
    for call in fake.calls():
        assert call["kubeconfig"]["mode"] == 0o600
        assert not Path(call["kubeconfig"]["path"]).exists()


def test_missing_release_is_none_and_empty_history(fake: FakeHelm) -> None:
    fake.answer(
        status={"rc": 1, "stderr": "Error: release: not found\n"},
        history={"rc": 1, "stderr": "Error: release: not found\n"},
    )
    engine = fake.engine()
    assert engine.status(creds(), "hub", "prod") is None
    assert engine.history(creds(), "hub", "prod") == []


def test_rollback_end_to_end(fake: FakeHelm) -> None:
    fake.engine().rollback(creds(), "hub", "prod", 3)
    (call,) = fake.calls()
    assert call["argv"][:6] == ["rollback", "hub", "3", "--namespace", "prod", "--kubeconfig"]


def test_render_and_its_errors_end_to_end(fake: FakeHelm) -> None:
    fake.answer(template={"stdout": "---\n# Source: tiny/templates/cm.yaml\nkind: ConfigMap\n"})
    engine = fake.engine()
    assert engine.render(CHARTS / "tiny", "hub", "prod", {"greeting": "hi"}) == {
        "tiny/templates/cm.yaml": "kind: ConfigMap\n"
    }
    (call,) = fake.calls()
    assert "kubeconfig" not in call  # offline: no credentials anywhere near it
    assert yaml.safe_load(call["stdin"]) == {"greeting": "hi"}

    fake.answer(template={"rc": 1, "stderr": "Error: parse error at (tiny/templates/cm.yaml:7): "
                          'function "nosuchfunc" not defined\n'})  # fmt: skip
    with pytest.raises(
        RenderError, match=r": template tiny/templates/cm.yaml:7: parse error: function"
    ):
        engine.render(CHARTS / "tiny", "hub", "prod", {})

    fake.answer(template={"rc": 1, "stderr": "Error: values don't meet the specifications of the "
                          "schema(s) in the following chart(s):\ntiny:\n- at '/replicaCount': "
                          "got string, want integer\n"})  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"values fail values.schema.json: replicaCount: got string"
    ):
        engine.validate_values_schema(CHARTS / "tiny", {"replicaCount": "x"})


def test_dry_run_without_a_member_gets_an_empty_kubeconfig(fake: FakeHelm) -> None:
    fake.answer(install={"stdout": json.dumps({**RELEASE_JSON, "version": 1})})
    info = fake.engine().dry_run_install(None, CHARTS / "tiny", "hub", "prod", {})
    assert info.revision == 1
    (call,) = fake.calls()
    assert "--dry-run=client" in call["argv"] and "--kube-context" not in call["argv"]
    assert yaml.safe_load(call["kubeconfig"]["content"])["clusters"] == []


def test_error_text_drops_warnings() -> None:
    import subprocess

    proc = subprocess.CompletedProcess(
        ["helm"], 1, "", "WARNING: something\nError: INSTALLATION FAILED: boom\n"
    )
    assert error_text(proc) == "INSTALLATION FAILED: boom"
