"""hubfleet.cloud.s3, s3_lifecycle, s3_check and the s3.* tasks against a real S3 server (SeaweedFS).

Deploy repos come from `deploy_repo` (real sops/age): the member's S3 keys sit encrypted in
secrets/config/<member>.yaml under the Harbor chart keys. Every task test also checks that
neither key appears in what was printed.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context

from hubfleet.cli import Exit
from hubfleet.cloud import s3, s3_check, s3_lifecycle
from hubfleet.errors import ConfigError, SecretsError
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import load_registry
from hubfleet.registry.storage import BucketSettings, bucket_settings
from hubfleet.tasks import s3 as s3_tasks
from tests.conftest_repo import PROJECT, MakeRepo
from tests.conftest_s3 import S3Keys, S3Server


def make_keys(access_key: str, secret_key: str) -> S3Keys:
    return S3Keys(access_key, secret_key)


ABORT_RULE = {
    "ID": "abort-multipart",
    "Filter": {"Prefix": ""},
    "Status": "Enabled",
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}
EXPIRE_RULE = {
    "ID": "expire-scratch",
    "Filter": {"Prefix": "scratch/"},
    "Status": "Enabled",
    "Expiration": {"Days": 7},
}


def harbor_keys(keys: S3Keys) -> dict[str, Any]:
    storage = {"s3": {"accesskey": keys.access_key, "secretkey": keys.secret_key}}
    return {"harbor": {"persistence": {"imageChartStorage": storage}}}


def s3_repo(
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    bucket: str,
    keys: S3Keys | None,
    rules: list[Mapping[str, Any]] | None = None,
    values: Mapping[str, Any] | None = None,
) -> DeployRepo:
    """A deploy repo with member `m` whose bucket is `bucket` and whose secrets hold `keys`."""
    block: dict[str, Any] = {"endpoint": endpoint, "bucket": bucket}
    if rules is not None:
        block["lifecycle_rules"] = rules
    repo = deploy_repo(
        members={"m": {"domain": "m.example.org", "s3": block}},
        secrets={"m": harbor_keys(keys) if keys else {"hub": {"cookieSecret": "x" * 32}}},
        values={"m": values or {"hub": {"replicas": 1}}},
    )
    (repo.root / "config" / "k3s").mkdir()
    (repo.root / s3_lifecycle.LIFECYCLE_FILE).write_bytes(
        (PROJECT / s3_lifecycle.LIFECYCLE_FILE).read_bytes()
    )
    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))
    return repo


def lifecycle_on(server: S3Server, bucket: str) -> list[dict[str, Any]] | None:
    try:
        rules = server.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except server.client().exceptions.ClientError as err:
        assert err.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return None
    return sorted(rules, key=lambda r: r["ID"])


def run_task(
    capsys: pytest.CaptureFixture[str], keys: S3Keys, task: Any, *args: Any, **kwargs: Any
) -> tuple[int, str, str]:
    """Run a task; its exit code, stdout and stderr (and no key anywhere in them)."""
    code = 0
    try:
        task(Context(), *args, **kwargs)
    except Exit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    for key in (keys.access_key, keys.secret_key):
        assert key not in out
        assert key not in err
    return code, out, err


def no_results(out: str) -> bool:
    """Nothing but (for s3.check) the heading naming the member, bucket and endpoint."""
    lines = out.splitlines()
    return len(lines) <= 1 and all(line.startswith("member m: bucket ") for line in lines)


def count_puts(client: Any) -> list[str]:
    puts: list[str] = []
    client.meta.events.register(
        "before-call.s3.PutBucketLifecycleConfiguration", lambda **kw: puts.append("put")
    )
    return puts


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the repo's rules file and the registry block --------------------------------------------


def test_the_repo_rules_file_is_the_reference_rule() -> None:
    assert json.loads((PROJECT / s3_lifecycle.LIFECYCLE_FILE).read_text()) == {
        "Rules": [ABORT_RULE]
    }


def test_member_rules_are_added_after_the_repo_rules(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = s3_repo(
        deploy_repo, monkeypatch, "https://s3.example.org", "harbor-m", None, [EXPIRE_RULE]
    )
    member = load_registry(repo).member("m")
    assert s3_lifecycle.lifecycle_rules(repo, member) == {"Rules": [ABORT_RULE, EXPIRE_RULE]}


def test_a_rule_id_used_twice_is_an_error(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    twice = {**EXPIRE_RULE, "ID": "abort-multipart"}
    repo = s3_repo(deploy_repo, monkeypatch, "https://s3.example.org", "harbor-m", None, [twice])
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "rule ID 'abort-multipart' is already used in config/k3s/s3-bucket-lifecycle.json"
        ),
    ):
        s3_lifecycle.lifecycle_rules(repo, load_registry(repo).member("m"))


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"endpoint": "ftp://s3.example.org", "bucket": "ok-bucket"}, "is not a valid endpoint"),
        (
            {"endpoint": "https://k:s@s3.example.org", "bucket": "ok-bucket"},
            "is not a valid endpoint",
        ),
        ({"endpoint": "https://s3.example.org", "bucket": "Bad_Bucket"}, "is not a valid bucket"),
        ({"endpoint": "https://s3.example.org", "bucket": "192.168.1.1"}, "is not a valid bucket"),
        ({"endpoint": "https://s3.example.org"}, "key 'bucket': is required"),
        ({"endpoint": "https://s3.example.org", "bucket": "b-1", "extra": 1}, "unknown key"),
        (
            {
                "endpoint": "https://s3.example.org",
                "bucket": "b-1",
                "lifecycle_rules": [{"ID": "x"}],
            },
            "Status",
        ),
    ],
)
def test_the_registry_checks_the_s3_block(
    deploy_repo: MakeRepo, block: dict[str, Any], message: str
) -> None:
    repo = deploy_repo(members={"m": {"domain": "m.example.org", "s3": block}})
    with pytest.raises(ConfigError, match=message) as raised:
        load_registry(repo)
    assert "member m" in str(raised.value)


def test_a_member_without_an_s3_block_is_one_line(deploy_repo: MakeRepo) -> None:
    repo = deploy_repo(members={"m": {"domain": "m.example.org"}})
    with pytest.raises(ConfigError, match=r"^member m has no s3 block in config/federation\.yaml"):
        bucket_settings(load_registry(repo).member("m"))


def test_normalise_ignores_server_extras_order_and_legacy_prefix() -> None:
    sent = {"Rules": [EXPIRE_RULE, ABORT_RULE]}
    returned = {
        "TransitionDefaultMinimumObjectSize": "all_storage_classes_128K",
        "Rules": [
            {**ABORT_RULE, "Filter": {}},
            {k: v for k, v in EXPIRE_RULE.items() if k != "Filter"} | {"Prefix": "scratch/"},
        ],
    }
    assert s3_lifecycle.normalise(sent) == s3_lifecycle.normalise(returned)
    assert s3_lifecycle.normalise(sent) != s3_lifecycle.normalise({"Rules": [ABORT_RULE]})


# --- keys --------------------------------------------------------------------------------------


def test_keys_come_from_the_secrets_and_are_never_shown(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = make_keys("AKIDSHOWNNEVER", "secret-shown-never")
    repo = s3_repo(deploy_repo, monkeypatch, "https://s3.example.org", "harbor-m", keys)
    found = s3.member_keys(repo, load_registry(repo).member("m"))
    assert (found.access_key, found.secret_key) == (keys.access_key, keys.secret_key)
    assert found.source == "secrets/config/m.yaml"
    for text in (repr(found), str(found)):
        assert keys.access_key not in text
        assert keys.secret_key not in text


def test_missing_keys_are_an_error(deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = s3_repo(deploy_repo, monkeypatch, "https://s3.example.org", "harbor-m", None)
    with pytest.raises(
        SecretsError,
        match=r"^member m: no S3 key at harbor\.persistence\.imageChartStorage\.s3\.accesskey; set it in secrets/config/m\.yaml",
    ):
        s3.member_keys(repo, load_registry(repo).member("m"))


def test_keys_in_a_plaintext_layer_are_refused(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaked = make_keys("AKIDINPLAINTEXT", "plaintext-secret")
    repo = s3_repo(
        deploy_repo,
        monkeypatch,
        "https://s3.example.org",
        "harbor-m",
        None,
        values=harbor_keys(leaked),
    )
    with pytest.raises(SecretsError) as raised:
        s3.member_keys(repo, load_registry(repo).member("m"))
    assert str(raised.value).startswith(
        "member m: harbor.persistence.imageChartStorage.s3.accesskey is set in config/m.yaml, "
        "which is not encrypted"
    )
    assert leaked.access_key not in str(raised.value)


# --- s3.lifecycle against the real server ------------------------------------------------------


def test_lifecycle_is_applied_read_back_and_a_second_run_puts_nothing(
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.new_bucket()
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, bucket, s3_server.admin)
    code, out, err = run_task(capsys, s3_server.admin, s3_tasks.lifecycle, "m")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"member m: bucket {bucket} at {s3_server.endpoint}: lifecycle rules",
        "  added      abort-multipart",
        "lifecycle: changed (put, read back and matched)",
    ]
    assert lifecycle_on(s3_server, bucket) == [ABORT_RULE]

    code, out, err = run_task(capsys, s3_server.admin, s3_tasks.lifecycle, "m")
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "  unchanged  abort-multipart",
        "lifecycle: ok (the bucket already has these rules; nothing put)",
    ]


def test_an_equal_configuration_is_not_put_again(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    puts = count_puts(client)
    first = s3_lifecycle.apply_lifecycle(client, bucket, {"Rules": [ABORT_RULE]})
    assert (first.state, first.put, len(puts)) == ("changed", True, 1)
    second = s3_lifecycle.apply_lifecycle(client, bucket, {"Rules": [ABORT_RULE]})
    assert (second.state, second.put, len(puts)) == ("ok", False, 1)
    assert second.outcome().state == "ok"


def test_member_rules_reach_the_bucket_and_stray_rules_are_removed(
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.new_bucket()
    stray = {**EXPIRE_RULE, "ID": "made-by-hand", "Filter": {"Prefix": "old/"}}
    s3_server.client().put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [ABORT_RULE, stray]}
    )
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, bucket, s3_server.admin, [EXPIRE_RULE])
    code, out, err = run_task(capsys, s3_server.admin, s3_tasks.lifecycle, "m")
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "  unchanged  abort-multipart",
        "  added      expire-scratch",
        "  removed    made-by-hand",
        "lifecycle: changed (put, read back and matched)",
    ]
    assert lifecycle_on(s3_server, bucket) == [ABORT_RULE, EXPIRE_RULE]


def test_a_dry_run_puts_nothing(
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.new_bucket()
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, bucket, s3_server.admin, [EXPIRE_RULE])
    code, out, err = run_task(capsys, s3_server.admin, s3_tasks.lifecycle, "m", dry_run=True)
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "  added      abort-multipart",
        "  added      expire-scratch",
        "lifecycle: would change (dry run: nothing put)",
    ]
    assert lifecycle_on(s3_server, bucket) is None


def test_a_read_back_that_differs_fails(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    real = s3_server.client()

    class LosesRules:
        """The real client, but reads come back without the member's rule (a server that
        accepts rules it does not keep)."""

        meta = real.meta

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get_bucket_lifecycle_configuration(self, **kw: Any) -> Any:
            answer = real.get_bucket_lifecycle_configuration(**kw)
            answer["Rules"] = [r for r in answer["Rules"] if r["ID"] != "expire-scratch"]
            return answer

    with pytest.raises(s3.S3Error) as raised:
        s3_lifecycle.apply_lifecycle(
            LosesRules(), bucket, {"Rules": [ABORT_RULE, EXPIRE_RULE]}, member="m"
        )
    assert str(raised.value).startswith(
        f"member m: bucket {bucket} at {s3_server.endpoint}: the lifecycle configuration read "
        "back after the put differs from what was put (rules: expire-scratch)"
    )


# --- s3.check against the real server ---------------------------------------------------------


def probes_left(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket, Prefix=s3_check.PROBE_PREFIX)
    return [o["Key"] for o in listed.get("Contents", [])]


def probe_buckets(server: S3Server) -> list[str]:
    names = [b["Name"] for b in server.client().list_buckets()["Buckets"]]
    return [n for n in names if n.startswith(s3_check.PROBE_BUCKET_PREFIX)]


def test_check_with_keys_limited_to_the_bucket_is_ok_without_warning(
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.restricted_bucket
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, bucket, s3_server.restricted)
    code, out, err = run_task(capsys, s3_server.restricted, s3_tasks.check, "m")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"member m: bucket {bucket} at {s3_server.endpoint} (S3 keys from secrets/config/m.yaml)"
    )
    assert lines[1] == "  ok       bucket: exists; the keys are accepted and may list it"
    assert lines[2].startswith(f"  ok       write: probe object {s3_check.PROBE_PREFIX}")
    assert lines[3:] == [
        "  ok       read: probe object read back intact",
        "  ok       delete: probe object deleted",
        "  ok       bucket admin: the keys may not create buckets",
        "check: ok",
    ]
    assert probes_left(s3_server, bucket) == []
    assert probe_buckets(s3_server) == []


def test_check_warns_when_the_keys_may_create_buckets(
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.new_bucket()
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, bucket, s3_server.admin)
    code, out, err = run_task(capsys, s3_server.admin, s3_tasks.check, "m")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[-2] == (
        "  warning  bucket admin: the keys may create and delete buckets (a test bucket was "
        f"created and deleted again); Harbor needs keys limited to bucket {bucket}"
    )
    assert lines[-1] == "check: ok (1 warning)"
    assert probes_left(s3_server, bucket) == []
    assert probe_buckets(s3_server) == []


# --- the failures: one line each, naming the member and bucket ---------------------------------


@pytest.mark.parametrize("task", ["lifecycle", "check"])
def test_a_missing_bucket_is_one_line(
    task: str,
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, "no-such-bucket", s3_server.admin)
    code, out, err = run_task(capsys, s3_server.admin, getattr(s3_tasks, task), "m")
    assert (code, no_results(out)) == (1, True)
    assert err == (
        f"error: member m: bucket no-such-bucket does not exist at {s3_server.endpoint}; "
        "create it (terraform/ s3 stack) or fix s3.bucket in config/federation.yaml\n"
    )
    assert "no-such-bucket" not in {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}


@pytest.mark.parametrize("task", ["lifecycle", "check"])
def test_access_denied_is_one_line(
    task: str,
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = s3_server.new_bucket()  # the restricted keys are for another bucket only
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, other, s3_server.restricted)
    code, out, err = run_task(capsys, s3_server.restricted, getattr(s3_tasks, task), "m")
    assert (code, no_results(out)) == (1, True)
    assert err.startswith("error: member m: access denied (AccessDenied) ")
    assert f" in bucket {other} at {s3_server.endpoint}; the keys (" in err
    assert err.count("\n") == 1
    assert lifecycle_on(s3_server, other) is None


def test_rejected_keys_are_one_line(
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.new_bucket()
    wrong = make_keys(s3_server.admin.access_key, "not-the-secret-key-at-all")
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, bucket, wrong)
    code, out, err = run_task(capsys, wrong, s3_tasks.check, "m")
    assert (code, no_results(out)) == (1, True)
    assert err == (
        f"error: member m: the S3 keys were rejected by {s3_server.endpoint} "
        "(SignatureDoesNotMatch) while listing objects; fix "
        "harbor.persistence.imageChartStorage.s3.accesskey/.secretkey in secrets/config/m.yaml\n"
    )


@pytest.mark.parametrize("task", ["lifecycle", "check"])
def test_an_unreachable_endpoint_fails_fast_in_one_line(
    task: str,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = make_keys("AKIDUNREACHABLE", "secret-unreachable")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    s3_repo(deploy_repo, monkeypatch, endpoint, "harbor-m", keys)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # ignored: no AWS config is read
    started = time.monotonic()
    code, out, err = run_task(capsys, keys, getattr(s3_tasks, task), "m")
    assert time.monotonic() - started < 10
    assert (code, no_results(out)) == (1, True)
    assert err.startswith(
        f"error: member m: S3 endpoint {endpoint} is unreachable (connection refused) while "
    )
    assert err.endswith("check s3.endpoint in config/federation.yaml and that the endpoint is up\n")
    assert err.count("\n") == 1


def test_an_endpoint_that_never_answers_times_out_in_seconds() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nothing ever answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = BucketSettings("m", endpoint, "us-east-1", "harbor-m")
        client = s3.make_client(settings, s3.Keys("AKIDSILENT", "secret-silent", "test"), 1, 0.5)
        started = time.monotonic()
        with pytest.raises(s3.S3Error) as raised:
            s3_check.check_bucket(client, "harbor-m", member="m")
        assert time.monotonic() - started < 5
    assert str(raised.value) == (
        f"member m: S3 endpoint {endpoint} is unreachable (no answer within 0.5s, 2 attempts) "
        "while listing objects; check s3.endpoint in config/federation.yaml and that the "
        "endpoint is up"
    )


def test_a_member_without_keys_fails_before_any_request(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_repo(deploy_repo, monkeypatch, f"http://127.0.0.1:{closed_port()}", "harbor-m", None)
    code, out, err = run_task(capsys, make_keys("unused-key", "unused-secret"), s3_tasks.check, "m")
    assert (code, out) == (1, "")
    assert err.startswith(
        "error: member m: no S3 key at harbor.persistence.imageChartStorage.s3.accesskey"
    )


def test_tasks_ignore_the_aws_environment(
    s3_server: S3Server,
    deploy_repo: MakeRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    bucket = s3_server.new_bucket()
    s3_repo(deploy_repo, monkeypatch, s3_server.endpoint, bucket, s3_server.admin)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-environment")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-nowhere-1")
    code, out, err = run_task(capsys, s3_server.admin, s3_tasks.lifecycle, "m")
    assert (code, err) == (0, "")
    assert out.endswith("lifecycle: changed (put, read back and matched)\n")
    assert lifecycle_on(s3_server, bucket) == [ABORT_RULE]
