"""Host steps every self-hosted member needs, whatever its Kubernetes: preflight, the
operators' key, kernel limits, and the Docker-in-Docker disk.

Each is `action(context, dry_run) -> Outcome`: check first (one round trip where possible),
then change only what differs (one more), never restarting anything it did not change.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from hubfleet.errors import HubfleetError
from hubfleet.hosts.facts import preflight_problems
from hubfleet.hosts.ssh import new_ed25519_key, private_key_from_text, public_line
from hubfleet.hosts.steps import Outcome

if TYPE_CHECKING:
    from hubfleet.hosts.member_run import HostContext, MemberRun

ROOT_AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
DIND_MOUNT = "/mnt/disk"


def preflight(context: HostContext, dry_run: bool) -> Outcome:
    """The facts were gathered when the run began; here they are judged."""
    facts = context.facts
    problems = preflight_problems(facts, k3s_running=bool(facts.kubernetes))
    if problems:
        raise HubfleetError(f"{context.session.label}: preflight failed: {'; '.join(problems)}")
    return Outcome.ok(
        f"{facts.os_name}, {facts.arch}, {facts.cpus} CPUs, {facts.ram_gb} GB RAM, "
        f"{facts.disk_free_gb} GB free"
    )


def _key_id(line: str) -> tuple[str, str] | None:
    parts = line.split()
    for i, part in enumerate(parts[:-1]):
        if part.startswith(("ssh-", "ecdsa-", "sk-")):
            return part, parts[i + 1]
    return None


def operators_key(context: HostContext, dry_run: bool) -> Outcome:
    """The member's own ed25519 key exists (sops-encrypted in the repo, public half beside
    it) and root on this host accepts it; other authorized_keys lines are left alone."""
    from hubfleet.hosts.member_run import member_key_path
    from hubfleet.secrets import sops

    run = context.run
    changes: list[str] = []
    path = member_key_path(context.repo, context.member.name)
    with run.lock:  # one key per member, made once even when hosts run in parallel
        if run.key_text is None and path.is_file():
            run.key_text = sops.decrypt(context.repo, path)
        if run.key_text is None:
            prepared = None if dry_run else run.taken("operators-key")
            private, public, content = prepared or new_encrypted_key(run, dry_run)
            if dry_run:
                changes.append(f"would generate {context.repo.relative(path)}")
                public_text = public
            else:
                sops.store(path, content)
                path.with_name(path.name + ".pub").write_text(public)
                run.key_text = private
                changes.append(f"generated {context.repo.relative(path)}")
        if run.key_text is not None:
            key = private_key_from_text(run.key_text, context.repo.relative(path))
            public_text = public_line(key, f"hubfleet-{context.member.name}")
    wanted = _key_id(public_text)
    found = context.files([ROOT_AUTHORIZED_KEYS])[ROOT_AUTHORIZED_KEYS]
    current = found[0] if found else ""
    present = {_key_id(line) for line in current.splitlines()}
    if wanted not in present:
        changes.append(f"authorise it in {ROOT_AUTHORIZED_KEYS}")
        if not dry_run:
            text = current if current.endswith("\n") or not current else current + "\n"
            context.session.write_file(ROOT_AUTHORIZED_KEYS, text + public_text, 0o600, later=True)
    if not changes:
        return Outcome.ok("key authorised")
    return Outcome.changed("; ".join(changes), dry_run)


def new_encrypted_key(run: MemberRun, dry_run: bool = False) -> tuple[str, str, bytes]:
    """A new operators' key for the member: (private, public line, the private key as its
    encrypted file holds it; empty in a dry run, which encrypts nothing)."""
    from hubfleet.hosts.member_run import member_key_path
    from hubfleet.secrets import sops

    private, public = new_ed25519_key(f"hubfleet-{run.member.name}")
    if dry_run:
        return private, public, b""
    path = member_key_path(run.repo, run.member.name)
    return private, public, sops.encrypted(run.repo, path, private)


def prepare_operators_key(run: MemberRun) -> None:
    """A member without its key yet: make and encrypt one while the hosts are connected to
    (the operators-key step stores it; nothing is written before that step runs)."""
    from hubfleet.hosts.member_run import member_key_path

    if not run.options.dry_run and not member_key_path(run.repo, run.member.name).is_file():
        run.start_ahead("operators-key", lambda: new_encrypted_key(run))


def partition_of(disk: str) -> str:
    """The first partition's device: /dev/sdb -> /dev/sdb1, /dev/nvme0n1 -> /dev/nvme0n1p1."""
    return f"{disk}p1" if re.search(r"\d$", disk) else f"{disk}1"


def dind_disk(context: HostContext, dry_run: bool) -> Outcome:
    """Partition the host's blank disk, make XFS, mount it at /mnt/disk by UUID via fstab.

    A disk that already holds a filesystem hubfleet did not mount is refused unless --force.
    """
    disk = context.host.disk
    assert disk is not None
    session = context.session
    part = partition_of(disk)
    q_disk, q_part = shlex.quote(disk), shlex.quote(part)
    probe = session.run(
        f"test -b {q_disk} || {{ echo missing; exit 0; }}; "
        f"echo disk_fs=$(blkid -o value -s TYPE {q_disk} 2>/dev/null); "
        f"echo part=$(test -b {q_part} && echo yes); "
        f"echo part_fs=$(blkid -o value -s TYPE {q_part} 2>/dev/null); "
        f"echo part_uuid=$(blkid -o value -s UUID {q_part} 2>/dev/null); "
        f"echo fstab=$(awk '$2 == \"{DIND_MOUNT}\" {{print $1}}' /etc/fstab); "
        f"echo mounted=$(awk '$2 == \"{DIND_MOUNT}\" {{print $1}}' /proc/mounts)",
        what=f"inspecting {disk}",
    ).stdout
    if output_says_missing(probe):
        raise HubfleetError(f"{session.label}: disk {disk} does not exist (lsblk lists the disks)")
    facts = dict(line.partition("=")[::2] for line in probe.splitlines())
    uuid = facts.get("part_uuid", "")
    ours = bool(uuid) and facts.get("fstab") == f"UUID={uuid}"
    if ours and facts.get("part_fs") == "xfs" and facts.get("mounted"):
        return Outcome.ok(f"{part} (xfs, UUID={uuid}) mounted at {DIND_MOUNT}")
    if not ours:
        existing = facts.get("disk_fs") or facts.get("part_fs")
        if existing and not context.options.force:
            raise HubfleetError(
                f"{session.label}: disk {disk} already holds a filesystem ({existing}); "
                f"refusing to format it (rerun with --force to wipe it)"
            )
        if dry_run:
            return Outcome.changed(
                f"would partition {disk}, mkfs.xfs {part}, mount at {DIND_MOUNT}", True
            )
        script = (
            "set -e; "
            f"parted -s {q_disk} mklabel gpt mkpart dind xfs 0% 100%; "
            f"partprobe {q_disk} 2>/dev/null || true; "
            f"for i in $(seq 50); do test -b {q_part} && break; sleep 0.1; done; "
            f"mkfs.xfs -f -q {q_part}; "
            f"blkid -o value -s UUID {q_part}"
        )
        uuid = session.run(script, what=f"formatting {disk}").stdout.strip().splitlines()[-1]
        _mount_by_uuid(context, uuid)
        return Outcome.changed(f"{part} formatted xfs, UUID={uuid}, mounted at {DIND_MOUNT}", False)
    if dry_run:
        return Outcome.changed(f"would mount {part} at {DIND_MOUNT}", True)
    _mount_by_uuid(context, uuid)
    return Outcome.changed(f"mounted {part} at {DIND_MOUNT}", False)


def fstab_with_mount(fstab: str, uuid: str) -> str:
    """fstab with exactly one line for /mnt/disk, by UUID; every other line kept."""
    kept = [line for line in fstab.splitlines() if line.split()[1:2] != [DIND_MOUNT]]
    kept.append(f"UUID={uuid} {DIND_MOUNT} xfs defaults,nofail 0 2")
    return "\n".join(kept) + "\n"


def _mount_by_uuid(context: HostContext, uuid: str) -> None:
    session = context.session
    fstab = session.read_files(["/etc/fstab"])["/etc/fstab"] or ""
    wanted = fstab_with_mount(fstab, uuid)
    if wanted != fstab:
        session.write_file("/etc/fstab", wanted, 0o644)
    session.run(
        f"mkdir -p {DIND_MOUNT}; mountpoint -q {DIND_MOUNT} || mount {DIND_MOUNT}",
        what=f"mounting {DIND_MOUNT}",
    )


def output_says_missing(text: str) -> bool:
    return text.strip() == "missing"
