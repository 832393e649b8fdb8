"""A stub Kubernetes API server for tests: not Kubernetes, a stand-in that answers like one.

No API server can run where the tests run (see TESTING.md), so `hubfleet.kube.client` and the Helm
SDK are tested against this: a threaded HTTP(S) server on 127.0.0.1 holding objects in memory,
keyed by (group, version, resource, namespace, name). It answers the endpoints a real API
server answers, with the same JSON shapes: `/version`, discovery (`/api`, `/apis`, ...),
get/list (label and field selectors), watch, create, replace, the four patch types (strategic
merge is approximated by merge keys, server-side apply by "create, drop the fields this manager
applied last time and no longer applies, merge"), delete, the `status` subresource, pod logs,
one custom resource (system-upgrade-controller's `Plan`, upgrade.cattle.io/v1), and `kind:
Status` errors (404 NotFound, 409 AlreadyExists/Conflict, 422 Invalid, 401). Bodies come as
JSON, YAML, or (Secrets and ConfigMaps, as Helm's release storage writes them) protobuf.

What it is not: there is no scheduler, no kubelet, no admission, no OpenAPI schemas (the
`/openapi/v3` documents list paths and operations only). The only controller is a rollout
simulator: after a create or spec change of a Deployment, DaemonSet, StatefulSet or Job it
writes the status a real controller writes, "in progress" at once and "ready" after a
per-workload delay (or never, to test timeouts). Failing pods, their events and their logs
are added by tests with `add_failing_pod` and friends.

The parts, one concern each:
- stub.py: `KubeStub`, what tests use: start/stop, kubeconfig, request log, request dispatch
- server.py: the HTTP(S) server and request records
- resources.py: the resource table, version, `kind: Status` errors
- discovery.py: `/version`, discovery and OpenAPI v3 documents
- store.py: the object store (create, replace, patch, apply, delete, list)
- patches.py, selector.py, defaulting.py, bodies.py: what the store applies to each write
- rollouts.py: the rollout controller; pods.py: pods, events and logs as a kubelet reports them
- tls.py: a CA and serving certificate per stub
"""

from tests.kube_stub.stub import KubeStub
from tests.kube_stub.tls import make_tls_material

__all__ = ["KubeStub", "make_tls_material"]
