"""Shared fixtures: the Kubernetes API stub (tests/conftest_kube.py) and deploy repos."""

pytest_plugins = [
    "tests.conftest_kube",
    "tests.conftest_repo",
    "tests.conftest_hosts",
    "tests.conftest_dns",
    "tests.conftest_s3",
]
