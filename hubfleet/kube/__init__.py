"""The Kubernetes adapter: cluster credentials, kubeconfigs, the client built in memory, apply, rollouts, pod reports."""
