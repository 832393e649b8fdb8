"""The MicroK8s side of the test-host harness: snap, microk8s, nvidia-smi and ufw stand-ins on
harness hosts, and real WireGuard (wg-quick + wireguard-go) between two hosts."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.harness import TestHost, wireguard_skip_reason

pytest_plugins = ["tests.conftest_hosts"]

INSTALL = "snap install microk8s --classic --channel=1.32/stable"


def sh(host: TestHost, cmd: str, **kwargs: object) -> str:
    return host.run(cmd, check=True, **kwargs).stdout  # type: ignore[arg-type]


def add_node(main: TestHost, ttl: int | None = None) -> dict[str, Any]:
    ttl_arg = f" --token-ttl {ttl}" if ttl is not None else ""
    return json.loads(sh(main, f"microk8s add-node --format json{ttl_arg}"))


def test_snap_installs_microk8s_and_holds_refreshes(hosts) -> None:
    (host,) = hosts(1, snapd=True)
    assert host.run("microk8s status").returncode == 127  # not there before the install
    refused = host.run("snap install microk8s --channel=1.32/stable")
    assert refused.returncode == 1 and "--classic" in refused.stderr
    assert sh(host, INSTALL) == "microk8s (1.32/stable) v1.32.13 from Canonical\u2713 installed\n"
    again = host.run("snap install microk8s --classic --channel=1.31/stable")
    assert again.returncode == 0
    assert again.stderr == "snap \"microk8s\" is already installed, see 'snap help refresh'\n"
    listing = sh(host, "snap list microk8s").splitlines()
    assert listing[0].split() == ["Name", "Version", "Rev", "Tracking", "Publisher", "Notes"]
    assert listing[1].split() == [
        "microk8s",
        "v1.32.13",
        "8148",
        "1.32/stable",
        "canonical\u2713",
        "classic",
    ]
    assert (
        sh(host, "snap refresh --hold microk8s")
        == 'General refreshes of "microk8s" held indefinitely\n'
    )
    assert sh(host, "snap list microk8s").splitlines()[1].split()[-1] == "classic,held"
    assert host.snap_state()["snaps"]["microk8s"]["hold"] == "forever"
    timed = sh(host, "snap refresh --hold=72h microk8s")
    assert timed.startswith('General refreshes of "microk8s" held until 20')
    missing = host.run("snap get system refresh.hold")
    assert missing.returncode == 1
    assert 'has no "refresh.hold" configuration option' in missing.stderr
    sh(host, "snap set system refresh.timer=fri,23:00-01:00 refresh.hold=forever")
    assert sh(host, "snap get system refresh.timer") == "fri,23:00-01:00\n"
    assert sh(host, "snap get system refresh.hold") == "forever\n"
    assert host.run("snap set system refresh.retain=99").returncode == 1
    assert host.run("snap install microk8s --classic --channel=1.99/stable").returncode == 0
    host.lab.set_microk8s_channel("1.33/stable", "v1.33.7", 8400)
    assert "v1.33.7" in sh(host, "snap refresh microk8s --channel=1.33/stable")
    assert sh(host, "microk8s version") == "MicroK8s v1.33.7 revision 8400\n"
    assert [c["argv"][0] for c in host.calls("snap")].count("install") == 4
    denied = host.run("snap refresh --hold microk8s", user="nobody")
    assert denied.returncode == 1 and denied.stderr == "error: access denied (try with sudo)\n"


def test_microk8s_status_waits_for_ready(hosts) -> None:
    (host,) = hosts(1, snapd=True, microk8s_ready_delay_s=1.0)
    sh(host, INSTALL)
    started = time.monotonic()
    early = host.run("microk8s status --wait-ready --timeout 0.3")
    assert early.returncode == 1
    assert (
        early.stdout == "microk8s is not running. Use microk8s inspect for a deeper inspection.\n"
    )
    ready = host.run("microk8s status --wait-ready --timeout 10")
    assert ready.returncode == 0 and ready.stdout.startswith("microk8s is running\n")
    assert 0.9 < time.monotonic() - started < 3
    short = sh(host, "microk8s status --format short")
    assert "  core/dns: enabled" in short and "  core/metallb: disabled" in short
    doc = yaml.safe_load(sh(host, "microk8s status --format yaml"))
    assert doc["microk8s"]["running"] is True
    enabled = {a["name"] for a in doc["addons"] if a["status"] == "enabled"}
    assert enabled == {"dns", "ha-cluster", "helm", "helm3"}
    host.set_microk8s_ready_delay(math.inf)
    sh(host, "snap restart microk8s")
    assert host.run("microk8s status --wait-ready --timeout 0.2").returncode == 1
    assert host.run("microk8s enable dashboard").returncode == 1  # no API server yet


def test_addons_metallb_and_nvidia(hosts) -> None:
    (main,) = hosts(1, snapd=True, gpus=2)
    sh(main, INSTALL)
    out = sh(main, "microk8s enable dns")
    assert out == "Infer repository core for addon dns\nAddon core/dns is already enabled\n"
    for addon in ("hostpath-storage", "community", "dashboard"):
        sh(main, f"microk8s enable {addon}")
    nvidia = sh(main, "microk8s enable nvidia")
    assert "Addon core/helm3 is already enabled" in nvidia
    no_range = main.run("microk8s enable metallb", input="")
    assert no_range.returncode == 1
    assert "Enter each IP address range delimited by comma" in no_range.stdout
    assert "You have to input an IP Range value when asked" in no_range.stdout
    bad = main.run("microk8s enable metallb:10.0.0.9-10.0.0.1")
    assert bad.returncode == 1 and "is not a valid IP Range" in bad.stdout
    sh(main, "microk8s enable metallb:10.213.0.200-10.213.0.210")
    addons = main.lab.microk8s_cluster(main)["addons"]
    assert addons["metallb"]["args"] == "10.213.0.200-10.213.0.210"
    assert addons["nvidia"]["host_driver"] is True
    assert {"dns", "helm3", "hostpath-storage", "community", "dashboard", "nvidia"} <= set(addons)
    assert main.run("microk8s enable no-such-addon").returncode == 1
    pods = sh(main, "microk8s kubectl get pods -A")
    assert "metallb-system" in pods and "Running" in pods
    assert main.lab.microk8s_cluster(main)["admin_token"] == "<hidden>"


def test_add_node_join_single_use_tokens_and_config(hosts) -> None:
    main, worker1, worker2 = hosts(3, snapd=True)
    for host in (main, worker1, worker2):
        sh(host, INSTALL)
    lab = main.lab
    first = add_node(main)
    token, check = first["token"].split("/")
    assert len(token) == 32 and len(check) == 12
    assert first["urls"] == [f"{main.address}:25000/{token}/{check}"]
    assert set(lab.microk8s_tokens(main)) == {token}

    # a failed join consumes the token: the retry needs a fresh one
    lab.reject_next_microk8s_join(token)
    failed = worker1.run(f"microk8s join {first['urls'][0]} --worker")
    assert failed.returncode == 6
    assert failed.stdout.startswith(f"Contacting cluster at {main.address}\nConnection failed.")
    assert lab.microk8s_tokens(main) == {}
    reused = worker1.run(f"microk8s join {first['urls'][0]} --worker")
    assert reused.returncode == 6 and "Connection failed. invalid token (500)." in reused.stdout
    fresh = add_node(main)
    joined = worker1.run(f"microk8s join {fresh['urls'][0]} --worker", check=True)
    assert joined.stdout.rstrip().endswith("Successfully joined the cluster.")
    assert lab.microk8s_tokens(main) == {}
    again = worker2.run(f"microk8s join {fresh['urls'][0]} --worker")
    assert again.returncode == 6  # single-use: gone

    # a token with a TTL may be used until it expires (as the cluster agent does)
    ttl = add_node(main, ttl=3600)
    worker2.run(f"microk8s join {ttl['urls'][0]} --worker", check=True)
    assert set(lab.microk8s_tokens(main)) == {ttl["token"].split("/")[0]}
    bad_check = worker2.run(f"microk8s join {main.address}:25000/{token}/000000000000")
    assert bad_check.returncode == 4 and "Could not verify the identity" in bad_check.stdout
    nowhere = worker2.run(f"microk8s join 10.213.9.9:25000/{token}/{check}")
    assert nowhere.returncode == 1 and "Connection refused" in nowhere.stderr

    nodes = sh(main, "microk8s kubectl get nodes").splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in nodes[1:]}
    assert set(rows) == {"host1", "host2", "host3"}
    assert all(r[1] == "Ready" and r[4] == "v1.32.13" for r in rows.values())
    items = json.loads(sh(main, "microk8s kubectl get nodes -o json"))["items"]
    assert {i["metadata"]["name"] for i in items} == {"host1", "host2", "host3"}

    kubeconfig = yaml.safe_load(sh(main, "microk8s config"))
    assert kubeconfig["current-context"] == "microk8s"
    assert kubeconfig["clusters"][0]["name"] == "microk8s-cluster"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{main.address}:16443"
    assert kubeconfig["contexts"][0] == {
        "context": {"cluster": "microk8s-cluster", "user": "admin"},
        "name": "microk8s",
    }
    assert kubeconfig["users"][0]["name"] == "admin"
    assert len(kubeconfig["users"][0]["user"]["token"]) == 32
    notice = worker1.run("microk8s config")
    assert notice.returncode == 0 and "acting as a node in a cluster" in notice.stdout
    refused = worker1.run("microk8s enable dashboard")
    assert refused.returncode == 1 and "acting as a node in a cluster" in refused.stdout
    assert worker1.microk8s_state()["role"] == "worker"
    assert worker1.exists("/var/snap/microk8s/current/var/lock/clustered.lock")
    # tokens never reach calls.log
    logged = json.dumps(worker1.calls("microk8s") + main.calls("microk8s"))
    assert token not in logged and fresh["token"].split("/")[0] not in logged

    # leave: the node shows NotReady until remove-node
    sh(worker2, "microk8s leave")
    assert "NotReady" in sh(main, "microk8s kubectl get nodes host3")
    sh(main, "microk8s remove-node host3")
    assert "host3" not in sh(main, "microk8s kubectl get nodes")


def test_refresh_certs_takes_new_sans(hosts) -> None:
    (host,) = hosts(1, snapd=True)
    sh(host, INSTALL)
    template = "/var/snap/microk8s/current/certs/csr.conf.template"
    text = host.read(template) or ""
    assert "#MOREIPS" in text
    host.write(template, text.replace("#MOREIPS", "DNS.6 = edge.example.org\n#MOREIPS"))
    before = add_node(host)["token"].split("/")[1]
    out = sh(host, "microk8s refresh-certs --cert server.crt")
    assert "Creating new certificates" in out
    cert = x509.load_pem_x509_certificate(
        (host.read("/var/snap/microk8s/current/certs/server.crt") or "").encode()
    )
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "edge.example.org" in sans.get_values_for_type(x509.DNSName)
    assert host.address in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert add_node(host)["token"].split("/")[1] != before  # the fingerprint follows the cert
    assert host.calls("microk8s")[-2]["argv"] == ["refresh-certs", "--cert", "server.crt"]


def test_nvidia_smi_with_and_without_gpus(hosts) -> None:
    gpu_host, plain = hosts(2, gpus=2)[0], hosts(1)[0]
    listing = sh(gpu_host, "nvidia-smi -L").splitlines()
    assert len(listing) == 2
    assert listing[0].startswith("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-")
    query = "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader"
    assert sh(gpu_host, query).splitlines() == ["NVIDIA A100-SXM4-40GB, 550.127.08, 40960 MiB"] * 2
    header = sh(gpu_host, "nvidia-smi --query-gpu=name,memory.total --format=csv,nounits")
    assert (
        header.splitlines() == ["name, memory.total [MiB]"] + ["NVIDIA A100-SXM4-40GB, 40960"] * 2
    )
    assert gpu_host.run("nvidia-smi --query-gpu=bogus --format=csv").returncode == 2
    assert plain.run("nvidia-smi -L").returncode == 127
    plain.set_gpus(1, "Tesla T4")
    assert (
        sh(plain, "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader")
        == "Tesla T4, 15360 MiB\n"
    )
    plain.set_gpus(0)
    assert plain.run("nvidia-smi").returncode == 127


def test_ufw_rules_for_cni0(hosts) -> None:
    inactive, active = hosts(1, ufw=True)[0], hosts(1, ufw_active=True)[0]
    assert sh(inactive, "ufw status") == "Status: inactive\n"
    for host in (inactive, active):
        assert sh(host, "ufw allow in on cni0") == "Rules updated\nRules updated (v6)\n"
        sh(host, "ufw allow out on cni0")
        assert sh(host, "ufw default allow routed") == (
            "Default routed policy changed to 'allow'\n(be sure to update your rules accordingly)\n"
        )
    assert sh(active, "ufw allow in on cni0") == (
        "Skipping adding existing rule\nSkipping adding existing rule (v6)\n"
    )
    status = sh(active, "ufw status").splitlines()
    assert status[0] == "Status: active"
    rows = [" ".join(line.split()) for line in status[2:] if line.strip()]
    assert "Anywhere on cni0 ALLOW Anywhere" in rows
    assert "Anywhere ALLOW OUT Anywhere on cni0" in rows
    assert "Anywhere (v6) on cni0 ALLOW Anywhere (v6)" in rows
    assert "allow (routed)" in sh(active, "ufw status verbose")
    assert active.ufw_state()["defaults"]["routed"] == "allow"
    assert sh(inactive, "ufw status") == "Status: inactive\n"
    assert len(inactive.ufw_state()["rules"]) == 2
    assert active.run("ufw status", user="nobody").returncode == 1


def wg0_conf(
    host: TestHost,
    peer: TestHost,
    keys: dict[str, tuple[str, str]],
    tunnel: dict[str, str],
    extra: str = "",
) -> str:
    return (
        f"[Interface]\nAddress = {tunnel[host.name]}/24\nListenPort = 51820\n"
        f"PrivateKey = {keys[host.name][0]}\n{extra}\n[Peer]\nPublicKey = {keys[peer.name][1]}\n"
        f"AllowedIPs = {tunnel[peer.name]}/32\nEndpoint = {peer.address}:51820\n"
        "PersistentKeepalive = 25\n"
    )


def tcp_over_tunnel(client: TestHost, server: TestHost, address: str, port: int) -> str:
    """TCP over the tunnel: a listener on the server's wg0 address only, one connection."""
    server.run(
        f'python3 -c \'import socket; s=socket.create_server(("{address}", {port})); '
        f'c,_=s.accept(); c.sendall(b"over-wg0"); c.close()\' >/dev/null 2>&1 &'
    )
    probe = (
        "python3 -c 'import socket,time\n"
        "for _ in range(100):\n"
        "    try:\n"
        f'        print(socket.create_connection(("{address}", {port}), 2).recv(16).decode()); break\n'
        "    except OSError: time.sleep(0.05)'"
    )
    return sh(client, probe).strip()


def test_wireguard_tunnel_between_two_hosts(hosts) -> None:
    """wg-quick@wg0 through the systemctl stand-in, as on a Debian VM with wireguard-tools."""
    reason = wireguard_skip_reason()
    if reason:
        pytest.skip(reason)
    first, second = hosts(2)
    keys = {}
    for host in (first, second):
        private = sh(host, "umask 077; wg genkey | tee /etc/wireguard/private.key").strip()
        keys[host.name] = (private, sh(host, "wg pubkey < /etc/wireguard/private.key").strip())
    tunnel = {first.name: "10.99.0.1", second.name: "10.99.0.2"}
    for host, peer in ((first, second), (second, first)):
        host.write("/etc/wireguard/wg0.conf", wg0_conf(host, peer, keys, tunnel), 0o600)
        assert host.run("systemctl is-active wg-quick@wg0").stdout == "inactive\n"
        up = host.run("systemctl enable --now wg-quick@wg0")
        assert up.returncode == 0, up.stderr
        assert up.stderr == (
            "Created symlink /etc/systemd/system/multi-user.target.wants/wg-quick@wg0.service"
            " \u2192 /lib/systemd/system/wg-quick@.service.\n"
        )
        assert sh(host, "systemctl is-active wg-quick@wg0") == "active\n"
        assert sh(host, "systemctl is-enabled wg-quick@wg0") == "enabled\n"
        assert sh(host, "systemctl show -p SubState --value wg-quick@wg0") == "exited\n"
        log = sh(host, "journalctl -u wg-quick@wg0")
        assert "wireguard-go wg0" in log and "wg-quick[" in log
        assert (
            "systemd[1]: Finished wg-quick@wg0.service - WireGuard via wg-quick(8) for wg0." in log
        )
    assert tcp_over_tunnel(first, second, "10.99.0.2", 7000) == "over-wg0"
    shown = sh(first, "wg show wg0 latest-handshakes").split()
    assert shown[0] == keys[second.name][1] and int(shown[1]) > 0
    assert "10.99.0.1/24" in sh(first, "ip -4 addr show wg0")

    # a config change takes effect on restart (ExecStop, then ExecStart)
    first.write(
        "/etc/wireguard/wg0.conf", wg0_conf(first, second, keys, tunnel, "MTU = 1380\n"), 0o600
    )
    assert " mtu 1380 " not in sh(first, "ip link show wg0")
    sh(first, "systemctl restart wg-quick@wg0")
    assert sh(first, "systemctl is-active wg-quick@wg0") == "active\n"
    assert " mtu 1380 " in sh(first, "ip link show wg0")
    assert first.unit("wg-quick@wg0.service")["restarts"] == 1
    assert tcp_over_tunnel(second, first, "10.99.0.1", 7001) == "over-wg0"

    # stop takes wg0 down; a start without a config fails like systemd
    sh(first, "systemctl stop wg-quick@wg0")
    assert first.run("ip link show wg0").returncode != 0
    assert first.run("systemctl is-active wg-quick@wg0").stdout == "inactive\n"
    first.run("rm /etc/wireguard/wg0.conf", check=True)
    failed = first.run("systemctl start wg-quick@wg0")
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "Job for wg-quick@wg0.service failed because the control process exited with error code."
    )
    assert first.run("systemctl is-active wg-quick@wg0").stdout == "failed\n"
    assert "/etc/wireguard/wg0.conf' does not exist" in sh(first, "journalctl -u wg-quick@wg0")
    assert second.run("ip link show wg0").returncode == 0
    sh(second, "systemctl disable --now wg-quick@wg0")
    assert second.run("ip link show wg0").returncode != 0


def test_kubelet_node_ip_and_calico_autodetection(hosts) -> None:
    main, worker = hosts(2, snapd=True)
    args = "/var/snap/microk8s/current/args/kubelet"
    for host in (main, worker):
        sh(host, INSTALL)
        lines = (host.read(args) or "").splitlines()
        assert "--kubeconfig=${SNAP_DATA}/credentials/kubelet.config" in lines
        assert "--container-runtime-endpoint=${SNAP_COMMON}/run/containerd.sock" in lines
        assert not any(line.startswith("--node-ip") for line in lines)

    def internal_ips() -> dict[str, str]:
        rows = sh(main, "microk8s kubectl get nodes -o wide").splitlines()
        assert rows[0].split()[5] == "INTERNAL-IP"
        return {row.split()[0]: row.split()[5] for row in rows[1:]}

    assert internal_ips() == {main.name: main.address}
    # --node-ip counts once kubelite restarts (a written file alone changes nothing)
    main.write(args, (main.read(args) or "") + "--node-ip 10.55.0.1\n")
    assert internal_ips() == {main.name: main.address}
    assert sh(main, "snap restart microk8s.daemon-kubelite") == "Restarted.\n"
    assert internal_ips() == {main.name: "10.55.0.1"}
    # a worker that joins with --node-ip set is listed at it
    worker.write(args, (worker.read(args) or "") + "--node-ip=10.55.0.2\n")
    sh(worker, "snap restart microk8s.daemon-kubelite")
    sh(worker, f"microk8s join {add_node(main)['urls'][0]} --worker")
    assert internal_ips() == {main.name: "10.55.0.1", worker.name: "10.55.0.2"}
    items = json.loads(sh(main, "microk8s kubectl get nodes -o json"))["items"]
    assert {i["status"]["addresses"][0]["address"] for i in items} == {"10.55.0.1", "10.55.0.2"}
    assert main.address in sh(main, "microk8s status")  # dqlite keeps the host address

    get_env = (
        "microk8s kubectl -n kube-system get daemonset calico-node "
        "-o jsonpath='{.spec.template.spec.containers[0].env}'"
    )

    def autodetection() -> list[str]:
        env = json.loads(sh(main, get_env))
        return [e.get("value") for e in env if e["name"] == "IP_AUTODETECTION_METHOD"]

    assert autodetection() == ["first-found"]
    set_env = (
        "microk8s kubectl -n kube-system set env daemonset/calico-node "
        "IP_AUTODETECTION_METHOD=kubernetes-internal-ip"
    )
    assert sh(main, set_env) == "daemonset.apps/calico-node env updated\n"
    assert autodetection() == ["kubernetes-internal-ip"]
    generation = "-o jsonpath='{.metadata.generation}'"
    daemonset = "microk8s kubectl get ds calico-node -n kube-system"
    assert sh(main, f"{daemonset} {generation}") == "2"
    sh(main, set_env)  # the same value again: no new rollout
    assert sh(main, f"{daemonset} {generation}") == "2"
    whole = json.loads(sh(main, f"{daemonset} -o json"))
    assert whole["status"]["desiredNumberScheduled"] == 2
    table = sh(main, daemonset).splitlines()
    assert table[0].split()[:3] == ["NAME", "DESIRED", "CURRENT"] and "calico-node" in table[1]
    missing = main.run("microk8s kubectl get daemonset calico-node")  # not in default
    assert missing.returncode == 1
    assert (
        missing.stderr == 'Error from server (NotFound): daemonsets.apps "calico-node" not found\n'
    )
    on_worker = worker.run(set_env)
    assert on_worker.returncode == 0 and "acting as a node in a cluster" in on_worker.stdout
    assert (
        main.lab.microk8s_cluster(main)["daemonsets"]["kube-system/calico-node"]["generation"] == 2
    )
