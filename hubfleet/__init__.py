"""hubfleet: deploy and operate a federation of BinderHub/JupyterHub clusters from one repo.

One package a concern; each may import only those listed before it (the architecture test
checks it), and each outside library or binary is used in one place only:

    errors      the one error type (one line, exit 1)
    files       the deploy repo on disk: finding it, YAML with line numbers, atomic writes
    registry    config/federation.yaml: members, hosts, roles, Harbor bucket, sizing (jsonschema)
    secrets     sops: decrypt in memory, encrypt, edit; fresh random secrets (sops)
    kube        the Kubernetes adapter: credentials, kubeconfigs, client, apply, rollouts (kubernetes)
    helm        the Helm engine: interface, SDK and CLI engines, dependencies and conditions,
                values files as Helm reads them (helm_python, helm)
    values      Helm values layers merged with Helm's rules, origins, masking
    hosts       SSH, pinned host keys, host facts, the step runner (paramiko)
    cloud       S3, GKE, DNS, OpenTofu, Harbor's secrets, cluster credentials (boto3,
                google-auth, dnspython, tofu, hcl2)
    deploy      deploying a member: validate, plan, diff, upgrade, wait, health
    k3s         k3s members: config, install, bootstrap steps, upgrade plans
    microk8s    MicroK8s members: snap, addons, joins, MetalLB, WireGuard, GPUs
    members     a member's life: new, onboarding, status, removal, templates
    ci          which members a change deploys (git)

and the fronts on top, which nothing above imports: console (rich), cli, tasks (invoke).
"""

__version__ = "0.1.0"
