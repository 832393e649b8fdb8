#!/usr/bin/python3 -S
# mypy: ignore-errors
# (a stand-in body: like the extensionless stand-ins, stdlib-only code run on test hosts, not type-checked)
"""k3s stand-in for test hosts (marker for the systemctl stand-in: hubfleet-standin-service).

Not k3s: no API server, no containers. It behaves like k3s where hubfleet can see it:

- `k3s --version` / `k3s -v` / `k3s version`: "k3s version v1.32.5+k3s1 (<commit>)" and the
  go version; the version is the STANDIN_VERSION line, which the install script stand-in
  rewrites to the release it "downloaded".
- `k3s server ...` (run once by the systemctl stand-in when the k3s unit starts): reads
  /etc/rancher/k3s/config.yaml and config.yaml.d/*.yaml (keys are flag names, `key+` appends)
  under the command line; makes a real CA, client CA, an admin client certificate (365 days)
  and an API serving certificate whose SANs include tls-san, with openssl, once; writes
  /etc/rancher/k3s/k3s.yaml (cluster/user/context `default`, https://127.0.0.1:6443, mode 0600
  or write-kubeconfig-mode), /var/lib/rancher/k3s/server/token and node-token
  (K10<sha256 of the CA>::server:<secret>), the bundled manifests (traefik.yaml unless
  disabled or traefik.yaml.skip exists), kubelet.conf.d/00-k3s-defaults.conf, and publishes
  the cluster (token, names it answers to, nodes) in the lab's shared dir.
- `k3s agent ...` (the k3s-agent unit, Type=exec: it runs in the background): needs
  --server/K3S_URL and --token/K3S_TOKEN; finds the server the URL names among the lab's
  published clusters, and as k3s keeps trying while there is none or its k3s unit is not active
  (connection refused; bounded here by the host's k3s_join_timeout_s lab option), checks the token like k3s (CA hash, then secret: 401),
  refuses a node name already registered by another host (node password), refuses unknown
  config keys, then registers its node.
- `k3s kubectl get nodes [NAME] [-o json|wide|name] [--no-headers]`, `kubectl wait
  --for=condition=Ready nodes --all|NAME --timeout=Ns`, `kubectl version`: nodes are the
  cluster's registered nodes whose host runs their unit; Ready per the host's lab options
  (node_ready, node_ready_delay_s after the node's last start). Needs a readable kubeconfig
  (else the errors kubectl prints) and a running server.
- Hidden commands for the scripts the install script stand-in (k3s-install.py) writes:
  __standin_uninstall__ (k3s-uninstall.sh, k3s-agent-uninstall.sh), __standin_killall__.
"""

import json
import os
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.realpath(__file__)), "/run/hubfleet-standins"]
import hubfleet_standin as standin  # noqa: E402

# loaded at first use: each stand-in call needs only some of them (hubfleet_standin.lazy)
datetime = standin.lazy("datetime")
glob = standin.lazy("glob")
hashlib = standin.lazy("hashlib")
re = standin.lazy("re")
secrets = standin.lazy("secrets")
shutil = standin.lazy("shutil")
socket = standin.lazy("socket")
subprocess = standin.lazy("subprocess")
tempfile = standin.lazy("tempfile")
urllib_parse = standin.lazy("urllib.parse")

STANDIN_VERSION = "v1.32.5+k3s1"

GO_VERSION = "go1.23.8"
BIN_DIR = "/usr/local/bin"
CONFIG = "/etc/rancher/k3s/config.yaml"
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
DATA_DIR = "/var/lib/rancher/k3s"
NODE_PASSWORD = "/etc/rancher/node/password"
CLUSTERS = standin.SHARED + "/k3s/clusters"
INSTALL_STATE = standin.STATE + "/k3s-install.json"
BOOL_FLAGS = set(
    [
        "debug",
        "cluster-init",
        "disable-network-policy",
        "disable-cloud-controller",
        "disable-helm-controller",
        "disable-kube-proxy",
        "disable-scheduler",
        "disable-apiserver",
        "disable-controller-manager",
        "disable-etcd",
        "disable-agent",
        "secrets-encryption",
        "embedded-registry",
        "with-node-id",
        "selinux",
        "protect-kernel-defaults",
        "rootless",
        "prefer-bundled-bin",
        "docker",
        "disable-default-registry-endpoint",
        "disable-apiserver-lb",
        "enable-pprof",
        "alsologtostderr",
        "flannel-ipv6-masq",
        "egress-selector-mode",
        "supervisor-metrics",
        "cluster-reset",
        "etcd-expose-metrics",
        "etcd-disable-snapshots",
    ]
)
LIST_FLAGS = set(
    [
        "tls-san",
        "disable",
        "node-label",
        "node-taint",
        "kubelet-arg",
        "kube-proxy-arg",
        "kube-apiserver-arg",
        "kube-controller-manager-arg",
        "kube-scheduler-arg",
        "kube-cloud-controller-manager-arg",
        "node-ip",
        "node-external-ip",
        "cluster-cidr",
        "service-cidr",
        "cluster-dns",
        "etcd-arg",
    ]
)
SHORT = {"t": "token", "s": "server", "d": "data-dir", "i": "node-ip", "l": "log", "v": "v"}
AGENT_FLAGS = set(
    [
        "config",
        "debug",
        "v",
        "vmodule",
        "log",
        "alsologtostderr",
        "token",
        "token-file",
        "server",
        "data-dir",
        "node-name",
        "with-node-id",
        "node-label",
        "node-taint",
        "image-credential-provider-bin-dir",
        "image-credential-provider-config",
        "selinux",
        "lb-server-port",
        "protect-kernel-defaults",
        "container-runtime-endpoint",
        "default-runtime",
        "image-service-endpoint",
        "pause-image",
        "snapshotter",
        "private-registry",
        "disable-default-registry-endpoint",
        "airgap-extra-registry",
        "node-ip",
        "bind-address",
        "node-external-ip",
        "node-internal-dns",
        "node-external-dns",
        "resolv-conf",
        "flannel-iface",
        "flannel-conf",
        "flannel-cni-conf",
        "kubelet-arg",
        "kube-proxy-arg",
        "enable-pprof",
        "rootless",
        "prefer-bundled-bin",
        "docker",
        "vpn-auth",
        "vpn-auth-file",
        "disable-apiserver-lb",
        "nonroot-devices",
    ]
)
SERVER_FLAGS = AGENT_FLAGS | set(
    [
        "config",
        "write-kubeconfig",
        "write-kubeconfig-mode",
        "write-kubeconfig-group",
        "token",
        "token-file",
        "agent-token",
        "agent-token-file",
        "server",
        "data-dir",
        "https-listen-port",
        "advertise-address",
        "advertise-port",
        "bind-address",
        "flannel-backend",
        "cluster-domain",
        "default-local-storage-path",
        "datastore-endpoint",
        "etcd-snapshot-schedule-cron",
        "node-name",
        "system-default-registry",
        "egress-selector-mode",
        "servicelb-namespace",
        "etcd-snapshot-retention",
        "etcd-snapshot-dir",
        "service-node-port-range",
    ]
)
OPENSSL_CONFIG = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign
subjectKeyIdentifier = hash
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = {sans}
"""


class Fatal(Exception):
    """Ends the program with exit 1 after printing the message as k3s would."""


def version_answer(version):
    """What `k3s --version` prints for `version`; kept as the sh fast path's answer file
    (hubfleet_standin.sh) the first time it is asked for, or installed."""
    text = f"k3s version {version} ({commit_of(version)})\ngo version {GO_VERSION}\n"
    answer = f"{standin.ANSWERS}/k3s-version/{version}"
    if version.strip(".") and "/" not in version and not os.path.exists(answer):
        standin.write_answer(answer, text)
    return text


def commit_of(version):
    return hashlib.sha256(version.encode()).hexdigest()[:8]


def log(level, message):
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f'time="{stamp}" level={level} msg="{message}"', file=sys.stderr, flush=True)


# --- config files --------------------------------------------------------------------------


def scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        return (
            inner.replace("''", "'")
            if text[0] == "'"
            else bytes(inner, "utf-8").decode("unicode_escape")
        )
    if text in ("true", "True", "yes"):
        return True
    if text in ("false", "False", "no"):
        return False
    if text in ("null", "~", ""):
        return None
    return text


def parse_yaml_flat(text, path):
    """The flat subset of YAML a k3s config uses: `key: scalar`, `key: [a, b]`, `key:` + `- item`."""
    result, current = {}, None
    body = [
        ln
        for ln in text.splitlines()
        if ln.strip() and not ln.lstrip().startswith("#") and ln.strip() != "---"
    ]
    if len(body) == 1 and body[0].strip().startswith("{") and body[0].strip().endswith("}"):
        inner = body[0].strip()[1:-1].strip()  # a flow mapping, e.g. `{}` from yaml.safe_dump({})
        for item in filter(None, (part.strip() for part in inner.split(","))):
            key, sep, value = item.partition(":")
            if not sep:
                raise Fatal(f"failed to parse {path}: yaml: did not find expected ',' or '}}'")
            result[key.strip().strip("'\"")] = scalar(value)
        return result
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() == "---":
            continue
        stripped = line.strip()
        if stripped.startswith("- "):
            if current is None:
                raise Fatal(
                    f"failed to parse {path}: yaml: line {number}: did not find expected key"
                )
            result.setdefault(current, [])
            if not isinstance(result[current], list):
                result[current] = []
            result[current].append(scalar(stripped[2:]))
            continue
        if line[0] in " \t":
            raise Fatal(
                f"failed to parse {path}: yaml: line {number}: nested values are not k3s options"
            )
        key, sep, value = stripped.partition(":")
        if not sep:
            raise Fatal(f"failed to parse {path}: yaml: line {number}: could not find expected ':'")
        key, value = key.strip().strip("'\""), value.strip()
        if value.startswith("[") and value.endswith("]"):
            inner = value[1:-1].strip()
            result[key] = [scalar(v) for v in inner.split(",")] if inner else []
            current = None
        elif value == "":
            result[key] = []
            current = key
        else:
            result[key] = scalar(value)
            current = None
    return result


def read_config(path=CONFIG):
    """Options from config.yaml then config.yaml.d/*.yaml (alphabetical); `key+` appends."""
    files = []
    if os.path.isfile(path):
        files.append(path)
    files += sorted(glob.glob(path + ".d/*.yaml")) + sorted(glob.glob(path + ".d/*.yml"))
    merged = {}
    for name in files:
        try:
            with open(name) as handle:
                values = parse_yaml_flat(handle.read(), name)
        except PermissionError:
            raise Fatal(f"open {name}: permission denied") from None
        for key, value in values.items():
            if key.endswith("+"):
                base = key[:-1]
                current = merged.get(base, [])
                merged[base] = (current if isinstance(current, list) else [current]) + (
                    value if isinstance(value, list) else [value]
                )
            else:
                merged[key] = value
    return merged, files


def parse_flags(args, allowed=None):
    """--flag=value, --flag value, -t value; lists repeat; booleans stand alone."""
    flags, rest, i = {}, [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            i += 1
            continue
        name, sep, value = arg.lstrip("-").partition("=")
        name = SHORT.get(name, name)
        if allowed is not None and name not in allowed:
            raise Fatal(f"flag provided but not defined: -{name}")
        if not sep:
            if name in BOOL_FLAGS:
                value = "true"
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
            else:
                raise Fatal(f"flag needs an argument: -{name}")
        if name in LIST_FLAGS:
            flags.setdefault(name, []).extend(v for v in value.split(",") if v)
        else:
            flags[name] = value
        i += 1
    return flags, rest


def as_list(value):
    if value is None:
        return []
    if isinstance(value, list):
        out = []
        for item in value:
            out += [str(v).strip() for v in str(item).split(",") if str(v).strip()]
        return out
    return [v.strip() for v in str(value).split(",") if v.strip()]


def effective_options(args, role):
    config_path = CONFIG
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            config_path = args[i + 1]
        elif arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
    config, files = read_config(config_path)
    if role == "agent":
        for key in config:
            if key not in AGENT_FLAGS:
                raise Fatal(f"flag provided but not defined: -{key}")
        flags, _ = parse_flags(args, AGENT_FLAGS)
    else:
        for key in config:
            if (
                key not in AGENT_FLAGS
                and key not in LIST_FLAGS
                and key not in BOOL_FLAGS
                and key not in SERVER_FLAGS
            ):
                log("warning", f"Unknown flag --{key} found in config.yaml, skipping")
        flags, _ = parse_flags(args)
    options = dict(config)
    for key, value in flags.items():
        if key in LIST_FLAGS:
            options[key] = as_list(options.get(key)) + value
        else:
            options[key] = value
    return options, files


# --- this host ---------------------------------------------------------------------------------


def host_name():
    return standin.host_name()


def host_address():
    return standin.host_info().get("address", "127.0.0.1")


def node_name_from(options):
    name = options.get("node-name") or os.environ.get("K3S_NODE_NAME") or socket.gethostname()
    name = str(name).lower()
    if str(options.get("with-node-id", "")).lower() == "true":
        name += "-" + hashlib.sha256(node_password().encode()).hexdigest()[:8]
    return name


def node_password():
    try:
        with open(NODE_PASSWORD) as handle:
            return handle.read().strip()
    except OSError:
        password = secrets.token_hex(16)
        standin.write_file(NODE_PASSWORD, password + "\n", 0o600)
        return password


def memory_kb():
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_count():
    try:
        out = subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip()
        return int(out)
    except (OSError, ValueError, subprocess.SubprocessError):
        return os.cpu_count() or 1


def os_image():
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def max_pods(options):
    value = 110
    for path in sorted(glob.glob(DATA_DIR + "/agent/etc/kubelet.conf.d/*.conf")):
        try:
            with open(path) as handle:
                for line in handle:
                    match = re.match(r"^maxPods:\s*(\d+)", line)
                    if match:
                        value = int(match.group(1))
        except OSError:
            continue
    for arg in as_list(options.get("kubelet-arg")):
        if arg.startswith("max-pods="):
            value = int(arg.split("=", 1)[1])
    return value


def write_kubelet_defaults():
    text = (
        "apiVersion: kubelet.config.k8s.io/v1beta1\n"
        "kind: KubeletConfiguration\n"
        "cgroupDriver: cgroupfs\n"
        "clusterDNS:\n- 10.43.0.10\n"
        "clusterDomain: cluster.local\n"
        "containerRuntimeEndpoint: unix:///run/k3s/containerd/containerd.sock\n"
        "evictionHard:\n  imagefs.available: 5%\n  nodefs.available: 5%\n"
        "failSwapOn: false\n"
        "healthzBindAddress: 127.0.0.1\n"
        "maxPods: 110\n"
        "serializeImagePulls: false\n"
        "tlsCertFile: /var/lib/rancher/k3s/agent/serving-kubelet.crt\n"
        "tlsPrivateKeyFile: /var/lib/rancher/k3s/agent/serving-kubelet.key\n"
    )
    standin.write_file(DATA_DIR + "/agent/etc/kubelet.conf.d/00-k3s-defaults.conf", text, 0o600)


def node_record(role, unit, name, options, previous):
    now = round(time.time(), 3)
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if role == "server":
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    for item in as_list(options.get("node-label")):
        key, _, value = item.partition("=")
        labels[key] = value
    taints = []
    for item in as_list(options.get("node-taint")):
        key_value, _, effect = item.partition(":")
        key, _, value = key_value.partition("=")
        taints.append({"key": key, "value": value, "effect": effect or "NoSchedule"})
    node_ip = (as_list(options.get("node-ip")) or [host_address()])[0]
    return {
        "name": name,
        "host": host_name(),
        "unit": unit,
        "role": role,
        "version": STANDIN_VERSION,
        "address": node_ip,
        "hostname": socket.gethostname(),
        "password": hashlib.sha256(node_password().encode()).hexdigest(),
        "labels": labels,
        "taints": taints,
        "created": previous.get("created", now) if previous else now,
        "started": now,
        "uid": previous.get("uid") if previous else secrets.token_hex(16),
        "cpus": cpu_count(),
        "memory_kb": memory_kb(),
        "max_pods": max_pods(options),
        "os_image": os_image(),
        "kernel": os.uname().release,
    }


def register_node(cluster_dir, record):
    path = f"{cluster_dir}/nodes/{record['name']}.json"
    previous = standin.read_json(path, None)
    if previous and previous.get("password") != record["password"]:
        raise Fatal(
            "Failed to retrieve agent config: Node password rejected, duplicate hostname or "
            f"contents of '{NODE_PASSWORD}' may not match server node-passwd entry, try enabling "
            "a unique node name with the --with-node-id flag"
        )
    standin.write_json(path, record)


# --- certificates -----------------------------------------------------------------------------


def openssl(args, config=None):
    with tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False) as cfg:
        cfg.write(config or OPENSSL_CONFIG.format(sans="DNS:localhost"))
    try:
        proc = subprocess.run(
            ["openssl", *args, "-config", cfg.name], capture_output=True, text=True, timeout=60
        )
    finally:
        os.unlink(cfg.name)
    if proc.returncode != 0:
        raise Fatal(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def new_key_args(key):
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]


def ensure_certificates(tls, sans):
    os.makedirs(tls, mode=0o700, exist_ok=True)
    stamp = int(time.time())
    for name in ("server-ca", "client-ca"):
        if not os.path.exists(f"{tls}/{name}.crt"):
            openssl(
                [
                    "req",
                    "-x509",
                    "-new",
                    *new_key_args(f"{tls}/{name}.key"),
                    "-out",
                    f"{tls}/{name}.crt",
                    "-days",
                    "3650",
                    "-subj",
                    f"/CN=k3s-{name}@{stamp}",
                    "-extensions",
                    "ca",
                ]
            )
    # as k3s does on start: a client certificate with 90 days or fewer left is renewed
    admin = f"{tls}/client-admin.crt"
    if os.path.exists(admin):
        left = subprocess.run(
            ["openssl", "x509", "-checkend", str(90 * 86400), "-noout", "-in", admin],
            capture_output=True,
        )
        if left.returncode != 0:
            log("info", "certificate client-admin will expire within 90 days, renewing")
            os.unlink(admin)
    if not os.path.exists(admin):
        openssl(
            [
                "req",
                "-x509",
                "-new",
                *new_key_args(f"{tls}/client-admin.key"),
                "-out",
                f"{tls}/client-admin.crt",
                "-days",
                "365",
                "-subj",
                "/O=system:masters/CN=system:admin",
                "-extensions",
                "client",
                "-CA",
                f"{tls}/client-ca.crt",
                "-CAkey",
                f"{tls}/client-ca.key",
            ]
        )
    wanted = ",".join(sans)
    try:
        with open(f"{tls}/serving-kube-apiserver.sans") as handle:
            current = handle.read().strip()
    except OSError:
        current = None
    if current != wanted:
        openssl(
            [
                "req",
                "-x509",
                "-new",
                *new_key_args(f"{tls}/serving-kube-apiserver.key"),
                "-out",
                f"{tls}/serving-kube-apiserver.crt",
                "-days",
                "365",
                "-subj",
                "/O=k3s/CN=k3s",
                "-extensions",
                "serving",
                "-CA",
                f"{tls}/server-ca.crt",
                "-CAkey",
                f"{tls}/server-ca.key",
            ],
            OPENSSL_CONFIG.format(sans=wanted),
        )
        standin.write_file(f"{tls}/serving-kube-apiserver.sans", wanted + "\n", 0o600)
    for name in os.listdir(tls):
        os.chmod(f"{tls}/{name}", 0o600 if name.endswith(".key") else 0o644)


def b64_file(*paths):
    import base64

    data = b""
    for path in paths:
        with open(path, "rb") as handle:
            data += handle.read()
    return base64.b64encode(data).decode()


def kubeconfig_text(tls, port):
    return (
        "apiVersion: v1\n"
        "clusters:\n"
        "- cluster:\n"
        f"    certificate-authority-data: {b64_file(tls + '/server-ca.crt')}\n"
        f"    server: https://127.0.0.1:{port}\n"
        "  name: default\n"
        "contexts:\n"
        "- context:\n"
        "    cluster: default\n"
        "    user: default\n"
        "  name: default\n"
        "current-context: default\n"
        "kind: Config\n"
        "preferences: {}\n"
        "users:\n"
        "- name: default\n"
        "  user:\n"
        f"    client-certificate-data: {b64_file(tls + '/client-admin.crt', tls + '/client-ca.crt')}\n"
        f"    client-key-data: {b64_file(tls + '/client-admin.key')}\n"
    )


# --- server and agent -----------------------------------------------------------------------------


MANIFESTS = ("ccm", "coredns", "local-storage", "rolebindings", "runtimes", "traefik")


def server(args):
    if not standin.is_root():
        raise Fatal("k3s server must run as root (or with --rootless)")
    options, files = effective_options(args, "server")
    data_dir = str(options.get("data-dir") or DATA_DIR)
    port = int(options.get("https-listen-port") or 6443)
    unit = os.environ.get("HUBFLEET_STANDIN_UNIT", "k3s.service")
    log("info", f"Starting k3s {STANDIN_VERSION} ({commit_of(STANDIN_VERSION)})")
    for name in files:
        log("info", f"Using config file {name}")
    server_dir, tls = f"{data_dir}/server", f"{data_dir}/server/tls"
    name = node_name_from(options)
    addresses = [
        host_address(),
        *as_list(options.get("node-ip")),
        *as_list(options.get("advertise-address")),
    ]
    names = [
        *dict.fromkeys([*addresses, name, socket.gethostname(), *as_list(options.get("tls-san"))])
    ]
    sans = [
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:localhost",
        "IP:127.0.0.1",
        "IP:10.43.0.1",
    ]
    for item in names:
        entry = (
            "IP:" if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:]*", item) else "DNS:"
        ) + item
        if entry not in sans:
            sans.append(entry)
    ensure_certificates(tls, sans)
    with open(f"{tls}/server-ca.crt", "rb") as handle:
        ca_hash = hashlib.sha256(handle.read()).hexdigest()
    given = options.get("token") or os.environ.get("K3S_TOKEN")
    token_file = options.get("token-file") or os.environ.get("K3S_TOKEN_FILE")
    if not given and token_file:
        with open(token_file) as handle:
            given = handle.read().strip()
    existing = None
    if os.path.exists(f"{server_dir}/token"):
        with open(f"{server_dir}/token") as handle:
            existing = handle.read().strip()
    if existing:
        secret = existing.split("::", 1)[1].split(":", 1)[1] if "::" in existing else existing
        if given and token_secret(str(given)) != secret:
            raise Fatal(
                "starting kubernetes: preparing server: bootstrap data already found and encrypted with different token"
            )
    else:
        secret = token_secret(str(given)) if given else secrets.token_hex(16)
    token = f"K10{ca_hash}::server:{secret}"
    for path in (f"{server_dir}/token", f"{server_dir}/node-token"):
        standin.write_file(path, token + "\n", 0o600)
    agent_token = options.get("agent-token") or os.environ.get("K3S_AGENT_TOKEN")
    if agent_token:
        standin.write_file(
            f"{server_dir}/agent-token", f"K10{ca_hash}::node:{agent_token}\n", 0o600
        )
    kubeconfig = str(
        options.get("write-kubeconfig") or os.environ.get("K3S_KUBECONFIG_OUTPUT") or KUBECONFIG
    )
    mode_text = str(
        options.get("write-kubeconfig-mode") or os.environ.get("K3S_KUBECONFIG_MODE") or "0600"
    )
    try:
        mode = int(mode_text, 8)
    except ValueError:
        raise Fatal(f'invalid write-kubeconfig-mode "{mode_text}"') from None
    standin.write_file(kubeconfig, kubeconfig_text(tls, port), mode)
    log("info", f"Wrote kubeconfig {kubeconfig}")
    manifests = f"{server_dir}/manifests"
    os.makedirs(manifests, exist_ok=True)
    disabled = set(as_list(options.get("disable")))
    for item in MANIFESTS:
        path = f"{manifests}/{item}.yaml"
        if os.path.exists(path + ".skip"):
            continue
        if item in disabled:
            if os.path.exists(path):
                os.unlink(path)
            continue
        standin.write_file(
            path, f"# k3s stand-in: bundled manifest {item} of {STANDIN_VERSION}\n", 0o600
        )
    os.makedirs(f"{manifests}/metrics-server", exist_ok=True)
    write_kubelet_defaults()
    cluster_dir = f"{CLUSTERS}/{host_name()}"
    os.makedirs(f"{cluster_dir}/nodes", exist_ok=True)
    standin.write_json(
        f"{cluster_dir}/server.json",
        {
            "host": host_name(),
            "unit": unit,
            "port": port,
            "names": names,
            "token": token,
            "secret": secret,
            "agent_token": agent_token,
            "ca_hash": ca_hash,
            "version": STANDIN_VERSION,
        },
    )
    previous = standin.read_json(f"{cluster_dir}/nodes/{name}.json", None)
    register_node(cluster_dir, node_record("server", unit, name, options, previous))
    standin.write_json(
        standin.STATE + "/k3s-effective.json",
        {"role": "server", "node_name": name, "options": options, "config_files": files},
    )
    log("info", "k3s is up and running")
    return 0


def token_secret(token):
    """The secret part of a token: K10<hash>::server:<secret>, server:<secret> or <secret>."""
    if "::" in token:
        token = token.split("::", 1)[1]
    for prefix in ("server:", "node:"):
        if token.startswith(prefix):
            return token[len(prefix) :]
    return token


def find_cluster(host, port):
    for path in sorted(glob.glob(CLUSTERS + "/*/server.json")):
        cluster = standin.read_json(path, {})
        if host in cluster.get("names", []) and int(cluster.get("port", 6443)) == port:
            state = standin.unit_state_elsewhere(
                cluster["host"], cluster.get("unit", "k3s.service")
            )
            if state.get("active") == "active":
                return os.path.dirname(path), cluster
    return None, None


def wait_for_server(hostname, port):
    """As k3s: an agent keeps trying its server until it answers (here: within the lab's
    k3s_join_timeout_s, default 60 s, every k3s_join_retry_s, default 0.2 s)."""
    opts = standin.options()
    deadline = time.monotonic() + float(opts.get("k3s_join_timeout_s", 60))
    pause = float(opts.get("k3s_join_retry_s", 0.2))
    cacerts = f"https://{hostname}:{port}/cacerts"
    refused = f'failed to get CA certs: Get "{cacerts}": dial tcp {hostname}:{port}: connect: connection refused'
    attempts = 0
    while True:
        cluster_dir, cluster = find_cluster(hostname, port)
        if cluster is not None:
            return cluster_dir, cluster
        if time.monotonic() >= deadline:
            raise Fatal(f"Error: {refused}")
        if attempts % 25 == 0:
            log("info", f"Waiting to retrieve agent configuration; server is not ready: {refused}")
        attempts += 1
        time.sleep(pause)


def agent(args):
    if not standin.is_root():
        raise Fatal("k3s agent must run as root (or with --rootless)")
    options, files = effective_options(args, "agent")
    unit = os.environ.get("HUBFLEET_STANDIN_UNIT", "k3s-agent.service")
    log("info", f"Starting k3s agent {STANDIN_VERSION} ({commit_of(STANDIN_VERSION)})")
    url = options.get("server") or os.environ.get("K3S_URL")
    token = options.get("token") or os.environ.get("K3S_TOKEN")
    token_file = options.get("token-file") or os.environ.get("K3S_TOKEN_FILE")
    if not token and token_file:
        try:
            with open(token_file) as handle:
                token = handle.read().strip()
        except OSError as err:
            raise Fatal(f"Error: failed to read token file {token_file}: {err.strerror}") from None
    if not url:
        raise Fatal("Error: --server is required")
    if not token:
        raise Fatal("Error: --token is required")
    parts = urllib_parse.urlsplit(str(url))
    if parts.scheme != "https" or not parts.hostname:
        raise Fatal(f"Error: server URL {url} must be https://host:port")
    port = parts.port or 443
    cluster_dir, cluster = wait_for_server(parts.hostname, port)
    cacerts = f"https://{parts.hostname}:{port}/cacerts"
    token = str(token).strip()
    if token.startswith("K10"):
        given_hash = token[3:].split("::", 1)[0]
        if given_hash != cluster["ca_hash"]:
            raise Fatal(
                f"Error: token CA hash does not match the Cluster CA certificate hash: {given_hash} != {cluster['ca_hash']}"
            )
    secret = token_secret(token)
    if secret not in {cluster["secret"], cluster.get("agent_token")}:
        raise Fatal(f"Error: failed to get CA certs: {cacerts}: 401 Unauthorized")
    name = node_name_from(options)
    write_kubelet_defaults()
    previous = standin.read_json(f"{cluster_dir}/nodes/{name}.json", None)
    register_node(cluster_dir, node_record("agent", unit, name, options, previous))
    standin.write_json(
        standin.STATE + "/k3s-effective.json",
        {
            "role": "agent",
            "node_name": name,
            "server": url,
            "options": {k: v for k, v in options.items() if k != "token"},
            "config_files": files,
        },
    )
    log("info", f"Connected to {parts.hostname}:{port}; node {name} registered")
    return 0


# --- kubectl --------------------------------------------------------------------------------------


def connection_refused(server):
    print(
        f"The connection to the server {server} was refused - did you specify the right host or port?",
        file=sys.stderr,
    )
    return 1


def kube_cluster(args):
    """(cluster dir, None) or (None, exit code) for the kubeconfig kubectl would use."""
    path = os.environ.get("KUBECONFIG") or KUBECONFIG
    for i, arg in enumerate(args):
        if arg == "--kubeconfig" and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--kubeconfig="):
            path = arg.split("=", 1)[1]
    if not os.path.exists(path):
        return None, connection_refused("localhost:8080")
    try:
        with open(path) as handle:
            text = handle.read()
    except PermissionError:
        if path == KUBECONFIG:
            print(
                f"WARN[0000] Unable to read {KUBECONFIG}, please start server with --write-kubeconfig-mode or --write-kubeconfig-group to modify kube config permissions",
                file=sys.stderr,
            )
        print(
            f'error: error loading config file "{path}": open {path}: permission denied',
            file=sys.stderr,
        )
        return None, 1
    match = re.search(r"^\s*server:\s*(\S+)", text, re.MULTILINE)
    if not match:
        return None, connection_refused("localhost:8080")
    parts = urllib_parse.urlsplit(match.group(1))
    hostport = f"{parts.hostname}:{parts.port or 443}"
    if parts.hostname in ("127.0.0.1", "localhost"):
        cluster_dir = f"{CLUSTERS}/{host_name()}"
        cluster = standin.read_json(cluster_dir + "/server.json", None)
        if (
            not cluster
            or standin.unit_state_elsewhere(host_name(), cluster.get("unit", "k3s.service")).get(
                "active"
            )
            != "active"
        ):
            return None, connection_refused(hostport)
        return cluster_dir, None
    cluster_dir, cluster = find_cluster(parts.hostname, parts.port or 443)
    if cluster is None:
        return None, connection_refused(hostport)
    return cluster_dir, None


def nodes_of(cluster_dir):
    nodes = []
    for path in sorted(glob.glob(cluster_dir + "/nodes/*.json")):
        record = standin.read_json(path, None)
        if not record:
            continue
        state = standin.unit_state_elsewhere(record["host"], record["unit"])
        if state.get("active") != "active":
            continue
        opts = standin.options(record["host"])
        delay = float(opts.get("node_ready_delay_s") or 0)
        record["ready"] = (
            bool(opts.get("node_ready", True)) and time.time() - record["started"] >= delay
        )
        nodes.append(record)
    return nodes


def age(seconds):
    seconds = max(0, int(seconds))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d"


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(node):
    ready = node["ready"]
    stamp = iso(node["started"])
    condition = lambda kind, status, reason, message: {  # noqa: E731
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": iso(time.time()),
        "lastTransitionTime": stamp,
    }
    capacity = {
        "cpu": str(node["cpus"]),
        "memory": f"{node['memory_kb']}Ki",
        "pods": str(node["max_pods"]),
        "ephemeral-storage": "20959212Ki",
        "hugepages-2Mi": "0",
    }
    spec = {
        "podCIDR": "10.42.0.0/24",
        "podCIDRs": ["10.42.0.0/24"],
        "providerID": f"k3s://{node['name']}",
    }
    if node["taints"]:
        spec["taints"] = node["taints"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node["name"],
            "uid": f"{node['uid'][:8]}-{node['uid'][8:12]}-{node['uid'][12:16]}-{node['uid'][16:20]}-{node['uid'][20:32]}",
            "creationTimestamp": iso(node["created"]),
            "labels": node["labels"],
            "annotations": {
                "k3s.io/hostname": node["hostname"],
                "k3s.io/internal-ip": node["address"],
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "resourceVersion": str(int(node["started"])),
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": node["address"]},
                {"type": "Hostname", "address": node["hostname"]},
            ],
            "allocatable": capacity,
            "capacity": capacity,
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition(
                    "Ready",
                    "True" if ready else "False",
                    "KubeletReady" if ready else "KubeletNotReady",
                    "kubelet is posting ready status"
                    if ready
                    else "container runtime network not ready: NetworkReady=false",
                ),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": node["uid"],
                "containerRuntimeVersion": "containerd://2.0.5-k3s1",
                "kernelVersion": node["kernel"],
                "kubeProxyVersion": node["version"],
                "kubeletVersion": node["version"],
                "machineID": node["uid"],
                "operatingSystem": "linux",
                "osImage": node["os_image"],
                "systemUUID": node["uid"],
            },
        },
    }


def roles_of(node):
    roles = sorted(
        k.split("/", 1)[1] for k in node["labels"] if k.startswith("node-role.kubernetes.io/")
    )
    return ",".join(roles) or "<none>"


def table(rows, headers):
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in ([headers] if headers else []) + rows:
        lines.append("   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def kubectl(args):
    words = [a for a in args if not a.startswith("-")]
    if not words:
        print(
            "kubectl controls the Kubernetes cluster manager (k3s stand-in: get nodes, wait, version)."
        )
        return 0
    if words[0] == "version":
        client = "--client" in args
        print(f"Client Version: {STANDIN_VERSION}\nKustomize Version: v5.5.0")
        if client:
            return 0
        cluster_dir, code = kube_cluster(args)
        if cluster_dir is None:
            return code
        print(f"Server Version: {STANDIN_VERSION}")
        return 0
    if words[0] == "get" and len(words) >= 2 and words[1] in ("nodes", "node", "no"):
        return get_nodes(args, words[2:])
    if words[0] == "wait":
        return wait_nodes(args, words[1:])
    print(
        f"error: the k3s stand-in's kubectl does not implement `kubectl {' '.join(words[:2])}`",
        file=sys.stderr,
    )
    return 1


def output_format(args):
    for i, arg in enumerate(args):
        if arg in ("-o", "--output") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("-o") and len(arg) > 2:
            return arg[2:].lstrip("=")
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return ""


def get_nodes(args, names):
    fmt = output_format(args)
    names = [n for n in names if n != fmt]
    cluster_dir, code = kube_cluster(args)
    if cluster_dir is None:
        return code
    nodes = nodes_of(cluster_dir)
    if names:
        by_name = {n["name"]: n for n in nodes}
        missing = [n for n in names if n not in by_name]
        for name in missing:
            print(f'Error from server (NotFound): nodes "{name}" not found', file=sys.stderr)
        nodes = [by_name[n] for n in names if n in by_name]
        if missing and not nodes:
            return 1
    if fmt == "json":
        items = [node_object(n) for n in nodes]
        if len(names) == 1 and items:
            print(json.dumps(items[0], indent=4))
        else:
            print(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "items": items,
                        "kind": "List",
                        "metadata": {"resourceVersion": ""},
                    },
                    indent=4,
                )
            )
        return 0
    if fmt == "name":
        for node in nodes:
            print(f"node/{node['name']}")
        return 0
    if fmt not in ("", "wide"):
        print(f"error: the k3s stand-in's kubectl does not implement -o {fmt}", file=sys.stderr)
        return 1
    if not nodes:
        print("No resources found", file=sys.stderr)
        return 0
    now = time.time()
    headers = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = []
    for node in nodes:
        row = [
            node["name"],
            "Ready" if node["ready"] else "NotReady",
            roles_of(node),
            age(now - node["created"]),
            node["version"],
        ]
        if fmt == "wide":
            row += [
                node["address"],
                "<none>",
                node["os_image"],
                node["kernel"],
                "containerd://2.0.5-k3s1",
            ]
        rows.append(row)
    if fmt == "wide":
        headers += ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    print(table(rows, [] if "--no-headers" in args else headers))
    return 0


def wait_nodes(args, words):
    condition, timeout, everything = None, 30.0, "--all" in args or "-A" in args
    for arg in args:
        if arg.startswith("--for=condition="):
            condition = arg.split("=", 2)[2].split("=")[0]
        elif arg.startswith("--timeout="):
            value = arg.split("=", 1)[1]
            timeout = (
                float(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]
                if value[-1] in "smh"
                else float(value)
            )
    targets = []
    for word in words:
        if word.startswith(("node/", "nodes/")):
            targets.append(word.split("/", 1)[1])
        elif word not in ("node", "nodes", "no"):
            targets.append(word)
    if condition != "Ready" or (not targets and not everything):
        print(
            "error: the k3s stand-in's kubectl only waits for --for=condition=Ready on nodes",
            file=sys.stderr,
        )
        return 1
    deadline = time.monotonic() + timeout
    while True:
        cluster_dir, code = kube_cluster(args)
        if cluster_dir is None:
            return code
        nodes = {n["name"]: n for n in nodes_of(cluster_dir)}
        wanted = targets or sorted(nodes)
        pending = [n for n in wanted if not nodes.get(n, {}).get("ready")]
        if not pending:
            for name in wanted:
                print(f"node/{name} condition met")
            return 0
        if time.monotonic() >= deadline:
            print(
                f"error: timed out waiting for the condition on nodes/{pending[0]}", file=sys.stderr
            )
            return 1
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def systemctl(*args, quiet=False):
    return subprocess.run(["systemctl", *args], capture_output=quiet, text=True).returncode


def killall(args):
    standin.record("k3s-killall.sh", args)
    for path in sorted(glob.glob("/etc/systemd/system/k3s*.service")):
        if os.path.getsize(path):
            systemctl("stop", os.path.basename(path))
    return 0


def uninstall(args):
    system_name, script, service_file, env_file, bin_dir = args[:5]
    standin.record(os.path.basename(script), args[5:])
    killall([])
    systemctl("disable", system_name)
    systemctl("reset-failed", system_name)
    systemctl("daemon-reload")
    for path in (service_file, env_file):
        if os.path.exists(path):
            os.unlink(path)
    try:
        if glob.glob(os.path.dirname(service_file) + "/k3s*.service"):
            print("Additional k3s services installed, skipping uninstall of k3s")
            return 0
        for cmd in ("kubectl", "crictl", "ctr"):
            if os.path.islink(f"{bin_dir}/{cmd}"):
                os.unlink(f"{bin_dir}/{cmd}")
        forget_cluster()
        for path in ("/etc/rancher/k3s", "/run/k3s", "/run/flannel", DATA_DIR, "/var/lib/kubelet"):
            shutil.rmtree(path, ignore_errors=True)
        for path in (f"{bin_dir}/k3s", f"{bin_dir}/k3s-killall.sh", INSTALL_STATE):
            if os.path.exists(path):
                os.unlink(path)
    finally:
        if os.path.exists(script):
            os.unlink(script)
    return 0


def forget_cluster():
    """Leave the lab's shared registry as an uninstalled node (or server) would."""
    shutil.rmtree(f"{CLUSTERS}/{host_name()}", ignore_errors=True)
    for path in glob.glob(CLUSTERS + "/*/nodes/*.json"):
        if standin.read_json(path, {}).get("host") == host_name():
            os.unlink(path)


# --- main --------------------------------------------------------------------------------------------


def main(argv):
    prog = os.path.basename(argv[0])
    args = argv[1:]
    hidden = {"__standin_uninstall__": uninstall, "__standin_killall__": killall}
    try:
        if args and args[0] in hidden:
            return hidden[args[0]](args[1:])
        standin.record()
        if prog == "kubectl":
            return kubectl(args)
        if prog in ("crictl", "ctr"):
            print(
                f"{prog}: not available in the k3s stand-in (no container runtime)", file=sys.stderr
            )
            return 1
        if not args or args[0] in ("-h", "--help", "help"):
            print(
                "NAME:\n   k3s - Kubernetes, but small and simple (hubfleet stand-in)\n\nCOMMANDS:\n   server, agent, kubectl"
            )
            return 0
        if args[0] in ("--version", "-v", "version"):
            print(version_answer(STANDIN_VERSION), end="")
            return 0
        if args[0] == "server":
            return server(args[1:])
        if args[0] == "agent":
            return agent(args[1:])
        if args[0] == "kubectl":
            return kubectl(args[1:])
        if args[0] in (
            "crictl",
            "ctr",
            "check-config",
            "etcd-snapshot",
            "token",
            "certificate",
            "secrets-encrypt",
            "completion",
        ):
            print(f"k3s {args[0]}: not available in the k3s stand-in", file=sys.stderr)
            return 1
        print(f"No help topic for '{args[0]}'", file=sys.stderr)
        return 3
    except Fatal as failure:
        log("fatal", str(failure))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
