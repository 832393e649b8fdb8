"""hubfleet.kube.client against the stub API server (tests/kube_stub/), over https with a token."""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hubfleet.errors import ClusterError, RolloutError
from hubfleet.kube import client as kube
from hubfleet.kube.credentials import ClusterCredentials, credentials_from_kubeconfig
from hubfleet.kube.rollout import RolloutNotReadyError, RolloutState
from tests.kube_stub import KubeStub

pytest_plugins = ["tests.conftest_kube"]

NS = "hub"


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"registry.example/{name}:1"}]},
            },
        },
    }


def workload(kind: str, name: str) -> dict[str, Any]:
    obj = deployment(name)
    obj["kind"] = kind
    if kind == "DaemonSet":
        del obj["spec"]["replicas"]
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = name
    return obj


@pytest.fixture
def stub(kube_stub: KubeStub) -> KubeStub:
    kube_stub.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return kube_stub


def creds_with_server(creds: ClusterCredentials, server: str) -> ClusterCredentials:
    kubeconfig = dict(creds.kubeconfig)
    cluster = dict(kubeconfig["clusters"][0]["cluster"], server=server)
    kubeconfig["clusters"] = [{"name": kubeconfig["clusters"][0]["name"], "cluster": cluster}]
    return credentials_from_kubeconfig(creds.member, kubeconfig, creds.source, creds.context)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the module itself --------------------------------------------------------------------


def test_importing_the_adapter_does_not_import_kubernetes() -> None:
    code = (
        "import sys, hubfleet.kube.client, hubfleet.kube.apply; print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- clients ------------------------------------------------------------------------------


def test_member_api_talks_https_and_removes_its_cert_files(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    with kube.member_api(kube_credentials) as api:
        assert kube.check_reachable(api, kube_credentials) == "v1.33.1"
        ca_file = Path(api.configuration.ssl_ca_cert)
        assert ca_file.read_bytes() == stub.tls_material.ca_pem  # type: ignore[union-attr]
        assert stat.S_IMODE(ca_file.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600
    assert not ca_file.parent.exists()
    assert stub.requests[-1].path == "/version/"  # what the official client asks
    assert stub.requests[-1].user_agent.startswith("OpenAPI-Generator")


def test_member_api_removes_its_dir_when_the_block_fails(
    kube_credentials: ClusterCredentials,
) -> None:
    with pytest.raises(RuntimeError), kube.member_api(kube_credentials) as api:
        workdir = Path(api.configuration.ssl_ca_cert).parent
        raise RuntimeError("boom")
    assert not workdir.exists()


def test_each_client_has_its_own_cert_files(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    # the kubernetes loader caches cert files by content, process-wide: without care the
    # second client would use the first one's file, which goes when the first one closes
    with kube.member_api(kube_credentials) as second:
        with kube.member_api(kube_credentials) as first:
            assert first.configuration.ssl_ca_cert != second.configuration.ssl_ca_cert
        second.rest_client.pool_manager.clear()  # the next request opens a new connection
        assert kube.check_reachable(second, kube_credentials) == "v1.33.1"


def test_clients_touch_no_environment_and_no_default_configuration(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    from kubernetes import client

    before = dict(os.environ)
    with kube.member_api(kube_credentials) as api:
        kube.check_reachable(api, kube_credentials)
        kube.wait_for_rollouts(api, NS, [], timeout_s=1)
    assert dict(os.environ) == before
    assert client.Configuration._default is None  # nobody called set_default()


def test_unreachable_cluster_is_one_line_naming_server_and_kubeconfig(
    kube_credentials: ClusterCredentials,
) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    creds = creds_with_server(kube_credentials, server)
    started = time.monotonic()
    with kube.member_api(creds) as api, pytest.raises(ClusterError) as err:
        kube.check_reachable(api, creds)
    assert str(err.value) == (
        f"member demo: cannot reach cluster at {server} (connection refused); "
        "check the kubeconfig in secrets/demo-kubeconfig.yaml and that the API server is up"
    )
    assert time.monotonic() - started < 5


def test_wrong_token_is_refused_credentials(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    stub.token = "rotated"
    with kube.member_api(kube_credentials) as api, pytest.raises(ClusterError) as err:
        kube.check_reachable(api, kube_credentials)
    assert "refused the credentials (401 Unauthorized)" in str(err.value)
    assert "\n" not in str(err.value)


def test_untrusted_server_certificate_is_a_cluster_error(
    kube_stub_factory: Any, kube_credentials: ClusterCredentials
) -> None:
    impostor = kube_stub_factory()  # same address shape, a CA the kubeconfig does not trust
    creds = creds_with_server(kube_credentials, impostor.url)
    with kube.member_api(creds) as api, pytest.raises(ClusterError) as err:
        kube.check_reachable(api, creds)
    assert "TLS certificate not trusted" in str(err.value)
    assert impostor.requests == []


def test_unusable_kubeconfig_is_a_cluster_error(kube_credentials: ClusterCredentials) -> None:
    kubeconfig = dict(kube_credentials.kubeconfig)
    kubeconfig["clusters"] = [
        {
            "name": "demo",
            "cluster": {
                "server": "https://127.0.0.1:1",
                "certificate-authority": "/nonexistent/ca.crt",
            },
        }
    ]
    creds = credentials_from_kubeconfig("demo", kubeconfig, "secrets/demo-kubeconfig.yaml", "demo")
    with (
        pytest.raises(
            ClusterError,
            match=r"^member demo: the kubeconfig in secrets/demo-kubeconfig.yaml cannot be used",
        ),
        kube.member_api(creds),
    ):
        pass


def test_two_members_talk_to_their_own_clusters_concurrently(
    kube_stub_factory: Any, stub_credentials: Any
) -> None:
    stubs = {"alpha": kube_stub_factory(), "beta": kube_stub_factory(token="beta-token")}
    for member, stub in stubs.items():
        stub.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        stub.put(deployment(f"{member}-hub", replicas=2))
        stub.ready_after("Deployment", f"{member}-hub", 0.3, namespace=NS)
        stub.put(deployment(f"{member}-hub", replicas=3))  # a new generation, ready in 0.3 s
    results: dict[str, Any] = {}

    def deploy(member: str) -> None:
        creds = stub_credentials(stubs[member], member)
        try:
            with kube.member_api(creds) as api:
                kube.check_reachable(api, creds)
                results[member] = kube.wait_for_rollouts(
                    api, NS, [("Deployment", f"{member}-hub")], timeout_s=5, poll_s=0.05
                )
        except Exception as err:
            results[member] = err

    threads = [threading.Thread(target=deploy, args=(m,)) for m in stubs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    for member, stub in stubs.items():
        [state] = results[member]
        assert (state.name, state.ready, state.message) == (
            f"{member}-hub",
            True,
            "3 of 3 replicas ready",
        )
        other = "beta" if member == "alpha" else "alpha"
        assert stub.requests and all(other not in r.path and r.status == 200 for r in stub.requests)


# --- rollouts -----------------------------------------------------------------------------


def test_rollouts_of_all_three_kinds_succeed(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    seen: list[RolloutState] = []
    with kube.member_api(kube_credentials) as api:
        for kind, name in [("Deployment", "hub"), ("DaemonSet", "puller"), ("StatefulSet", "db")]:
            stub.ready_after(kind, name, 0.3, namespace=NS)
            stub.put(workload(kind, name))
        states = kube.wait_for_rollouts(
            api,
            NS,
            [("Deployment", "hub"), ("DaemonSet", "puller"), ("StatefulSet", "db")],
            timeout_s=5,
            on_progress=seen.append,
            poll_s=0.05,
        )
    assert [(s.kind, s.name, s.ready, s.message) for s in states] == [
        ("Deployment", "hub", True, "1 of 1 replicas ready"),
        ("DaemonSet", "puller", True, "1 of 1 pods ready"),
        ("StatefulSet", "db", True, "1 of 1 replicas ready"),
    ]
    progress = {(s.kind, s.message) for s in seen}
    assert ("Deployment", "0 of 1 replicas ready") in progress
    assert ("DaemonSet", "0 of 1 pods ready") in progress
    assert ("StatefulSet", "0 of 1 replicas ready") in progress


def test_workloads_are_waited_for_in_parallel(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    names = ["a", "b", "c", "d"]
    with kube.member_api(kube_credentials) as api:
        kube.check_reachable(api, kube_credentials)  # client and imports ready before the clock
        for name in names:
            stub.ready_after("Deployment", name, 0.5, namespace=NS)
            stub.put(deployment(name))
        started = time.monotonic()
        states = kube.wait_for_rollouts(
            api, NS, [("Deployment", n) for n in names], timeout_s=5, poll_s=0.05
        )
    elapsed = time.monotonic() - started
    assert all(s.ready for s in states)
    assert elapsed < 1.5  # one after the other would take at least 2 s
    # every workload was polled before the first of them became ready
    polls = [r.path.rsplit("/", 1)[1] for r in stub.requests if "/deployments/" in r.path]
    assert set(polls[: len(names)]) == set(names)
    assert all(0.45 <= s.elapsed_s < 1.5 for s in states)


def test_timeout_names_the_workloads_not_ready(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    stub.ready_after("Deployment", "hub", None, namespace=NS)  # never
    stub.put(deployment("hub"))
    stub.put(workload("DaemonSet", "puller"))  # ready at once
    with kube.member_api(kube_credentials) as api, pytest.raises(RolloutError) as err:
        kube.wait_for_rollouts(
            api,
            NS,
            [("Deployment", "hub"), ("DaemonSet", "puller"), ("StatefulSet", "db")],
            timeout_s=0.3,
            poll_s=0.05,
        )
    assert str(err.value) == (
        "Deployment hub: 0 of 1 replicas ready; StatefulSet db: not found after 0.3s (namespace hub)"
    )
    assert isinstance(err.value, RolloutNotReadyError)
    assert [(s.name, s.ready) for s in err.value.states] == [
        ("hub", False),
        ("puller", True),
        ("db", False),
    ]


def test_a_failed_rollout_stops_the_wait_early(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    stub.ready_after("Deployment", "hub", None, namespace=NS)
    stub.ready_after("Deployment", "proxy", None, namespace=NS)
    stub.put(deployment("hub"))
    stub.put(deployment("proxy"))
    hub = stub.get("Deployment", "hub", NS)
    assert hub is not None
    hub["status"]["conditions"][1].update(status="False", reason="ProgressDeadlineExceeded")
    stub.put(hub)
    with kube.member_api(kube_credentials) as api, pytest.raises(RolloutError) as err:
        kube.wait_for_rollouts(
            api, NS, [("Deployment", "hub"), ("Deployment", "proxy")], timeout_s=30, poll_s=0.05
        )
    assert str(err.value) == "Deployment hub: exceeded its progress deadline (600s) (namespace hub)"
    assert all(s.elapsed_s < 5 for s in err.value.states)  # type: ignore[attr-defined]


def test_a_failing_progress_callback_ends_the_wait_at_once(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    stub.ready_after("Deployment", "hub", None, namespace=NS)
    stub.ready_after("Deployment", "proxy", None, namespace=NS)
    stub.put(deployment("hub"))
    stub.put(deployment("proxy"))

    def report(state: RolloutState) -> None:
        if state.name == "proxy":
            raise RuntimeError("terminal went away")

    started = time.monotonic()
    with kube.member_api(kube_credentials) as api, pytest.raises(RuntimeError):
        kube.wait_for_rollouts(
            api, NS, [("Deployment", "hub"), ("Deployment", "proxy")], 30, report, poll_s=0.05
        )
    assert time.monotonic() - started < 10  # not the 30 s deadline


# --- diagnostics --------------------------------------------------------------------------


def test_pod_diagnostics_show_reasons_events_and_log_tails(
    stub: KubeStub, kube_credentials: ClusterCredentials
) -> None:
    labels = {"app": "hub"}
    log = "".join(f"line {n}\n" for n in range(1, 31))
    stub.add_failing_pod(
        "hub-1", namespace=NS, labels=labels, container="hub", exit_code=3, logs=log
    )
    stub.add_failing_pod(
        "hub-2", namespace=NS, labels=labels, container="hub", reason="ImagePullBackOff"
    )
    stub.add_unschedulable_pod("hub-3", namespace=NS, labels=labels)
    stub.add_pod("hub-4", namespace=NS, labels=labels)  # healthy: not reported
    stub.add_failing_pod("proxy-1", namespace=NS, labels={"app": "proxy"})  # other selector
    with kube.member_api(kube_credentials) as api:
        reports = kube.pod_diagnostics(api, NS, selector="app=hub", tail_lines=5)
    assert [r.name for r in reports] == ["hub-1", "hub-2", "hub-3"]
    crash, pull, pending = reports
    [container] = crash.containers
    assert (container.reason, container.exit_code, container.restarts) == ("CrashLoopBackOff", 3, 4)
    assert container.log_tail == ("line 26", "line 27", "line 28", "line 29", "line 30")
    assert [e.reason for e in crash.events] == ["Started", "BackOff"]
    assert pull.phase == "Pending"
    assert pull.containers[0].reason == "ImagePullBackOff"
    assert pull.containers[0].log_tail == ()  # the API answers 400: not started yet
    assert ("Warning", "Failed") in [(e.type, e.reason) for e in pull.events]
    assert (pending.reason, pending.containers) == ("Unschedulable", ())
    assert pending.events[0].message == "0/1 nodes are available: 1 Insufficient memory."
    text = "\n".join(crash.lines())
    assert "container hub: CrashLoopBackOff, exit code 3, 4 restarts" in text
    assert "    | line 30" in text
    assert "event Warning BackOff: Back-off restarting failed container hub" in text


# --- the stub answers like an API server --------------------------------------------------


def test_stub_errors_are_kind_status(stub: KubeStub, kube_credentials: ClusterCredentials) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with kube.member_api(kube_credentials) as api:
        apps = client.AppsV1Api(api)
        with pytest.raises(ApiException) as missing:
            apps.read_namespaced_deployment("nope", NS)
        apps.create_namespaced_deployment(NS, deployment("hub"))
        with pytest.raises(ApiException) as dup:
            apps.create_namespaced_deployment(NS, deployment("hub"))
        with pytest.raises(ApiException) as no_ns:
            elsewhere = deployment("hub")
            del elsewhere["metadata"]["namespace"]
            apps.create_namespaced_deployment("ghost", elsewhere)
    assert (missing.value.status, dup.value.status, no_ns.value.status) == (404, 409, 404)
    assert '"reason": "NotFound"' in missing.value.body
    assert 'deployments.apps \\"nope\\" not found' in missing.value.body
    assert '"reason": "AlreadyExists"' in dup.value.body
    assert 'namespaces \\"ghost\\" not found' in no_ns.value.body


def test_configuration_is_built_from_the_in_memory_kubeconfig(tmp_path: Path) -> None:
    from hubfleet.kube.configuration import configuration_from_kubeconfig

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    kubeconfig = {
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://203.0.113.7:6443/",
                    "certificate-authority-data": b64("CA PEM"),
                    "tls-server-name": "api.internal",
                },
            }
        ],
        "users": [
            {
                "name": "cert",
                "user": {"client-certificate-data": b64("CERT"), "client-key-data": b64("KEY")},
            },
            {"name": "token", "user": {"token": "t0k3n"}},
            {"name": "plugin", "user": {"exec": {"command": "gke-gcloud-auth-plugin"}}},
        ],
        "contexts": [
            {"name": "by-cert", "context": {"cluster": "c", "user": "cert"}},
            {"name": "by-token", "context": {"cluster": "c", "user": "token"}},
            {"name": "by-plugin", "context": {"cluster": "c", "user": "plugin"}},
        ],
    }
    by_cert = configuration_from_kubeconfig(kubeconfig, "by-cert", tmp_path)
    assert by_cert.host == "https://203.0.113.7:6443"
    assert by_cert.tls_server_name == "api.internal"
    for path, content in ((by_cert.ssl_ca_cert, b"CA PEM"), (by_cert.key_file, b"KEY")):
        assert Path(path).parent == tmp_path and Path(path).read_bytes() == content
        assert Path(path).stat().st_mode & 0o777 == 0o600
    assert "BearerToken" not in by_cert.api_key
    by_token = configuration_from_kubeconfig(kubeconfig, "by-token", tmp_path)
    assert by_token.api_key["BearerToken"] == "Bearer t0k3n" and by_token.cert_file is None
    with pytest.raises(ValueError, match="credential plugin"):
        configuration_from_kubeconfig(kubeconfig, "by-plugin", tmp_path)
    with pytest.raises(ValueError, match="no context named 'nope'"):
        configuration_from_kubeconfig(kubeconfig, "nope", tmp_path)
