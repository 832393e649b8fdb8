"""hubfleet.kube.rollout: the rules of `kubectl rollout status`, on plain objects, without a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from hubfleet.kube.rollout import Workload, rollout_status, workloads_in_manifest


def test_workloads_in_manifest_picks_apps_workloads_in_order() -> None:
    docs = [
        None,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hub"}},
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "x"},
        },
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"}},
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "puller"}}
            ],
        },
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hub"}},  # duplicate
    ]
    assert workloads_in_manifest(docs, default_namespace="demo") == [
        ("Deployment", "hub", "demo"),
        ("StatefulSet", "db", "x"),
        ("DaemonSet", "puller", "demo"),
    ]
    assert workloads_in_manifest(docs[2:3]) == [Workload("Deployment", "hub", None)]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {
                "kind": "Deployment",
                "metadata": {"generation": 2},
                "spec": {"replicas": 1},
                "status": {"observedGeneration": 1},
            },
            (False, False, "waiting for the controller to observe generation 2"),
        ),
        (
            {
                "kind": "Deployment",
                "metadata": {"generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "replicas": 3,
                    "updatedReplicas": 2,
                    "availableReplicas": 2,
                },
            },
            (False, False, "1 old replicas pending termination"),
        ),
        (
            {
                "kind": "Deployment",
                "metadata": {"generation": 1},
                "spec": {"replicas": 1},
                "status": {
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                        }
                    ],
                },
            },
            (False, True, "exceeded its progress deadline (600s)"),
        ),
        (
            {
                "kind": "DaemonSet",
                "metadata": {"generation": 1},
                "spec": {},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberReady": 3,
                    "numberAvailable": 2,
                },
            },
            (False, False, "2 of 3 pods ready"),
        ),
        (
            {
                "kind": "StatefulSet",
                "metadata": {"generation": 1},
                "spec": {
                    "replicas": 3,
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                },
                "status": {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1},
            },
            (False, False, "1 of 2 pods updated"),
        ),
        (
            {
                "kind": "StatefulSet",
                "metadata": {"generation": 1},
                "spec": {"replicas": 1},
                "status": {
                    "observedGeneration": 1,
                    "readyReplicas": 1,
                    "updatedReplicas": 1,
                    "currentRevision": "db-1",
                    "updateRevision": "db-2",
                },
            },
            (False, False, "1 pods at revision db-2"),
        ),
    ],
)
def test_rollout_status_follows_kubectl_rules(
    obj: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    assert rollout_status(obj) == expected
