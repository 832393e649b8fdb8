"""Test hosts for hubfleet's host steps: Linux namespaces that look like small VMs over SSH.

A `HostLab` owns a bridge in the root network namespace (with an address of its own, so this
process can connect) and any number of `TestHost`s. Each host is:

- a network namespace with a veth into the lab's bridge and one IPv4 address on a /24 that no
  route or address of this machine uses (hosts reach each other and this process, nothing
  else: they have no default route, and IPv6 is off on every lab link);
- a UTS namespace (its own hostname), a PID namespace (its own init, which reaps orphans; a
  host cannot see or signal this machine's processes) and a mount namespace in which the real
  root is read-only and everything a host may write is private: /etc, /var and /usr are
  overlays on tmpfs (so /etc/fstab, /etc/passwd, /etc/sudoers.d, ... are private copies that
  rename-over writes work on), and /run, /tmp, /root, /home, /mnt, /opt, /srv, /dev/shm,
  /usr/local/bin, /etc/rancher, /etc/sysctl.d, /etc/systemd/system, /etc/wireguard,
  /var/lib/rancher, /var/snap, /var/log and /var/lib/hubfleet-standin are tmpfs of their own
  (64 MiB by default). Guards: the real machine's disks are hidden (a read-only empty file is
  bound over each non-loop block device), /proc/sys and /dev are read-only, /usr/bin/systemctl
  (also reboot, poweroff, halt, shutdown) is always the stand-in, and the machine's own
  Kubernetes tools (HIDDEN_COMMANDS, e.g. a kubectl in /usr/bin) are removed, as on a fresh VM;
- the real OpenSSH sshd on the host's address, port 22, with a host key made for it, root login
  by the lab's client key (`PermitRootLogin prohibit-password`, `UsePAM no`).

The stand-ins in tests/standins/ (systemctl, sysctl, timedatectl, journalctl, curl, modprobe,
nproc, k3s and the k3s install script; snap, microk8s, ufw, nvidia-smi for MicroK8s hosts) are
bound read-only at /run/hubfleet-standins in every host and copied to /usr/local/bin
(`HostOptions.standins`, `TestHost.install_standins`); they keep their state in
/var/lib/hubfleet-standin and log every call to /var/lib/hubfleet-standin/calls.log
(`TestHost.calls`). Hosts of a lab share /var/lib/hubfleet-lab, which plays the network between
k3s servers and agents, and between MicroK8s nodes (add-node tokens, joins, addons).

WireGuard is real: wireguard-tools' wg-quick falls back to wireguard-go (the kernel here has no
wireguard module) on /dev/net/tun, which works inside a host; `wireguard_skip_reason()` says
when it cannot.

Teardown (`close`, also from `__exit__` and atexit) kills only the processes inside the lab's
own namespaces, then detaches its loop devices and deletes its veths, namespaces, bridge and
temp dir. Needs root and `ip netns`; `skip_reason()` says why not, in one line.

The public face of the harness: import from here. The code lives in harness_lab.py (HostLab),
harness_host.py (TestHost, its sshd and faults), harness_setup.py (HostOptions, the host's init
program, sshd config, stand-in artefacts), harness_proxy.py (the latency proxy), harness_net.py
(tools, processes, subnets, skip reasons) and harness_teardown.py (loop devices, stale labs).
Core modules: no pytest here, so scripts under bench/ can use them too (see conftest_hosts.py).
"""

from __future__ import annotations

from hubfleet.hosts.ssh import new_ed25519_key
from tests.harness_host import TestHost, fingerprint_of
from tests.harness_lab import HostLab, host_lab
from tests.harness_net import LabError, skip_reason, wireguard_skip_reason
from tests.harness_proxy import DelayProxy
from tests.harness_setup import (
    DEFAULT_STANDINS,
    HIDDEN_COMMANDS,
    K3S_DEFAULT_VERSION,
    OS_RELEASES,
    HostOptions,
    k3s_binary,
    k3s_install_script,
)
from tests.harness_teardown import cleanup_stale_labs

__all__ = [
    "DEFAULT_STANDINS",
    "HIDDEN_COMMANDS",
    "K3S_DEFAULT_VERSION",
    "OS_RELEASES",
    "DelayProxy",
    "HostLab",
    "HostOptions",
    "LabError",
    "TestHost",
    "cleanup_stale_labs",
    "fingerprint_of",
    "host_lab",
    "k3s_binary",
    "k3s_install_script",
    "new_ed25519_key",
    "skip_reason",
    "wireguard_skip_reason",
]
