"""The one adapter over SSH (fabric on paramiko): connecting to a member's hosts and running
commands and file transfers on them.

- Keys: the member's operators' key, `secrets/<member>.key`, decrypted in memory into a
  paramiko key; on first contact (before that key is authorised) an identity file the
  operator names. No ssh-agent, no ~/.ssh/config, no keys looked up on their own.
- Host keys are pinned in the repo's `config/known_hosts`. An unknown key stops with its
  SHA256 fingerprint and is accepted only when the operator passes that same fingerprint (or
  says yes at a prompt); a changed key is refused.
- A non-root user works through `sudo -n`; every command is one shell script run by `sh`.
- Every command is counted per host: the bootstrap's round trips are a measured figure.
- Nothing secret goes on a command line: secret values travel on the command's stdin.
"""

from __future__ import annotations

import base64
import io
import os
import shlex
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubfleet.errors import HubfleetError
from hubfleet.hosts.hostkeys import (
    HostKeyDecision,
    HostKeyError,
    PinnedHostKeys,
    PinnedUnder,
    fingerprint,
    known_hosts_name,
    pinning_policy,
)

if TYPE_CHECKING:
    import paramiko
    from fabric import Connection

    from hubfleet.registry.members import Host

CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 900.0  # the longest a single command may run (a k3s install downloads)
KNOWN_HOSTS = Path("config/known_hosts")


class HostUnreachableError(HubfleetError):
    """The host did not answer on its SSH port."""


class KeyRefusedError(HubfleetError):
    """The host did not accept the key offered."""


class RemoteCommandError(HubfleetError):
    """A command on a host exited non-zero."""


# --- sessions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Probe:
    """Files as they are on a host ((content, mode) or None) and the output of extra checks."""

    files: dict[str, tuple[str, int] | None]
    output: str


class HostSession:
    """An open SSH connection to one host, with counted commands and file helpers."""

    def __init__(self, member: str, host: Host, connection: Connection):
        self.member = member
        self.host = host
        self.connection = connection
        self.commands = 0
        self.label = f"member {member}: host {host.address}"

    @property
    def as_root(self) -> bool:
        return self.host.user == "root"

    def run(
        self, script: str, stdin: str | None = None, check: bool = True, what: str = ""
    ) -> RemoteResult:
        """Run `script` with sh (as root: through sudo for other users) in one round trip.

        `stdin` is how secrets reach a command: never put one into `script`. A non-zero exit
        with check=True is a RemoteCommandError naming the host and `what` was being done.
        """
        command = f"sh -c {shlex.quote(script)}"
        if not self.as_root:
            command = f"sudo -n {command}"
        self.commands += 1
        try:
            code, stdout, stderr = self._exec(command, stdin)
        except (OSError, EOFError) as err:
            raise HostUnreachableError(
                f"{self.label}: connection lost ({err or type(err).__name__}); rerun to resume"
            ) from None
        except Exception as err:  # paramiko raises its own SSHException family
            if type(err).__module__.startswith("paramiko"):
                raise HostUnreachableError(
                    f"{self.label}: connection lost ({err}); rerun to resume"
                ) from None
            raise
        if code < 0:  # the channel closed without an exit status: the connection broke
            raise HostUnreachableError(f"{self.label}: connection lost; rerun to resume")
        outcome = RemoteResult(code, stdout, stderr)
        if check and not outcome.ok:
            last = (outcome.stderr.strip() or outcome.stdout.strip() or "no output").splitlines()[
                -1
            ]
            doing = f" while {what}" if what else ""
            raise RemoteCommandError(
                f"{self.label}: command failed{doing} (exit {outcome.exit_code}): {last}"
            )
        return outcome

    def _exec(self, command: str, stdin: str | None) -> tuple[int, str, str]:
        """One command on its own SSH channel: send stdin and close it, then collect stdout
        and stderr (stderr in a thread, so neither pipe can fill up and stall the other)."""
        transport = self.connection.client.get_transport()
        if transport is None or not transport.is_active():
            raise OSError("not connected")
        channel = transport.open_session(timeout=CONNECT_TIMEOUT_S)
        try:
            channel.settimeout(COMMAND_TIMEOUT_S)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            errors: list[bytes] = []
            reader = threading.Thread(
                target=lambda: errors.append(channel.makefile_stderr("rb").read()), daemon=True
            )
            reader.start()
            out = channel.makefile("rb").read()
            reader.join(COMMAND_TIMEOUT_S)
            code = channel.recv_exit_status()
        finally:
            channel.close()
        text = out.decode("utf-8", errors="replace")
        return code, text, b"".join(errors).decode("utf-8", errors="replace")

    def read_files(self, paths: list[str]) -> dict[str, str | None]:
        """The content of each file (None when absent), in one round trip, byte-exact."""
        return {p: state[0] if state else None for p, state in self.probe(paths).files.items()}

    def probe(self, paths: list[str], also: str = "") -> Probe:
        """Each file's (content, mode) and the output of the shell in `also`: one round trip,
        so a step can check everything it depends on at once."""
        parts = [
            f"if [ -f {shlex.quote(p)} ]; then printf '@@%s %s %s\\n' {i} "
            f'$(stat -c %a {shlex.quote(p)}) "$(base64 -w0 < {shlex.quote(p)})"; fi'
            for i, p in enumerate(paths)
        ]
        if also.strip():
            parts.append(also.strip())
        parts.append("true")  # a probe that finds nothing has still succeeded
        out = self.run("\n".join(parts), what="reading files").stdout
        found: dict[str, tuple[str, int] | None] = {p: None for p in paths}
        rest: list[str] = []
        for line in out.splitlines():
            if not line.startswith("@@"):
                rest.append(line)
                continue
            number, mode, encoded = [*line[2:].split(" "), "", ""][:3]
            found[paths[int(number)]] = (base64.b64decode(encoded).decode(), int(mode, 8))
        return Probe(found, "\n".join(rest))

    def write_file(self, path: str, content: str, mode: int = 0o644, then: str = "") -> None:
        """Replace `path` atomically (see write_files); `then` runs after, same round trip."""
        self.write_files([(path, content, mode)], then=then)

    def write_files(self, files: Sequence[tuple[str, str, int]], then: str = "") -> None:
        """Replace each file atomically, all in one round trip: each is written to a temp file
        beside it, then renamed over it. A full disk or any other failure leaves the old file
        (or none) and no temp file; files after a failing one are not touched. `then` is shell
        run after all are in place (e.g. applying them)."""
        parts = ["set -e; umask 077; tmp=; trap 'rm -f \"$tmp\"' EXIT"]
        stdin = b""
        for path, content, mode in files:
            data = content.encode()
            stdin += data  # contents travel on stdin, never on a command line
            quoted = shlex.quote(path)
            parts.append(
                f"mkdir -p {shlex.quote(os.path.dirname(path) or '.')}; "
                f'tmp=$(mktemp {quoted}.hubfleet.XXXXXX); head -c {len(data)} > "$tmp"; '
                f'test $(wc -c < "$tmp") -eq {len(data)}; '
                f'chmod {mode:o} "$tmp"; mv -f "$tmp" {quoted}; tmp='
            )
        if then:
            parts.append(then)
        names = ", ".join(path for path, _, _ in files)
        self.run("; ".join(parts), stdin=stdin.decode(), what=f"writing {names}")

    def fetch(self, path: str) -> str:
        """A file's content, byte-exact, in one round trip (read_files; SFTP would take five
        or six: the subsystem, its version, open, read, close)."""
        found = self.read_files([path])[path]
        if found is None:
            raise RemoteCommandError(f"{self.label}: {path} does not exist")
        return found

    def upload(self, local: Path, path: str, mode: int = 0o644) -> None:
        """Copy a local file (an air-gap artefact) to `path`, atomically, keeping `mode`."""
        directory = os.path.dirname(path)
        staging = f"/tmp/hubfleet-upload-{os.getpid()}-{threading.get_ident()}"
        self.commands += 1
        try:
            self.connection.put(str(local), remote=staging)
        except OSError as err:
            raise HostUnreachableError(
                f"{self.label}: uploading {local.name} failed ({err})"
            ) from None
        self.run(
            f"set -e; mkdir -p {shlex.quote(directory)}; chmod {mode:o} {staging}; "
            f"mv -f {staging} {shlex.quote(path)}",
            what=f"installing {path}",
        )

    def close(self) -> None:
        self.connection.close()


def connect(
    member: str,
    host: Host,
    key: paramiko.PKey,
    pinned: PinnedHostKeys,
    decision: HostKeyDecision | None = None,
    timeout_s: float = CONNECT_TIMEOUT_S,
    address: str | None = None,
    port: int | None = None,
) -> HostSession:
    """Open an SSH session to `host` with `key`, trusting only pinned host keys.

    `address`/`port` override where to connect (e.g. through a tunnel or proxy); the host
    key is still pinned under the host's own address and port.
    """
    import paramiko
    from fabric import Config, Connection

    label = f"member {member}: host {host.address}"
    target = (address or host.address, port or host.port)
    try:
        sock = socket.create_connection(target, timeout=timeout_s)
    except TimeoutError:
        raise HostUnreachableError(
            f"{label}: unreachable: no answer on port {host.port} within {timeout_s:.0f}s; "
            f"check the address, the network and that sshd runs"
        ) from None
    except OSError as err:
        raise HostUnreachableError(
            f"{label}: unreachable on port {host.port} ({err.strerror or err}); "
            f"check the address and that sshd runs"
        ) from None
    # without this, Nagle's algorithm and delayed ACKs add ~40 ms to every command
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    config = Config(lazy=True, overrides={"load_ssh_configs": False})
    connection = Connection(
        target[0],
        user=host.user,
        port=target[1],
        config=config,
        connect_timeout=int(max(1, timeout_s)),
        connect_kwargs={
            "sock": sock,
            "pkey": key,
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": timeout_s,
            "auth_timeout": timeout_s,
        },
    )
    name = known_hosts_name(host.address, host.port)
    client = connection.client
    known = pinned.load()
    for keytype, hostkey in (known.lookup(name) or {}).items():
        client.get_host_keys().add(
            known_hosts_name(address or host.address, port or host.port), keytype, hostkey
        )
    policy = pinning_policy(label, PinnedUnder(pinned, name), decision or HostKeyDecision())
    client.set_missing_host_key_policy(policy)
    try:
        connection.open()
    except HostKeyError:
        raise
    except paramiko.BadHostKeyException as err:
        raise HostKeyError(
            f"{label}: host key changed: {pinned.path.name} has {fingerprint(err.expected_key)}, "
            f"the host offers {fingerprint(err.key)}; refusing to connect (if the host was "
            f"reinstalled, remove its line from {KNOWN_HOSTS} and check the new key)"
        ) from None
    except paramiko.AuthenticationException:
        raise KeyRefusedError(
            f"{label}: the host refused key {fingerprint(key)} for user {host.user}; "
            f"authorise its public key there, or pass --identity with a key it accepts"
        ) from None
    except TimeoutError:
        raise HostUnreachableError(
            f"{label}: unreachable: no answer on port {host.port} within {timeout_s:.0f}s; "
            f"check the address, the network and that sshd runs"
        ) from None
    except (OSError, paramiko.SSHException) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise HostUnreachableError(
            f"{label}: unreachable on port {host.port} ({reason}); check the address and that sshd runs"
        ) from None
    return HostSession(member, host, connection)


# --- the operators' key -------------------------------------------------------------------


def private_key_from_text(text: str, source: str) -> paramiko.PKey:
    """A paramiko key from OpenSSH/PEM text held in memory (ed25519, ECDSA or RSA)."""
    import paramiko

    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise HubfleetError(f"{source}: not an unencrypted OpenSSH private key")


def new_ed25519_key(comment: str) -> tuple[str, str]:
    """A fresh ed25519 key pair: (private key in OpenSSH format, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, f"{public} {comment}\n"


def public_line(key: paramiko.PKey, comment: str) -> str:
    return f"{key.get_name()} {key.get_base64()} {comment}\n"
