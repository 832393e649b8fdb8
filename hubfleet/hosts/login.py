"""Logging in to a host over SSH (paramiko): the host key checked against the pinned one,
then the first key the host accepts; the session that results runs the commands
(hubfleet.hosts.ssh)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from hubfleet.errors import HubfleetError
from hubfleet.hosts.hostkeys import (
    HostKeyDecision,
    HostKeyError,
    PinnedHostKeys,
    accept_unknown_key,
    fingerprint,
    known_hosts_name,
)
from hubfleet.hosts.ssh import (
    CONNECT_TIMEOUT_S,
    KNOWN_HOSTS,
    HostSession,
    HostUnreachableError,
    KeyRefusedError,
    Keys,
    OpeningChannel,
)

if TYPE_CHECKING:
    import paramiko

    from hubfleet.registry.members import Host


def connect(
    member: str,
    host: Host,
    keys: Keys,
    pinned: PinnedHostKeys,
    decision: HostKeyDecision | None = None,
    timeout_s: float = CONNECT_TIMEOUT_S,
    address: str | None = None,
    port: int | None = None,
) -> HostSession:
    """Open an SSH session to `host`, trusting only pinned host keys, logging in with the
    first of `keys` the host accepts (all tried on the one connection).

    `address`/`port` override where to connect (e.g. through a tunnel or proxy); the host
    key is still pinned under the host's own address and port. `keys` may be a callable: it
    is called once the key exchange is done, so decrypting the member's key overlaps it.
    """
    import paramiko

    label = f"member {member}: host {host.address}"
    unreachable = (
        f"{label}: unreachable: no answer on port {host.port} within {timeout_s:.0f}s; "
        f"check the address, the network and that sshd runs"
    )
    try:
        sock = socket.create_connection((address or host.address, port or host.port), timeout_s)
    except TimeoutError:
        raise HostUnreachableError(unreachable) from None
    except OSError as err:
        raise HostUnreachableError(
            f"{label}: unreachable on port {host.port} ({err.strerror or err}); "
            f"check the address and that sshd runs"
        ) from None
    # without this, Nagle's algorithm and delayed ACKs add ~40 ms to every command
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    name = known_hosts_name(host.address, host.port)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout_s
    known = pinned.load().lookup(name) or {}
    if known:  # ask for the pinned kind of host key first, as OpenSSH's client does
        options = transport.get_security_options()
        first = next(iter(known.keys()))
        options.key_types = [first, *[t for t in options.key_types if t != first]]
    try:
        transport.start_client(timeout=timeout_s)
        offered = transport.get_remote_server_key()
        _check_host_key(label, name, offered, dict(known), pinned, decision)
        logged_in, opening = _log_in(label, host, transport, keys)
        session = HostSession(member, host, logged_in, opening)
    except BaseException as err:
        transport.close()
        if isinstance(err, HubfleetError):
            raise
        if isinstance(err, TimeoutError):
            raise HostUnreachableError(unreachable) from None
        if isinstance(err, (OSError, EOFError, paramiko.SSHException)):
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise HostUnreachableError(
                f"{label}: unreachable on port {host.port} ({reason}); "
                "check the address and that sshd runs"
            ) from None
        raise
    return session


def _check_host_key(
    label: str,
    name: str,
    offered: paramiko.PKey,
    known: dict[str, paramiko.PKey],
    pinned: PinnedHostKeys,
    decision: HostKeyDecision | None,
) -> None:
    """The host's key must be the pinned one; an unknown one is settled by the operator's
    decision (and pinned under the host's own name); a changed one is refused."""
    if not known:
        accept_unknown_key(label, pinned, name, decision or HostKeyDecision(), offered)
        return
    expected = known.get(offered.get_name()) or next(iter(known.values()))
    if expected != offered:
        raise HostKeyError(
            f"{label}: host key changed: {pinned.path.name} has {fingerprint(expected)}, "
            f"the host offers {fingerprint(offered)}; refusing to connect (if the host was "
            f"reinstalled, remove its line from {KNOWN_HOSTS} and check the new key)"
        )


def _log_in(
    label: str, host: Host, transport: paramiko.Transport, keys: Keys
) -> tuple[paramiko.Transport, OpeningChannel | None]:
    """Authenticate with the first key the host accepts; refused: name every key tried. The
    first key goes in one flight with its service request and the first command's channel
    (`_in_one_flight`); the channel, if it was asked for, is returned with the transport."""
    import paramiko

    tried: list[str] = []
    for number, key in enumerate(keys() if callable(keys) else keys):
        try:
            if number == 0 and _one_flight_key(key):
                return transport, _in_one_flight(transport, host.user, key)
            transport.auth_publickey(host.user, key)
            return transport, None
        except paramiko.AuthenticationException:
            tried.append(fingerprint(key))
    which = f"key {tried[0]}" if len(tried) == 1 else f"keys {', '.join(tried)}"
    raise KeyRefusedError(
        f"{label}: the host refused {which} for user {host.user}; "
        f"authorise its public key there, or pass --identity with a key it accepts"
    )


def _one_flight_key(key: paramiko.PKey) -> bool:
    """A plain ed25519 or ECDSA key: its signature algorithm is its type. (An RSA key's
    depends on the server-sig-algs the host announces, which may not have arrived yet.)"""
    return "rsa" not in key.get_name() and getattr(key, "public_blob", None) is None


def _in_one_flight(transport: paramiko.Transport, user: str, key: paramiko.PKey) -> OpeningChannel:
    """Log in with `key` sending, without waiting in between: the service request, the signed
    publickey request (paramiko waits a round trip for the service's acceptance first), then
    the first command's channel request, which RFC 4252 5.1 lets follow the request that
    succeeds (the server passes it on once the login is done). Two round trips fewer than
    paramiko's own auth_publickey and a channel opened after it. Raises as auth_publickey."""
    import threading

    from paramiko.auth_handler import AuthHandler
    from paramiko.common import cMSG_USERAUTH_REQUEST
    from paramiko.message import Message

    class SentWithTheServiceRequest(AuthHandler):  # type: ignore[misc]
        def _parse_service_accept(self, m: Message) -> None:
            return None  # the request went out already

    handler = SentWithTheServiceRequest(transport)
    transport.auth_handler = handler
    done = threading.Event()
    handler.auth_publickey(user, key, done)  # records the attempt, sends the service request
    algorithm = key.get_name()
    request = Message()
    request.add_byte(cMSG_USERAUTH_REQUEST)
    request.add_string(user)
    request.add_string("ssh-connection")
    request.add_string("publickey")
    request.add_boolean(True)
    request.add_string(algorithm)
    request.add_string(key.asbytes())
    signed = handler._get_session_blob(key, "ssh-connection", user, algorithm)
    request.add_string(key.sign_ssh_data(signed, algorithm))
    transport._send_message(request)
    opening = OpeningChannel(transport)  # after the request: passed on once it succeeds
    handler.wait_for_response(done)
    return opening
