"""The test-host harness itself: hosts, SSH, isolation, faults, stand-ins, teardown."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import paramiko
import pytest
import yaml
from cryptography import x509

from tests.harness import K3S_DEFAULT_VERSION, HostLab, TestHost, k3s_binary

pytest_plugins = ["tests.conftest_hosts"]


def ssh_run(host: TestHost, command: str, user: str | None = None, **kwargs: object) -> str:
    with host.connect(user) as connection:
        kwargs.setdefault("in_stream", False)
        return str(connection.run(command, hide=True, **kwargs).stdout)


def wait_for(condition: object, what: str, timeout_s: float = 15.0) -> None:
    """Poll `condition()` (bounded) until it holds: k3s agents join in the background."""
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def tcp_connect(address: str, port: int, timeout: float) -> bytes:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        return sock.recv(64)


def test_three_hosts_answer_ssh_each_on_its_own_address(hosts) -> None:
    lab_hosts = hosts(3)
    lab = lab_hosts[0].lab
    names = set()
    for host in lab_hosts:
        client = paramiko.SSHClient()
        client.get_host_keys().add(host.address, "ssh-ed25519", host.host_key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            host.address,
            username="root",
            pkey=lab.client_key,
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
        try:
            seen = client.get_transport().get_remote_server_key()
            digest = base64.b64encode(hashlib.sha256(seen.asbytes()).digest()).decode()
            assert "SHA256:" + digest.rstrip("=") == host.host_key_fingerprint
            _, out, _ = client.exec_command("hostname; ss -Hltn")
            hostname, *listening = out.read().decode().splitlines()
        finally:
            client.close()
        names.add(hostname)
        assert hostname == host.name
        assert [line.split()[3] for line in listening] == [f"{host.address}:22"]
    assert len(names) == 3
    assert len({h.address for h in lab_hosts}) == 3
    known = lab.known_hosts_path.read_text().splitlines()
    assert [h.host_key_line for h in lab_hosts] == known
    # root login by password is impossible; the key is the only way in
    config = (lab_hosts[0].dir / "sshd_config").read_text()
    assert "PermitRootLogin prohibit-password" in config
    assert "PasswordAuthentication no" in config


def test_files_stay_private_to_their_host(hosts) -> None:
    first, second = hosts(2)
    marker = f"hubfleet-harness-{os.getpid()}"
    real_fstab = Path("/etc/fstab").read_bytes()
    first.write(f"/etc/rancher/k3s/{marker}", "one\n", 0o600)
    first.write(f"/var/lib/rancher/{marker}", "one\n")
    first.write(f"/usr/local/bin/{marker}", "#!/bin/sh\n", 0o755)
    first.run(
        f"echo '# {marker}' >> /etc/fstab && sed -i 's/{marker}/{marker}-edited/' /etc/fstab",
        check=True,
    )
    assert first.read(f"/etc/rancher/k3s/{marker}") == "one\n"
    assert first.run(f"stat -c %a /etc/rancher/k3s/{marker}").stdout.strip() == "600"
    assert f"{marker}-edited" in (first.read("/etc/fstab") or "")
    for path in (
        f"/etc/rancher/k3s/{marker}",
        f"/var/lib/rancher/{marker}",
        f"/usr/local/bin/{marker}",
    ):
        assert second.read(path) is None
        assert not os.path.exists(path)
    assert marker not in (second.read("/etc/fstab") or "")
    assert Path("/etc/fstab").read_bytes() == real_fstab
    # everything else of the real machine is read-only inside a host
    denied = first.run(f"touch /{marker}; echo x > /work/{marker}")
    assert denied.stderr.count("Read-only file system") == 2
    first.run(f"touch /usr/share/{marker}", check=True)  # /usr, /etc, /var: private overlays
    assert not os.path.exists(f"/usr/share/{marker}")
    assert first.run("command -v kubectl").returncode != 0  # the machine's own is hidden
    assert first.run("echo 1 > /proc/sys/fs/inotify/max_user_watches").returncode != 0
    assert first.run("test -b /dev/vda || test -b /dev/sda").returncode != 0
    assert first.run("reboot").returncode == 1
    # a host has its own pid namespace: it cannot see or signal this machine's processes
    assert first.run(f"kill -0 {os.getpid()}").returncode != 0
    assert "python3" in first.run("cat /proc/1/cmdline").stdout  # the host's init


def test_hosts_reach_each_other_over_the_bridge(hosts) -> None:
    first, second = hosts(2)
    probe = (
        "python3 -c 'import socket,sys; s=socket.create_connection((sys.argv[1], 22), 3); "
        "print(s.recv(64).decode().strip())' "
    )
    by_address = first.run(probe + second.address, check=True).stdout
    by_name = second.run(probe + first.name, check=True).stdout
    assert by_address.startswith("SSH-2.0-OpenSSH")
    assert by_name.startswith("SSH-2.0-OpenSSH")
    assert first.run("ip route").stdout.count("default") == 0


def test_sshd_stop_start_and_broken_sessions(lab_host) -> None:
    host = lab_host
    fingerprint = host.host_key_fingerprint
    with host.connect() as live:
        live.run("true", hide=True, in_stream=False)
        host.stop_sshd()
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            tcp_connect(host.address, 22, timeout=2)
        assert time.monotonic() - started < 1
        assert (
            live.run("echo still", hide=True, in_stream=False).stdout == "still\n"
        )  # like `systemctl stop ssh`
        host.start_sshd()
        assert ssh_run(host, "hostname").strip() == host.name
        assert host.host_key_fingerprint == fingerprint
        assert host.kill_sshd_sessions() >= 1
        with pytest.raises(Exception):  # noqa: B017 (paramiko or socket, whichever notices first)
            live.run("true", hide=True, in_stream=False)
    assert ssh_run(host, "echo back").strip() == "back"


def test_link_down_makes_connects_time_out(lab_host) -> None:
    host = lab_host
    tcp_connect(host.address, 22, timeout=2)
    host.link_down()
    started = time.monotonic()
    with pytest.raises(OSError):
        tcp_connect(host.address, 22, timeout=0.5)
    assert time.monotonic() - started < 1.5
    host.link_up()
    for _ in range(50):  # the link comes back within a few ms
        try:
            banner = tcp_connect(host.address, 22, timeout=0.5)
            break
        except OSError:
            time.sleep(0.02)
    assert banner.startswith(b"SSH-2.0-")


def test_fill_disk_gives_enospc_until_freed(lab_host) -> None:
    host = lab_host
    mount = host.fill_disk("/var/lib/rancher/k3s/server")
    assert mount == "/var/lib/rancher"
    failed = host.run("mkdir -p /var/lib/rancher/k3s && echo x > /var/lib/rancher/k3s/f")
    assert failed.returncode != 0
    assert "No space left on device" in failed.stderr
    assert host.run("echo x > /tmp/still-fine", check=True).returncode == 0
    host.free_disk("/var/lib/rancher")
    host.run("mkdir -p /var/lib/rancher/k3s && echo x > /var/lib/rancher/k3s/f", check=True)
    assert "64M" in host.run("df -h --output=size /var/lib/rancher").stdout
    # /etc is an overlay: filling it fills its private upper tmpfs
    host.fill_disk("/etc/fstab")
    assert "No space left" in host.run("echo x >> /etc/fstab").stderr
    host.free_disk("/etc/fstab")
    host.run("echo '# ok' >> /etc/fstab", check=True)


def test_latency_proxy_adds_the_delay_to_each_round_trip(host_lab: HostLab) -> None:
    host = host_lab.add_host()
    delay_ms = 40
    address, port = host_lab.latency_proxy(host, delay_ms)

    def per_command(connection_address: str | None, connection_port: int | None) -> float:
        with host.connect(address=connection_address, port=connection_port) as connection:
            connection.run("true", hide=True, in_stream=False)
            started = time.monotonic()
            for _ in range(4):
                connection.run("true", hide=True, in_stream=False)
            return (time.monotonic() - started) / 4

    direct = per_command(None, None)
    delayed = per_command(address, port)
    added = delayed - direct
    # a command is a few round trips (channel open, exec, exit status and close)
    assert delay_ms / 1000 * 0.9 < added < delay_ms / 1000 * 6, (direct, delayed)


def test_add_disk_takes_xfs_inside_the_host(lab_host) -> None:
    host = lab_host
    device = host.add_disk(size_mb=400)
    assert device.startswith("/dev/loop")
    script = (
        f"set -e; parted -s {device} mklabel gpt mkpart dind xfs 0% 100%; "
        f"partprobe {device} 2>/dev/null || true; "
        f"for i in $(seq 50); do test -b {device}p1 && break; sleep 0.1; done; "
        f"mkfs.xfs -f -q {device}p1; blkid -o value -s TYPE {device}p1; "
        f"mkdir -p /mnt/disk; mount {device}p1 /mnt/disk; echo data > /mnt/disk/f; "
        "df --output=fstype /mnt/disk | tail -n 1"
    )
    out = host.run(script, check=True).stdout.split()
    assert out == ["xfs", "xfs"]
    assert "/mnt/disk" not in Path("/proc/self/mounts").read_text()


def test_k3s_server_then_agents(hosts) -> None:
    server, agent, stranger = hosts(3)
    server.write(
        "/etc/rancher/k3s/config.yaml",
        yaml.safe_dump({"tls-san": ["edge.example.org"], "node-label": ["tier=edge"]}),
        0o600,
    )
    agent.write("/etc/rancher/k3s/config.yaml", yaml.safe_dump({}), 0o600)  # "{}"
    out = ssh_run(
        server,
        f"curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION={K3S_DEFAULT_VERSION} "
        "sh -s - server --disable=traefik",
    )
    assert "systemd: Starting k3s" in out
    assert server.run("k3s --version").stdout.startswith(f"k3s version {K3S_DEFAULT_VERSION} (")
    assert server.unit("k3s")["active"] == "active"
    assert server.run("stat -c %a /etc/rancher/k3s/k3s.yaml").stdout.strip() == "600"
    kubeconfig = yaml.safe_load(server.read("/etc/rancher/k3s/k3s.yaml") or "")
    assert kubeconfig["current-context"] == "default"
    assert kubeconfig["clusters"][0]["name"] == "default"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert kubeconfig["contexts"][0] == {
        "context": {"cluster": "default", "user": "default"},
        "name": "default",
    }
    user = kubeconfig["users"][0]["user"]
    ca = x509.load_pem_x509_certificate(
        base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
    )
    client, client_ca = x509.load_pem_x509_certificates(
        base64.b64decode(user["client-certificate-data"])
    )
    assert (client.not_valid_after_utc - client.not_valid_before_utc).days == 365
    assert client.issuer == client_ca.subject
    assert "system:admin" in client.subject.rfc4514_string()
    assert "k3s-server-ca" in ca.subject.rfc4514_string()
    assert base64.b64decode(user["client-key-data"]).startswith(b"-----BEGIN PRIVATE KEY-----")
    token = (server.read("/var/lib/rancher/k3s/server/token") or "").strip()
    assert re.fullmatch(r"K10[0-9a-f]{64}::server:[0-9a-f]{32}", token)
    assert server.read("/var/lib/rancher/k3s/server/node-token") == token + "\n"
    assert not server.exists("/var/lib/rancher/k3s/server/manifests/traefik.yaml")
    assert server.exists("/var/lib/rancher/k3s/server/manifests/coredns.yaml")
    serving = x509.load_pem_x509_certificate(
        (server.read("/var/lib/rancher/k3s/server/tls/serving-kube-apiserver.crt") or "").encode()
    )
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "edge.example.org" in names.get_values_for_type(x509.DNSName)

    join = (  # the token travels on stdin, as hubfleet sends it
        "IFS= read -r K3S_TOKEN; export K3S_TOKEN; "
        f"curl -sfL https://get.k3s.io | K3S_URL=https://{server.address}:6443 sh -s -"
    )
    with agent.connect() as connection:
        result = connection.run(join, hide=True, in_stream=_stdin(token))
    assert agent.unit("k3s-agent")["active"] == "active"  # Type=exec: started, joins meanwhile
    wait_for(lambda: "host2" in server.run("k3s kubectl get nodes").stdout, "host2 to register")
    install = agent.calls("install.sh")[-1]
    assert install["env"]["K3S_TOKEN"] == "<hidden>"
    assert install["env"]["K3S_URL"] == f"https://{server.address}:6443"
    assert token not in json.dumps(agent.calls())
    assert "Starting k3s-agent" in result.stdout

    # as get.k3s.io: the agent's install succeeds at once (Type=exec), its unit fails after
    wrong = stranger.run(
        f"curl -sfL https://get.k3s.io | K3S_URL=https://{server.address}:6443 "
        f"K3S_TOKEN=K10{'0' * 64}::server:{'1' * 32} sh -s -"
    )
    assert wrong.returncode == 0
    wait_for(lambda: stranger.unit("k3s-agent")["active"] == "failed", "the agent to fail")
    assert "token CA hash does not match" in stranger.run("journalctl -u k3s-agent").stdout
    bad_secret = token.rsplit(":", 1)[0] + ":" + "f" * 32
    stranger.run(
        f"K3S_URL=https://{server.address}:6443 K3S_TOKEN={bad_secret} sh /run/hubfleet-standins/get.k3s.io"
    )
    wait_for(
        lambda: "401 Unauthorized" in stranger.run("journalctl -u k3s-agent").stdout,
        "the agent's 401",
    )

    table = server.run("k3s kubectl get nodes", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"host1", "host2"}
    assert rows["host1"][1:3] == ["Ready", "control-plane,master"]
    assert rows["host2"][1:3] == ["Ready", "<none>"]
    nodes = json.loads(server.run("k3s kubectl get nodes -o json", check=True).stdout)
    labels = {i["metadata"]["name"]: i["metadata"]["labels"] for i in nodes["items"]}
    assert labels["host1"]["tier"] == "edge"
    assert labels["host1"]["node-role.kubernetes.io/control-plane"] == "true"
    assert {i["status"]["nodeInfo"]["kubeletVersion"] for i in nodes["items"]} == {
        K3S_DEFAULT_VERSION
    }
    assert all(
        {"type": "Ready", "status": "True"}.items() <= c.items()
        for i in nodes["items"]
        for c in i["status"]["conditions"]
        if c["type"] == "Ready"
    )

    # the same install again changes nothing and restarts nothing (as get.k3s.io does)
    restarts = server.unit("k3s")["restarts"]
    again = ssh_run(
        server,
        f"curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION={K3S_DEFAULT_VERSION} sh -s - server --disable=traefik",
    )
    assert "No change detected so skipping service start" in again
    assert server.unit("k3s")["restarts"] == restarts

    # a node kept NotReady; a stopped agent leaves the list; an agent has no kubeconfig
    agent.set_node_ready(False)
    assert "NotReady" in server.run("kubectl get nodes host2").stdout
    agent.run("systemctl stop k3s-agent", check=True)
    assert "host2" not in server.run("k3s kubectl get nodes").stdout
    refused = agent.run("k3s kubectl get nodes")
    assert "localhost:8080 was refused" in refused.stderr


def test_k3s_airgap_needs_the_binary_first(lab_host) -> None:
    host = lab_host
    host.write(
        "/usr/local/bin/k3s-install.sh",
        (host.lab.dir / "standins" / "get.k3s.io").read_text(),
        0o755,
    )
    missing = host.run("INSTALL_K3S_SKIP_DOWNLOAD=true sh /usr/local/bin/k3s-install.sh")
    assert missing.returncode == 1
    assert "Executable k3s binary not found at /usr/local/bin/k3s" in missing.stderr
    host.write("/usr/local/bin/k3s", k3s_binary("v1.31.9+k3s1"), 0o755)
    host.run("INSTALL_K3S_SKIP_DOWNLOAD=true sh /usr/local/bin/k3s-install.sh", check=True)
    assert "v1.31.9+k3s1" in host.run("k3s --version").stdout
    assert "v1.31.9+k3s1" in host.run("kubectl get nodes").stdout
    host.run("k3s-uninstall.sh", check=True)
    assert not host.exists("/usr/local/bin/k3s")
    assert not host.exists("/etc/rancher/k3s")


def test_sudo_user_logs_in_and_becomes_root(hosts) -> None:
    (host,) = hosts(1, user="ops")
    assert host.user == "ops"
    assert ssh_run(host, "id -un; sudo -n id -u").split() == ["ops", "0"]
    assert ssh_run(host, "id -un", user="root").strip() == "root"
    assert host.run("test -d /home/ops && id -u ops", check=True).stdout.strip().isdigit()
    assert (
        "Interactive authentication required"
        in host.run("systemctl restart ssh", user="ops").stderr
    )


def test_stand_ins_and_faked_facts(hosts) -> None:
    (host,) = hosts(1, mem_gb=8, cpus=4, os_release="ubuntu-24.04", time_synced=False, disk_gb=40)
    facts = host.run(
        ". /etc/os-release; echo $ID $VERSION_ID; nproc; awk '/^MemTotal:/ {print $2}' /proc/meminfo; "
        "timedatectl show -p NTPSynchronized --value; df -Pk /var/lib/rancher | awk 'NR==2 {print $2}'",
        check=True,
    ).stdout.split()
    assert facts == ["ubuntu", "24.04", "4", str(8 * 1024 * 1024), "no", str(40 * 1024 * 1024)]
    host.set_time_synced(True)
    assert host.run("timedatectl show -p NTPSynchronized --value").stdout == "yes\n"
    real = Path("/proc/sys/fs/inotify/max_user_instances").read_text().strip()
    assert host.run("sysctl -n fs.inotify.max_user_instances").stdout.strip() == real
    host.write("/etc/sysctl.d/90-test.conf", "fs.inotify.max_user_instances = 8192\n")
    assert (
        host.run("sysctl -p /etc/sysctl.d/90-test.conf", check=True).stdout
        == "fs.inotify.max_user_instances = 8192\n"
    )
    assert "* Applying /etc/sysctl.d/90-test.conf ..." in host.run("sysctl --system").stdout
    assert host.run("sysctl -n fs.inotify.max_user_instances").stdout == "8192\n"
    assert Path("/proc/sys/fs/inotify/max_user_instances").read_text().strip() == real
    assert host.run("sysctl -w no.such.key=1").returncode == 1
    assert host.run("curl -sf https://example.org").returncode == 6
    host.write(
        "/etc/systemd/system/demo.service",
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    )
    host.run(
        "systemctl daemon-reload && systemctl enable --now demo && systemctl restart demo",
        check=True,
    )
    assert host.run("systemctl is-active demo; systemctl is-enabled demo").stdout.split() == [
        "active",
        "enabled",
    ]
    assert host.unit("demo")["restarts"] == 1
    calls = [c["argv"] for c in host.calls("systemctl")]
    assert ["enable", "--now", "demo"] in calls
    assert host.calls("sysctl")[0]["uid"] == 0


def test_systemctl_runs_oneshot_template_units(hosts) -> None:
    """An instance of a template unit (name@.service) with %i/%I; Type=oneshot runs for real."""
    (host,) = hosts(1)
    host.write(
        "/etc/systemd/system/demo@.service",
        "[Unit]\nDescription=Demo for %I\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        "Environment=WHO=%i\nExecStartPre=-/bin/false\n"
        "ExecStart=/bin/sh -c 'echo start $WHO %I >> /root/demo.log; test ! -e /root/fail'\n"
        "ExecStop=/bin/sh -c 'echo stop %i >> /root/demo.log'\n"
        "[Install]\nWantedBy=multi-user.target\n",
    )
    out = host.run("systemctl enable --now demo@a-b", check=True)
    assert "multi-user.target.wants/demo@a-b.service \u2192 /etc/systemd/system/demo@.service" in (
        out.stderr
    )
    assert host.run("systemctl is-active demo@a-b").stdout == "active\n"
    assert host.run("systemctl is-active demo@other").stdout == "inactive\n"
    host.run("systemctl restart demo@a-b.service && systemctl stop demo@a-b", check=True)
    host.run("systemctl stop demo@a-b", check=True)  # already stopped: ExecStop does not run
    assert host.read("/root/demo.log") == ("start a-b a/b\nstop a-b\nstart a-b a/b\nstop a-b\n")
    assert host.run("systemctl is-active demo@a-b").stdout == "inactive\n"
    host.write("/root/fail", "")
    failed = host.run("systemctl start demo@a-b")
    assert failed.returncode == 1
    assert failed.stderr == (
        "Job for demo@a-b.service failed because the control process exited with error code.\n"
        'See "systemctl status demo@a-b.service" and "journalctl -xeu demo@a-b.service" for'
        " details.\n"
    )
    assert host.run("systemctl is-active demo@a-b").stdout == "failed\n"
    log = host.run("journalctl -u demo@a-b", check=True).stdout
    assert "systemd[1]: Failed to start demo@a-b.service - Demo for a/b." in log
    assert "status=1/FAILURE" in log
    assert host.run("systemctl start nothing@x").returncode == 5


def test_teardown_leaves_nothing_behind() -> None:
    from tests.harness import skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with HostLab(n=2) as lab, HostLab(n=1) as other:
        assert lab.subnet != other.subnet and lab.bridge != other.bridge
        first = lab.hosts[0]
        device = first.add_disk(64)
        lab.latency_proxy(first, 5)
        first.run("setsid sleep 300 > /dev/null 2>&1 < /dev/null &")
        session = first.connect()
        session.run("true", hide=True, in_stream=False)
        pids = [(p, _started(p)) for h in lab.hosts for p in h.pids()]
        names = [h.netns for h in lab.hosts]
        links = [lab.bridge, *(h.veth for h in lab.hosts)]
        lab_dir = lab.dir
        assert len(pids) >= 5
    session.close()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    link_names = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert not [n for n in names if n in netns]
    assert not [name for name in links if re.search(rf"\b{re.escape(name)}[@:]", link_names)]
    assert [line for line in loops.splitlines() if str(lab_dir) in line] == []
    assert device.startswith("/dev/loop")
    assert not lab_dir.exists()
    assert [pid for pid, started in pids if _running(pid, started)] == []


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _started(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if fields else ""


def _running(pid: int, started: str) -> bool:
    """The same process (pids are reused), alive and not a zombie (init reaps in its time)."""
    fields = _stat(pid)
    return bool(fields) and fields[19] == started and fields[0] != "Z"


def _stdin(text: str) -> object:
    import io

    return io.StringIO(text + "\n")
