"""The one adapter over SSH (paramiko): sessions to a member's hosts, running commands and
moving files on them (logging in, with the host key checked, is hubfleet.hosts.login).

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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubfleet.errors import HubfleetError, LaterChangeFailed
from hubfleet.hosts.shell import (
    LATER_FAILED,
    Later,
    files_in_tar,
    guarded,
    probe_script,
    write_script,
)

if TYPE_CHECKING:
    import paramiko

    from hubfleet.registry.members import Host

# the keys to log in with, or how to get them (decrypting one may take a moment: it is asked
# for only once the key exchange is done, so the two overlap)
Keys = Sequence["paramiko.PKey"] | Callable[[], Sequence["paramiko.PKey"]]

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


class OpeningChannel:
    """A session channel being opened in the background, so the next command finds it open:
    the round trip of opening it overlaps the command before (or the caller's own work)."""

    def __init__(self, transport: paramiko.Transport):
        self._done = threading.Event()
        self._channel: paramiko.Channel | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._open, args=(transport,), daemon=True).start()

    def _open(self, transport: paramiko.Transport) -> None:
        try:
            self._channel = transport.open_session(timeout=CONNECT_TIMEOUT_S)
        except BaseException as err:  # handed to whoever takes the channel
            self._error = err
        finally:
            self._done.set()

    def take(self) -> paramiko.Channel:
        self._done.wait()
        if self._channel is None:
            raise self._error or OSError("no channel")
        return self._channel

    def discard(self) -> None:
        if self._done.is_set() and self._channel is not None:
            self._channel.close()


class HostSession:
    """An open SSH connection to one host, with counted commands and file helpers.

    A command costs one round trip once connected: the channel it runs on was opened during
    the command before, and its request, stdin and end of input go out together, without
    waiting for the host to acknowledge the request (it is checked once the output is in).
    """

    def __init__(
        self,
        member: str,
        host: Host,
        transport: paramiko.Transport,
        opening: OpeningChannel | None = None,
    ):
        self.member = member
        self.host = host
        self.transport = transport
        self.commands = 0
        self.label = f"member {member}: host {host.address}"
        self._lock = threading.Lock()
        # the first command's channel: one asked for with the login (login.py), or now
        self._next: OpeningChannel | None = opening or OpeningChannel(transport)
        self._later: list[Later] = []
        self._step: str | None = None  # the step whose changes `later` queues, if any

    # --- changes sent with the next command (hubfleet.hosts.steps.run_steps drives these) ---

    def owned_by(self, step: str | None) -> None:
        """What `later` queues from now on belongs to `step`; None: `later` runs at once."""
        self._step = step

    def pending(self) -> list[str]:
        """The steps whose queued changes have not run yet, in order."""
        with self._lock:
            return list(dict.fromkeys(later.step for later in self._later))

    def later(self, script: str, stdin: str = "", what: str = "") -> None:
        """Run `script` at the start of this host's next command (or at `flush`), not in a
        round trip of its own; outside a step run, at once. A failure is LaterChangeFailed,
        naming the step, raised by whichever command carried it (and nothing after it runs)."""
        if self._step is None:
            self.run(script, stdin=stdin or None, what=what)
            return
        with self._lock:
            self._later.append(Later(script, stdin, what, self._step))

    def flush(self) -> None:
        """Run the queued changes now (one command), if there are any."""
        if self.pending():
            self.run(":", what="applying queued changes")

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
        with self._lock:
            queued, self._later = self._later, []
        if queued:
            script = "\n".join([*(guarded(i, later) for i, later in enumerate(queued)), script])
            stdin = "".join(later.stdin for later in queued) + (stdin or "") or None
        command = f"sh -c {shlex.quote(script)}"
        if not self.as_root:
            command = f"sudo -n {command}"
        self.commands += 1
        lost: str | None = None
        try:
            code, stdout, stderr = self._exec(command, stdin)
        except (OSError, EOFError) as err:
            lost = str(err) or type(err).__name__
        except Exception as err:  # paramiko raises its own SSHException family
            if not type(err).__module__.startswith("paramiko"):
                raise
            lost = str(err) or type(err).__name__
        if lost is not None or code < 0:  # no exit status: the connection broke
            message = (
                f"{self.label}: connection lost{f' ({lost})' if lost else ''}; rerun to resume"
            )
            if queued:  # whether the queued changes ran is not known: the first one is named
                raise LaterChangeFailed(message, queued[0].step)
            raise HostUnreachableError(message)
        if queued and LATER_FAILED in stderr:
            raise self._later_failed(queued, stderr)
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

    def _later_failed(self, queued: list[Later], stderr: str) -> LaterChangeFailed:
        lines = stderr.strip().splitlines()
        marker = next(i for i, line in enumerate(lines) if line.startswith(LATER_FAILED))
        number, code = [*lines[marker].split()[1:], "0", "?"][:2]
        failed = queued[int(number)]
        last = lines[marker - 1] if marker > 0 else "no output"
        return LaterChangeFailed(
            f"{self.label}: command failed while {failed.what} (exit {code}): {last}", failed.step
        )

    def _channel(self) -> paramiko.Channel:
        """An open channel for the next command (the one opened ahead), and the one after it
        set opening."""
        if not self.transport.is_active():
            raise OSError("not connected")
        with self._lock:
            opening, self._next = self._next, OpeningChannel(self.transport)
        return (opening or OpeningChannel(self.transport)).take()

    def _exec(self, command: str, stdin: str | None) -> tuple[int, str, str]:
        """One command on its own SSH channel: the request, stdin and its end sent at once,
        then stdout and stderr collected (stderr in a thread, so neither pipe can fill up and
        stall the other). Exit -1: the channel closed without a status."""
        channel = self._channel()
        try:
            channel.settimeout(COMMAND_TIMEOUT_S)
            request_exec(channel, command)
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
        if code < 0 and self.transport.is_active() and not channel.event_ready:
            raise RemoteCommandError(f"{self.label}: the host refused to run a command (sshd)")
        text = out.decode("utf-8", errors="replace")
        return code, text, b"".join(errors).decode("utf-8", errors="replace")

    def read_files(self, paths: list[str]) -> dict[str, str | None]:
        """The content of each file (None when absent), in one round trip, byte-exact."""
        return {p: state[0] if state else None for p, state in self.probe(paths).files.items()}

    def probe(self, paths: list[str], also: str = "") -> Probe:
        """Each file's (content, mode) and the output of the shell in `also`: one round trip,
        so a step can check everything it depends on at once."""
        parts = [probe_script(paths)] if paths else []
        if also.strip():
            parts.append(also.strip())
        parts.append("true")  # a probe that finds nothing has still succeeded
        out = self.run("\n".join(parts), what="reading files").stdout
        found: dict[str, tuple[str, int] | None] = {p: None for p in paths}
        rest: list[str] = []
        for line in out.splitlines():
            if line.startswith("@@tar "):
                found.update(files_in_tar(base64.b64decode(line[6:]), paths))
            else:
                rest.append(line)
        return Probe(found, "\n".join(rest))

    def write_file(
        self, path: str, content: str, mode: int = 0o644, then: str = "", later: bool = False
    ) -> None:
        """Replace `path` atomically (see write_files); `then` runs after, same round trip."""
        self.write_files([(path, content, mode)], then=then, later=later)

    def write_files(
        self, files: Sequence[tuple[str, str, int]], then: str = "", later: bool = False
    ) -> None:
        """Replace each file atomically, all in one round trip: each is written to a temp file
        beside it (created exclusively, with its mode), then, once all are whole, renamed over
        it. A full disk, a short stdin or any other failure leaves the old files (or none) and
        no temp file. `then` is shell run after all are in place (e.g. applying them).
        `later`: sent with the next command (see `later`). Two processes a file (head, mv)
        and one check: no mktemp, chmod or wc each."""
        stdin = "".join(content for _, content, _ in files)  # on stdin, never a command line
        script = write_script(
            [(path, len(content.encode()), mode) for path, content, mode in files]
        )
        if then:
            script += f"; {then}"
        names = ", ".join(path for path, _, _ in files)
        if later:
            self.later(script, stdin=stdin, what=f"writing {names}")
        else:
            self.run(script, stdin=stdin, what=f"writing {names}")

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
            import paramiko

            with paramiko.SFTPClient.from_transport(self.transport) as sftp:
                sftp.put(str(local), staging)
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
        with self._lock:
            opening, self._next = self._next, None
        if opening is not None:
            opening.discard()
        self.transport.close()


def request_exec(channel: paramiko.Channel, command: str) -> None:
    """Ask for `command` on `channel` without waiting for the answer (paramiko's
    exec_command waits a round trip for it). The answer still arrives and is recorded:
    `channel.event_ready` is true once the host accepted; a refusal closes the channel."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("exec")
    message.add_boolean(True)
    message.add_string(command)
    channel._event_pending()  # the same bookkeeping exec_command does before it waits
    channel.transport._send_user_message(message)


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
