"""The embedded Helm Go SDK (helm_python) runs its release lifecycle against the stub API server.

This proves the stub is faithful enough for Helm 4 (discovery, OpenAPI v3, server-side apply,
protobuf release Secrets, watch-list for `wait="watcher"`), so deploy code can be tested
end to end here; the real cluster run is the e2e workflow's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from hubfleet.kube import client as kube
from tests.kube_stub import KubeStub

pytest_plugins = ["tests.conftest_kube"]

CHART = {
    "Chart.yaml": """\
apiVersion: v2
name: tiny
version: 0.1.0
appVersion: "1.0"
""",
    "values.yaml": """\
message: hello
image: registry.example/web:1.0
""",
    "templates/config.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  labels:
    app: {{ .Release.Name }}
data:
  message: {{ .Values.message | quote }}
""",
    "templates/web.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  labels:
    app: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}
          ports:
            - containerPort: 8080
""",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    for name, text in CHART.items():
        path = tmp_path / "tiny" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "tiny"


@pytest.fixture
def helm_config(kube_stub: KubeStub) -> Iterator[helm.Config]:
    kubeconfig = yaml.safe_dump(kube_stub.kubeconfig(context="stub"))
    with helm.Config(kubeconfig_content=kubeconfig, kube_context="stub", namespace="demo") as cfg:
        yield cfg
    assert kube_stub.errors == []  # no request hit a stub bug (a 500)


def config_message(stub: KubeStub) -> str:
    cm = stub.get("ConfigMap", "demo-config", "demo")
    assert cm is not None
    return str(cm["data"]["message"])


def web_image(stub: KubeStub) -> str:
    web = stub.get("Deployment", "demo-web", "demo")
    assert web is not None
    return str(web["spec"]["template"]["spec"]["containers"][0]["image"])


def revisions(cfg: helm.Config) -> list[tuple[Any, Any]]:
    return [(r["revision"], r["status"]) for r in cfg.history("demo")]


def test_install_upgrade_history_rollback_status(
    kube_stub: KubeStub, helm_config: helm.Config, chart: Path
) -> None:
    installed = helm_config.install(chart, "demo", {"message": "one"}, create_namespace=True)
    assert (installed["revision"], installed["status"]) == (1, "deployed")
    assert kube_stub.get("Namespace", "demo") is not None
    assert (config_message(kube_stub), web_image(kube_stub)) == ("one", "registry.example/web:1.0")
    [record] = kube_stub.objects("Secret", "demo")
    assert record["type"] == "helm.sh/release.v1"
    assert record["metadata"]["labels"] | {"modifiedAt": "-"} == {
        "name": "demo",
        "owner": "helm",
        "status": "deployed",
        "version": "1",
        "modifiedAt": "-",
    }

    upgraded = helm_config.upgrade(
        chart, "demo", {"message": "two", "image": "registry.example/web:2.0"}
    )
    assert (upgraded["revision"], upgraded["status"]) == (2, "deployed")
    assert (config_message(kube_stub), web_image(kube_stub)) == ("two", "registry.example/web:2.0")
    assert revisions(helm_config) == [(1, "superseded"), (2, "deployed")]

    helm_config.rollback("demo", version=1)
    status = helm_config.status("demo")
    assert (status["revision"], status["status"]) == (3, "deployed")
    assert (config_message(kube_stub), web_image(kube_stub)) == ("one", "registry.example/web:1.0")
    assert revisions(helm_config) == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert [(r["name"], r["revision"]) for r in helm_config.list()] == [("demo", 3)]

    # Helm 4 applies manifests server-side and writes release records as protobuf Secrets
    kinds = {(r.method, r.content_type) for r in kube_stub.requests}
    assert ("PATCH", "application/apply-patch+yaml") in kinds
    assert ("POST", "application/vnd.kubernetes.protobuf") in kinds

    helm_config.uninstall("demo")
    left = [
        kube_stub.objects(k, "demo") for k in ("ConfigMap", "Deployment", "ReplicaSet", "Secret")
    ]
    assert left == [[], [], [], []]


def test_wait_watcher_waits_for_the_rollout_and_a_broken_image_fails_the_upgrade(
    kube_stub: KubeStub, helm_config: helm.Config, chart: Path, kube_credentials: Any
) -> None:
    kube_stub.default_ready_after_s = 0.3
    helm_config.install(chart, "demo", create_namespace=True, wait="watcher", timeout=10)
    web = kube_stub.get("Deployment", "demo-web", "demo")
    assert web is not None and web["status"]["availableReplicas"] == 1  # waited until ready

    kube_stub.broken_images.add("registry.example/web:bad")
    with pytest.raises(helm.HelmError, match="demo-web not ready"):
        helm_config.upgrade(
            chart, "demo", {"image": "registry.example/web:bad"}, wait="watcher", timeout=1
        )
    assert revisions(helm_config) == [(1, "deployed"), (2, "failed")]
    with kube.member_api(kube_credentials) as api:
        [report] = kube.pod_diagnostics(api, "demo", selector="app=demo")
    assert report.containers[0].reason == "CrashLoopBackOff"
    assert report.containers[0].log_tail[-1] == "fatal: the stub was told this image is broken"

    helm_config.rollback("demo", version=1, wait="watcher", timeout=10)
    assert revisions(helm_config)[-1] == (3, "deployed")
    assert web_image(kube_stub) == "registry.example/web:1.0"
    assert kube_stub.objects("Pod", "demo") == []  # the crashing pod went with its generation
