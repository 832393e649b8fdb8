"""The invoke task namespace. Task modules are thin: they parse flags and call hubfleet.

Heavy imports (kubernetes, helm, boto3) happen inside task bodies so `invoke --list` stays fast.
"""

from __future__ import annotations

from invoke.collection import Collection

from hubfleet.tasks import (
    adopt,
    charts,
    ci,
    core,
    dns,
    federation,
    harbor,
    k3s,
    k3s_plan,
    kubeconfig,
    member,
    microk8s,
    s3,
    secrets,
    tofu,
)
from hubfleet.tasks.conventions import name_tasks


def build_namespace() -> Collection:
    ns = Collection()
    ns.add_task(core.deploy)
    ns.add_task(core.values)
    ns.add_task(core.validate)
    ns.add_collection(Collection.from_module(secrets), name="secrets")
    ns.add_collection(Collection.from_module(kubeconfig), name="kubeconfig")
    k3s_tasks = Collection.from_module(k3s, name="k3s")
    k3s_tasks.add_task(k3s_plan.upgrade_plan)
    ns.add_collection(k3s_tasks)
    mk8s = Collection("microk8s")
    mk8s.add_task(microk8s.bootstrap)
    mk8s.add_task(microk8s.join)
    ns.add_collection(mk8s)
    wireguard = Collection("wireguard")
    wireguard.add_task(microk8s.wireguard_setup, name="setup")
    ns.add_collection(wireguard)
    ns.add_collection(Collection.from_module(dns, name="dns"))
    ns.add_collection(Collection.from_module(s3, name="s3"))
    ns.add_collection(Collection.from_module(ci, name="ci"))
    ns.add_collection(Collection.from_module(charts, name="charts"))
    ns.add_collection(Collection.from_module(member, name="member"))
    ns.add_collection(Collection.from_module(federation, name="federation"))
    ns.add_collection(Collection.from_module(harbor, name="harbor"))
    ns.add_collection(Collection.from_module(tofu, name="tofu"))
    ns.add_collection(Collection.from_module(adopt, name="adopt"))
    gpu = Collection("gpu")
    gpu.add_task(microk8s.gpu_check, name="check")
    ns.add_collection(gpu)
    return name_tasks(ns)


# Every task knows its dotted name from the start (its --help and its one-line errors use
# it), also when a task function is called directly rather than through a namespace.
build_namespace()


def main() -> None:
    """`hubfleet TASK ...`: the same tasks as `invoke`, for deploy repos without a tasks.py."""
    from invoke.program import Program

    from hubfleet import __version__

    Program(namespace=build_namespace(), version=__version__, name="hubfleet").run()
