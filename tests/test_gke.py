"""hubfleet.cloud.gke: GKE credentials from a service-account key, against the stub token endpoint
and GKE API (tests/gke_stub.py), the stub Kubernetes API (tests/kube_stub/) and real sops.

Everything here talks to 127.0.0.1 only: every key's token_uri is the stub's.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hubfleet.cloud import gke
from hubfleet.cloud.credentials import member_credentials, member_secrets_file
from hubfleet.errors import ClusterError, ConfigError, HubfleetError, SecretsError
from hubfleet.kube import client as kube
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.registry.members import load_registry, member_from_record
from hubfleet.secrets import sops
from tests.conftest_repo import MakeRepo
from tests.gke_stub import GkeStub
from tests.kube_stub import KubeStub, make_tls_material

MEMBER = "gkeone"
SOURCE = "secrets/gkeone-gke.yaml"
EMAIL = "deployer@proj-one.iam.gserviceaccount.com"
CLUSTER = gke.GkeCluster("proj-one", "europe-west1", "hub")
CONTEXT = "gke_proj-one_europe-west1_hub"


# --- fixtures ------------------------------------------------------------------------------


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def sa_key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def ca_b64() -> str:
    """A real CA certificate, as GKE reports it: base64 of the PEM."""
    return base64.b64encode(make_tls_material().ca_pem).decode()


@pytest.fixture
def stub(sa_key: rsa.RSAPrivateKey) -> Iterator[GkeStub]:
    with GkeStub() as started:
        started.add_account(EMAIL, sa_key.public_key())
        yield started


def service_account(
    token_uri: str, key: rsa.RSAPrivateKey, email: str = EMAIL, project: str = "proj-one"
) -> dict[str, Any]:
    """A service-account key JSON as Google makes them, pointing at the stub's token endpoint."""
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem(key),
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


def gke_secrets(
    info: dict[str, Any], endpoint: str | None = "34.1.2.3", ca: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"service_account": info}
    if endpoint is not None:
        data["endpoint"] = endpoint
    if ca is not None:
        data["ca_certificate"] = ca
    return data


@pytest.fixture
def data(stub: GkeStub, sa_key: rsa.RSAPrivateKey, ca_b64: str) -> dict[str, Any]:
    return gke_secrets(service_account(stub.token_uri, sa_key), ca=ca_b64)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def key_fragments(info: dict[str, Any]) -> list[str]:
    """Pieces of the key material no message may contain."""
    body = [line for line in info["private_key"].splitlines() if not line.startswith("-----")]
    return [*body, info["private_key_id"], "PRIVATE KEY"]


def assert_one_line_without_secrets(message: str, info: dict[str, Any], *tokens: str) -> None:
    assert "\n" not in message
    for fragment in [*key_fragments(info), *tokens]:
        assert fragment not in message


def user_token(creds: ClusterCredentials) -> str:
    return str(creds.kubeconfig["users"][0]["user"]["token"])


# --- building credentials -------------------------------------------------------------------


def test_credentials_are_built_offline_against_the_stub(
    stub: GkeStub, data: dict[str, Any], ca_b64: str
) -> None:
    environ = dict(os.environ)
    creds = gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    assert dict(os.environ) == environ

    token = user_token(creds)
    assert stub.tokens() == [token] and stub.issued_to(token) == EMAIL
    assert stub.issued[0].scope == gke.CLOUD_PLATFORM_SCOPE
    assert stub.requests == ["POST /token 200"]  # the token only: no GKE API, nothing else
    assert creds.member == MEMBER and creds.source == SOURCE
    assert creds.context == CONTEXT == creds.kubeconfig["current-context"]
    assert creds.server == "https://34.1.2.3"
    cluster = creds.kubeconfig["clusters"][0]
    assert cluster == {
        "name": CONTEXT,
        "cluster": {"server": "https://34.1.2.3", "certificate-authority-data": ca_b64},
    }
    assert creds.kubeconfig["contexts"] == [
        {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}
    ]
    assert creds.expires_at is not None
    left = creds.expires_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=55) < left <= dt.timedelta(hours=1)
    # what the Helm engines are handed: the same kubeconfig, as YAML text
    assert yaml.safe_load(creds.kubeconfig_yaml()) == creds.kubeconfig


def test_each_call_gets_a_fresh_token(stub: GkeStub, data: dict[str, Any]) -> None:
    first = gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    second = gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    assert user_token(first) != user_token(second)
    assert stub.tokens() == [user_token(first), user_token(second)]


@pytest.mark.parametrize(
    "endpoint, server",
    [
        ("34.1.2.3", "https://34.1.2.3"),
        ("https://34.1.2.3/", "https://34.1.2.3"),
        ("gke.example.org:8443", "https://gke.example.org:8443"),
    ],
)
def test_endpoint_forms(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey, ca_b64: str, endpoint: str, server: str
) -> None:
    info = service_account(stub.token_uri, sa_key)
    parsed = gke.parse_gke_secrets(MEMBER, gke_secrets(info, endpoint, ca_b64), SOURCE)
    assert parsed.endpoint is not None and parsed.endpoint.server == server


def test_a_pem_ca_is_taken_as_well_as_base64(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey, ca_b64: str
) -> None:
    info = service_account(stub.token_uri, sa_key)
    as_pem = base64.b64decode(ca_b64).decode()
    parsed = gke.parse_gke_secrets(MEMBER, gke_secrets(info, ca=as_pem), SOURCE)
    assert parsed.endpoint is not None
    assert base64.b64decode(parsed.endpoint.ca_certificate) == base64.b64decode(ca_b64)


# --- what goes wrong, said in one line -------------------------------------------------------


def test_a_key_the_stub_does_not_know_is_refused_in_one_line(stub: GkeStub, ca_b64: str) -> None:
    info = service_account(stub.token_uri, new_key())  # same account, another (deleted?) key
    with pytest.raises(SecretsError) as err:
        gke.gke_credentials(MEMBER, CLUSTER, gke_secrets(info, ca=ca_b64), SOURCE)
    message = str(err.value)
    assert message == (
        f"{SOURCE}: token endpoint {stub.token_uri} refused the key of member {MEMBER} "
        "(invalid_grant: Invalid JWT Signature.); the key was deleted or disabled, or is not "
        f"{EMAIL}'s; make a new key and store it in {SOURCE}"
    )
    assert_one_line_without_secrets(message, info)
    assert stub.issued == [] and stub.requests == ["POST /token 400"]


def test_an_unknown_account_is_refused(stub: GkeStub, ca_b64: str) -> None:
    info = service_account(
        stub.token_uri, new_key(), email="stranger@proj-one.iam.gserviceaccount.com"
    )
    with pytest.raises(SecretsError, match="Invalid JWT Signature") as err:
        gke.gke_credentials(MEMBER, CLUSTER, gke_secrets(info, ca=ca_b64), SOURCE)
    assert_one_line_without_secrets(str(err.value), info)


def test_clock_skew_says_to_check_the_clock(stub: GkeStub, data: dict[str, Any]) -> None:
    stub.clock_offset_s = 2 * 3600  # the stub lives two hours ahead: our grant looks stale
    with pytest.raises(SecretsError) as err:
        gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    message = str(err.value)
    assert f"member {MEMBER}" in message and "invalid_grant" in message
    assert message.endswith("check this machine's clock (the grant's iat/exp were rejected)")
    assert_one_line_without_secrets(message, data["service_account"])


def test_an_unreachable_token_endpoint_is_one_line(sa_key: rsa.RSAPrivateKey, ca_b64: str) -> None:
    token_uri = f"http://127.0.0.1:{closed_port()}/token"
    info = service_account(token_uri, sa_key)
    started = time.monotonic()
    with pytest.raises(ClusterError) as err:
        gke.gke_credentials(MEMBER, CLUSTER, gke_secrets(info, ca=ca_b64), SOURCE)
    assert time.monotonic() - started < 5  # no retry loop on a refused connection
    message = str(err.value)
    assert message == (
        f"member {MEMBER}: cannot reach the token endpoint {token_uri} "
        "([Errno 111] Connection refused); check this machine's network and proxy"
    )
    assert_one_line_without_secrets(message, info)


def test_a_missing_endpoint_says_to_save_the_tofu_outputs(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey
) -> None:
    info = service_account(stub.token_uri, sa_key)
    with pytest.raises(SecretsError) as err:
        gke.gke_credentials(MEMBER, CLUSTER, gke_secrets(info, endpoint=None), SOURCE)
    assert str(err.value) == (
        f"{SOURCE}: no endpoint for member {MEMBER}; "
        f"run: invoke tofu.apply {MEMBER} gke --save-outputs"
    )
    assert stub.requests == []  # found out before asking for a token


def test_an_endpoint_without_ca_names_the_ca(stub: GkeStub, sa_key: rsa.RSAPrivateKey) -> None:
    info = service_account(stub.token_uri, sa_key)
    with pytest.raises(SecretsError) as err:
        gke.parse_gke_secrets(MEMBER, gke_secrets(info, "34.1.2.3", None), SOURCE)
    assert str(err.value) == (
        f"{SOURCE}: no ca_certificate for member {MEMBER}; "
        f"run: invoke tofu.apply {MEMBER} gke --save-outputs"
    )


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for key in keys:
            data["service_account"].pop(key)

    return change


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["service_account"][key] = value

    return change


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda d: d.pop("service_account"),
            f"{SOURCE}: no service_account (the service-account key JSON, as a mapping) for "
            f"member {MEMBER}",
        ),
        (
            _drop("private_key", "client_email"),
            f"{SOURCE}: service_account of member {MEMBER} lacks client_email, private_key; "
            "store the whole key JSON there",
        ),
        (
            _set("type", "authorized_user"),
            f"{SOURCE}: service_account of member {MEMBER} has type 'authorized_user', not "
            "'service_account'; store a service account's JSON key there",
        ),
        (
            _set("token_uri", "http://oauth2.example.org/token"),
            f"{SOURCE}: service_account.token_uri of member {MEMBER} is not an https URL "
            "(http://oauth2.example.org/token)",
        ),
        (
            lambda d: d.update(ca_certificate="bm90IGEgY2VydGlmaWNhdGU="),
            f"{SOURCE}: ca_certificate of member {MEMBER} is not base64 of a PEM certificate; "
            f"run: invoke tofu.apply {MEMBER} gke --save-outputs",
        ),
        (
            lambda d: d.update(endpoint="http://34.1.2.3"),
            f"{SOURCE}: endpoint of member {MEMBER} is not a host or https://host "
            "('http://34.1.2.3')",
        ),
    ],
)
def test_malformed_secrets_are_named_in_one_line(
    stub: GkeStub,
    data: dict[str, Any],
    change: Callable[[dict[str, Any]], Any],
    expected: str,
) -> None:
    info = dict(data["service_account"])
    change(data)
    with pytest.raises(SecretsError) as err:
        gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    assert str(err.value) == expected
    assert_one_line_without_secrets(str(err.value), info)
    assert stub.requests == []


def test_a_garbled_private_key_is_named_without_quoting_it(
    stub: GkeStub, data: dict[str, Any]
) -> None:
    info = data["service_account"]
    info["private_key"] = info["private_key"].replace("M", "*")
    with pytest.raises(SecretsError) as err:
        gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    assert str(err.value) == (
        f"{SOURCE}: service_account.private_key of member {MEMBER} is not a usable private key; "
        "store the key JSON again"
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert_one_line_without_secrets(str(err.value), info)
    assert stub.requests == []


def test_a_registry_member_without_its_gke_block_is_a_config_error() -> None:
    record = {
        "stage": "prod",
        "provider": "gke",
        "domain": "x.example.org",
        "gke": {"project": "p"},
    }
    with pytest.raises(ConfigError, match=r"needs gke.location, gke.cluster"):
        gke.cluster_of(member_from_record("x", record))


# --- the GKE API, when the file has no endpoint ----------------------------------------------


def test_the_endpoint_is_asked_of_the_gke_api_when_allowed(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey, ca_b64: str
) -> None:
    stub.add_cluster("proj-one", "europe-west1", "hub", "35.9.8.7", ca_b64)
    info = service_account(stub.token_uri, sa_key)
    creds = gke.gke_credentials(
        MEMBER,
        CLUSTER,
        gke_secrets(info, endpoint=None),
        SOURCE,
        discover_endpoint=True,
        api=stub.url,
    )
    assert creds.server == "https://35.9.8.7"
    assert creds.kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] == ca_b64
    assert stub.requests == [
        "POST /token 200",
        "GET /v1/projects/proj-one/locations/europe-west1/clusters/hub 200",
    ]


def test_the_gke_api_says_which_cluster_it_does_not_have_or_show(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey
) -> None:
    info = service_account(stub.token_uri, sa_key)
    key = gke.parse_gke_secrets(MEMBER, gke_secrets(info, endpoint=None), SOURCE).key
    token = gke.access_token(key, MEMBER, SOURCE)
    with pytest.raises(ClusterError) as missing:
        gke.cluster_endpoint(CLUSTER, token, MEMBER, api=stub.url)
    assert str(missing.value) == (
        f"member {MEMBER}: GKE has no cluster hub (project proj-one, location europe-west1) "
        "(404); check the registry's gke block"
    )
    stub.forbidden.add("proj-one/europe-west1/hub")
    with pytest.raises(ClusterError) as forbidden:
        gke.cluster_endpoint(CLUSTER, token, MEMBER, api=stub.url)
    assert "refused to show cluster hub (project proj-one, location europe-west1) (403)" in str(
        forbidden.value
    )
    stolen = gke.AccessToken("ya29.not-issued", None)
    with pytest.raises(ClusterError, match=r"did not accept the access token \(401\)") as bad:
        gke.cluster_endpoint(CLUSTER, stolen, MEMBER, api=stub.url)
    for err in (missing, forbidden, bad):
        assert token.token not in str(err.value) and "\n" not in str(err.value)


def test_a_plain_http_gke_api_elsewhere_is_refused() -> None:
    token = gke.AccessToken("ya29.x", None)
    with pytest.raises(ClusterError, match="is not an https URL"):
        gke.cluster_endpoint(CLUSTER, token, MEMBER, api="http://container.example.org")


# --- no shared state --------------------------------------------------------------------------


def test_two_members_built_at_once_each_get_their_own_token_and_server(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey, ca_b64: str
) -> None:
    other_key = new_key()
    other_email = "deployer@proj-two.iam.gserviceaccount.com"
    stub.add_account(other_email, other_key.public_key())
    members = {
        "gkeone": (
            CLUSTER,
            gke_secrets(service_account(stub.token_uri, sa_key), "34.1.1.1", ca_b64),
        ),
        "gketwo": (
            gke.GkeCluster("proj-two", "us-central1", "hub"),
            gke_secrets(
                service_account(stub.token_uri, other_key, other_email, "proj-two"),
                "34.2.2.2",
                ca_b64,
            ),
        ),
    }
    jobs = [name for _ in range(4) for name in members]
    barrier = threading.Barrier(len(jobs))

    def build(name: str) -> ClusterCredentials:
        cluster, data = members[name]
        barrier.wait()
        return gke.gke_credentials(name, cluster, data, f"secrets/{name}-gke.yaml")

    with ThreadPoolExecutor(len(jobs)) as pool:
        built = list(pool.map(build, jobs))

    tokens = [user_token(c) for c in built]
    assert len(set(tokens)) == len(jobs) and sorted(tokens) == sorted(stub.tokens())
    for creds in built:
        one = creds.member == "gkeone"
        assert stub.issued_to(user_token(creds)) == (EMAIL if one else other_email)
        assert creds.server == ("https://34.1.1.1" if one else "https://34.2.2.2")
        assert creds.context == (CONTEXT if one else "gke_proj-two_us-central1_hub")
        assert creds.source == f"secrets/{creds.member}-gke.yaml"


def test_reprs_show_no_token_and_no_key(stub: GkeStub, data: dict[str, Any]) -> None:
    creds = gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    token = user_token(creds)
    parsed = gke.parse_gke_secrets(MEMBER, data, SOURCE)
    shown = [repr(creds), str(creds), repr(parsed), str(parsed.key)]
    shown.append(repr(gke.AccessToken(token, creds.expires_at)))
    for text in shown:
        assert token not in text
        for fragment in key_fragments(data["service_account"]):
            assert fragment not in text
    assert repr(creds) == (
        f"ClusterCredentials(member='{MEMBER}', context='{CONTEXT}', server='https://34.1.2.3')"
    )


def test_importing_credentials_and_gke_loads_no_google_auth() -> None:
    code = (
        "import sys, hubfleet.kube.credentials, hubfleet.cloud.gke; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('google', 'requests')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- through the deploy repo and sops ---------------------------------------------------------


GKE_RECORD = {
    "domain": "gkeone.example.org",
    "provider": "gke",
    "gke": {"project": "proj-one", "location": "europe-west1", "cluster": "hub"},
}


def test_member_credentials_decrypts_the_gke_file_and_builds_the_kubeconfig(
    deploy_repo: MakeRepo, stub: GkeStub, data: dict[str, Any]
) -> None:
    repo = deploy_repo({MEMBER: GKE_RECORD, "plain": {"domain": "plain.example.org"}})
    path = repo.member_gke_credentials(MEMBER)
    assert repo.relative(path) == SOURCE
    sops.write_encrypted(repo, path, yaml.safe_dump(data))
    assert sops.is_encrypted(path)
    assert data["service_account"]["private_key_id"] not in path.read_text()

    registry = load_registry(repo)
    member = registry.member(MEMBER)
    assert member_secrets_file(repo, member) == path
    assert member_secrets_file(repo, registry.member("plain")) == repo.member_kubeconfig("plain")
    creds = member_credentials(repo, member)
    assert creds.source == SOURCE and creds.context == CONTEXT
    assert stub.tokens() == [user_token(creds)]


def test_member_credentials_says_where_the_gke_file_goes(deploy_repo: MakeRepo) -> None:
    repo = deploy_repo({MEMBER: GKE_RECORD})
    with pytest.raises(SecretsError) as err:
        member_credentials(repo, load_registry(repo).member(MEMBER))
    assert str(err.value) == (
        f"member {MEMBER}: no GKE credentials at {SOURCE}; store the service-account key, "
        f"endpoint and CA encrypted there (invoke secrets.encrypt {SOURCE})"
    )


def test_kubeconfig_merge_of_a_gke_member_writes_its_token_and_says_when_it_expires(
    deploy_repo: MakeRepo, stub: GkeStub, data: dict[str, Any], tmp_path: Path
) -> None:
    repo = deploy_repo({MEMBER: GKE_RECORD})
    sops.write_encrypted(repo, repo.member_gke_credentials(MEMBER), yaml.safe_dump(data))
    target = tmp_path / "personal-kubeconfig"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "hubfleet"),
            "kubeconfig.merge",
            MEMBER,
            "--into",
            str(target),
        ],
        cwd=repo.root,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"member {MEMBER}'s token expires at " in proc.stdout
    (token,) = stub.tokens()
    assert token not in proc.stdout + proc.stderr
    written = yaml.safe_load(target.read_text())
    assert [u["user"]["token"] for u in written["users"]] == [token]
    assert target.stat().st_mode & 0o777 == 0o600


# --- the kube adapter, with the token as the credential -----------------------------------------


def cluster_with_token(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey, kube_stub_factory: Callable[..., KubeStub]
) -> tuple[KubeStub, dict[str, Any], ClusterCredentials]:
    """A stub cluster API that accepts exactly the token the stub token endpoint issued for
    the member's credentials: (the API, the member's decrypted gke secrets, the credentials)."""
    cluster_api = kube_stub_factory(token="no-token-issued-yet")
    assert cluster_api.tls_material is not None
    ca = base64.b64encode(cluster_api.tls_material.ca_pem).decode()
    data = gke_secrets(service_account(stub.token_uri, sa_key), f"127.0.0.1:{cluster_api.port}", ca)
    creds = gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)
    cluster_api.token = user_token(creds)
    return cluster_api, data, creds


def test_the_kube_adapter_reaches_the_cluster_with_the_access_token(
    stub: GkeStub,
    sa_key: rsa.RSAPrivateKey,
    kube_stub_factory: Callable[..., KubeStub],
) -> None:
    _, data, creds = cluster_with_token(stub, sa_key, kube_stub_factory)
    with kube.member_api(creds) as api:
        assert kube.check_reachable(api, creds) == "v1.33.1"

    stale = gke.gke_credentials(MEMBER, CLUSTER, data, SOURCE)  # another token, not accepted
    with kube.member_api(stale) as api, pytest.raises(HubfleetError) as err:
        kube.check_reachable(api, stale)
    assert "refused the credentials (401" in str(err.value)
    assert user_token(stale) not in str(err.value)


def test_a_cluster_still_being_created_has_no_endpoint_yet(
    stub: GkeStub, sa_key: rsa.RSAPrivateKey
) -> None:
    stub.add_cluster("proj-one", "europe-west1", "hub", "", "")
    info = service_account(stub.token_uri, sa_key)
    with pytest.raises(ClusterError) as err:
        gke.gke_credentials(
            MEMBER, CLUSTER, gke_secrets(info, None), SOURCE, discover_endpoint=True, api=stub.url
        )
    assert str(err.value) == (
        f"member {MEMBER}: GKE reports no endpoint and CA for cluster hub (project proj-one, "
        "location europe-west1); is it still being created?"
    )


def test_a_gke_member_deploys_with_its_token_and_a_token_shorter_than_the_wait_stops_first(
    stub: GkeStub,
    sa_key: rsa.RSAPrivateKey,
    kube_stub_factory: Callable[..., KubeStub],
    deploy_repo: MakeRepo,
) -> None:
    import dataclasses

    from hubfleet.deploy.member import DeployOptions, deploy_member
    from hubfleet.helm import engine_from_env

    repo = deploy_repo({MEMBER: GKE_RECORD})
    cluster_api, _, creds = cluster_with_token(stub, sa_key, kube_stub_factory)
    engine = engine_from_env({"HOME": os.environ["HOME"]})
    options = DeployOptions(yes=True, timeout_s=60)

    soon = dataclasses.replace(creds, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    requests_before = len(cluster_api.requests)
    with pytest.raises(HubfleetError) as err:
        deploy_member(repo, MEMBER, engine, options, say=lambda _: None, credentials=soon)
    assert str(err.value) == (
        f"member {MEMBER}: the cluster token expires in 2 min, before this deploy's 60 s "
        "timeout ends; use a shorter --timeout"
    )
    assert len(cluster_api.requests) == requests_before  # stopped before contacting the cluster

    result = deploy_member(repo, MEMBER, engine, options, say=lambda _: None, credentials=creds)
    assert result.outcome == "deployed" and result.revision == 1
    assert cluster_api.get("Deployment", f"{MEMBER}-hub", MEMBER) is not None
