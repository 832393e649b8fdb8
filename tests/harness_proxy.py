"""The latency fault of the test-host harness (see tests/harness.py): a delaying TCP proxy on
loopback in front of a host's sshd, since the kernel here has no netem qdisc.

The proxy runs in a process of its own, one thread and a selector, as a network would: in the
process under test its threads took turns with that process's own for Python's interpreter
lock, so the delay it added grew with the number of connections the process under test had
open (a bootstrap of six hosts paid for it, a peer tool in another process did not).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import subprocess
import sys
import time


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk for half of `rtt_ms` in each direction,
    so one round trip through it takes `rtt_ms` longer. Stopped by `close()`."""

    def __init__(self, target: tuple[str, int], rtt_ms: float):
        self.target = target
        self._process = subprocess.Popen(
            [sys.executable, __file__, target[0], str(target[1]), str(max(0.0, rtt_ms))],
            stdin=subprocess.PIPE,  # closed when this process ends, however: the proxy then ends
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"the delay proxy for {target} did not start")
        self.address: tuple[str, int] = ("127.0.0.1", int(line))

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()


class _Pipe:
    """One direction of one connection: what is due to go to `dst`, and when."""

    def __init__(self, dst: socket.socket):
        self.dst = dst
        self.outgoing = b""  # due, not yet taken by the kernel
        self.closing = False  # the source ended: shut `dst` for writing once all is sent


def serve(target: tuple[str, int], rtt_ms: float) -> None:
    """Accept on 127.0.0.1 (the port printed on stdout), connect each client to `target`,
    and pass every chunk on half of `rtt_ms` after it arrived, in order, both ways."""
    one_way_s = rtt_ms / 2000.0
    selector = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    selector.register(sys.stdin, selectors.EVENT_READ, None)  # at its end, the harness is gone
    print(listener.getsockname()[1], flush=True)
    due: list[tuple[float, int, _Pipe, bytes]] = []  # (when, order, pipe, data; b"" = end)
    order = itertools.count()
    pipes: dict[socket.socket, _Pipe] = {}  # source -> its pipe
    writers: dict[socket.socket, _Pipe] = {}  # destination -> the pipe writing to it
    shut: set[socket.socket] = set()  # shut for writing

    def maybe_close(sock: socket.socket) -> None:
        if sock not in pipes and sock in shut:  # ended both ways
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(sock)
            writers.pop(sock, None)
            shut.discard(sock)
            sock.close()

    def watch(sock: socket.socket) -> None:
        events = selectors.EVENT_READ if sock in pipes else 0
        if sock in writers and writers[sock].outgoing:
            events |= selectors.EVENT_WRITE
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(sock)
        if events:
            selector.register(sock, events, None)

    def flush(pipe: _Pipe) -> None:
        try:
            if pipe.outgoing:
                sent = pipe.dst.send(pipe.outgoing)
                pipe.outgoing = pipe.outgoing[sent:]
            if pipe.closing and not pipe.outgoing:
                pipe.closing = False
                pipe.dst.shutdown(socket.SHUT_WR)
                shut.add(pipe.dst)
        except BlockingIOError:
            pass
        except OSError:
            pipe.outgoing, pipe.closing = b"", False
            shut.add(pipe.dst)
        if pipe.dst in writers:
            watch(pipe.dst)
            maybe_close(pipe.dst)

    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        for key, events in selector.select(timeout):
            sock = key.fileobj
            if not isinstance(sock, socket.socket):
                if not sys.stdin.readline():
                    return
                continue
            if sock is listener:
                with contextlib.suppress(BlockingIOError):
                    client, _ = listener.accept()
                    try:
                        upstream = socket.create_connection(target, timeout=5)
                    except OSError:
                        client.close()
                        continue
                    for end in (client, upstream):
                        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        end.setblocking(False)
                    pipes[client], pipes[upstream] = _Pipe(upstream), _Pipe(client)
                    writers[upstream], writers[client] = pipes[client], pipes[upstream]
                    watch(client)
                    watch(upstream)
                continue
            if events & selectors.EVENT_WRITE and sock in writers:
                flush(writers[sock])
            if events & selectors.EVENT_READ and sock in pipes:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                heapq.heappush(due, (time.monotonic() + one_way_s, next(order), pipes[sock], data))
                if not data:  # the source ended: read no more from it
                    del pipes[sock]
                    watch(sock)
                    maybe_close(sock)
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, pipe, data = heapq.heappop(due)
            if data:
                pipe.outgoing += data
            else:
                pipe.closing = True
            flush(pipe)


if __name__ == "__main__":
    serve((sys.argv[1], int(sys.argv[2])), float(sys.argv[3]))
