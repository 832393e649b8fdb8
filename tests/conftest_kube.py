"""pytest plugin: the stub Kubernetes API server (tests/kube_stub/) as fixtures.

Registered from tests/conftest.py with `pytest_plugins = ["tests.conftest_kube"]`.

- `kube_stub`: one stub (https with a CA made for it, bearer-token auth), started before the
  test and stopped after it. `kube_stub.kubeconfig()` is a kubeconfig dict pointing at it.
- `kube_stub_factory(tls=True)`: more stubs in one test (one per member), all stopped after it.
- `kube_credentials`: ClusterCredentials of member "demo" for `kube_stub`.
- `stub_credentials`: a function, `stub_credentials(stub, member)`, the same for any stub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hubfleet.kube.credentials import ClusterCredentials, credentials_from_kubeconfig
from tests.kube_stub import KubeStub


def credentials_for(stub: KubeStub, member: str = "demo") -> ClusterCredentials:
    """A member's credentials for a stub, as if decrypted from secrets/<member>-kubeconfig.yaml."""
    kubeconfig = stub.kubeconfig(cluster=member, user=f"{member}-admin", context=member)
    return credentials_from_kubeconfig(
        member, kubeconfig, f"secrets/{member}-kubeconfig.yaml", context=member
    )


@pytest.fixture
def kube_stub_factory() -> Iterator[Callable[..., KubeStub]]:
    started: list[KubeStub] = []

    def start(*, tls: bool = True, token: str | None = "stub-token") -> KubeStub:
        stub = KubeStub(tls=tls, token=token).start()
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.stop()


@pytest.fixture
def kube_stub(kube_stub_factory: Callable[..., KubeStub]) -> KubeStub:
    return kube_stub_factory()


@pytest.fixture
def kube_credentials(kube_stub: KubeStub) -> ClusterCredentials:
    return credentials_for(kube_stub)


@pytest.fixture
def stub_credentials() -> Callable[..., ClusterCredentials]:
    """`stub_credentials(stub, member)`: ClusterCredentials of a member for any stub."""
    return credentials_for
