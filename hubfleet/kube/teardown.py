"""Taking a member's objects out of its cluster (member.remove --uninstall): its namespaces,
and, only when asked, the CustomResourceDefinitions of cert-manager. Each step checks first,
so a second run finds nothing to do and says so."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hubfleet.errors import ClusterError
from hubfleet.kube.client import api_error

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def namespace_exists(api: ApiClient, name: str, where: str) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).read_namespace(name)
    except ApiException as err:
        if err.status == 404:
            return False
        raise api_error(where, f"reading namespace {name}", err) from None
    return True


def delete_namespace(api: ApiClient, name: str, timeout_s: float, where: str) -> bool:
    """Delete namespace `name` and wait until it is gone; False when there was none."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    if not namespace_exists(api, name, where):
        return False
    try:
        client.CoreV1Api(api).delete_namespace(name)
    except ApiException as err:
        if err.status != 404:
            raise api_error(where, f"deleting namespace {name}", err) from None
    deadline = time.monotonic() + timeout_s
    while namespace_exists(api, name, where):
        if time.monotonic() >= deadline:
            raise ClusterError(
                f"{where}: namespace {name} is still terminating after {timeout_s:.0f}s; "
                f"see kubectl get namespace {name} -o yaml (its finalizers), then rerun"
            )
        time.sleep(0.2)
    return True


def existing_crds(api: ApiClient, names: Iterable[str], where: str) -> list[str]:
    """Those of the named CustomResourceDefinitions the cluster has."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(api)
    found = []
    for name in names:
        try:
            custom.get_cluster_custom_object(
                "apiextensions.k8s.io", "v1", "customresourcedefinitions", name
            )
        except ApiException as err:
            if err.status == 404:
                continue
            raise api_error(where, f"reading CustomResourceDefinition {name}", err) from None
        found.append(name)
    return found


def delete_crds(api: ApiClient, names: Iterable[str], where: str) -> list[str]:
    """Delete the named CustomResourceDefinitions (and so every object of their kinds);
    returns those that existed."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(api)
    deleted = []
    for name in names:
        try:
            custom.delete_cluster_custom_object(
                "apiextensions.k8s.io", "v1", "customresourcedefinitions", name
            )
        except ApiException as err:
            if err.status == 404:
                continue
            raise api_error(where, f"deleting CustomResourceDefinition {name}", err) from None
        deleted.append(name)
    return deleted
