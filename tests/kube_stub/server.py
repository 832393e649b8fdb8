"""The stub's HTTP(S) server: sockets, TLS, chunked bodies and watch streams, request records.

It hands each request to `KubeStub.handle` and writes the answer: a body, a `kind: Status`
error, or a watch as a chunked stream of JSON lines. A stub bug is answered as a 500 and its
traceback kept in `KubeStub.errors`.
"""

from __future__ import annotations

import json
import socket
import ssl
import traceback
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.kube_stub.resources import ApiError

if TYPE_CHECKING:
    from tests.kube_stub.stub import KubeStub


@dataclass(frozen=True)
class RequestRecord:
    """One request the stub answered, for tests that check what a client called."""

    method: str
    path: str
    query: str
    content_type: str
    status: int
    user_agent: str

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.status} {self.method} {self.path}{query} [{self.content_type}]"


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    stub: KubeStub
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every response
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # handshake in the handler thread, so one slow client cannot block accept()
            conn = self.ssl_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        self.stub._connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        self.stub._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-request is not a test failure


class StubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    def _serve(self) -> None:
        stub = self.server.stub
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self._read_body()
        status = 500
        try:
            if not stub.authorized(self.headers.get("Authorization")):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            answer = stub.handle(self.command, path, query, content_type, body)
            if isinstance(answer, tuple):
                status, ctype, payload = answer
                self._send(status, ctype, payload)
            else:
                status = 200
                # a watch lasts until it times out: log it when it starts, not when it ends
                stub.record(self._record(parts.path, parts.query, content_type, status))
                status = 0
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for line in answer:
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client ended the watch
                    self.close_connection = True
        except ApiError as err:
            status = err.code
            self._send(err.code, "application/json", json.dumps(err.status()).encode())
        except Exception as err:  # a stub bug: answer like an API server would, and keep serving
            status = 500
            stub.errors.append(traceback.format_exc())
            failure = ApiError(
                500, "InternalError", f"stub internal error: {type(err).__name__}: {err}"
            )
            self._send(500, "application/json", json.dumps(failure.status()).encode())
        finally:
            if status:
                stub.record(self._record(parts.path, parts.query, content_type, status))

    def _record(self, path: str, query: str, content_type: str, status: int) -> RequestRecord:
        agent = self.headers.get("User-Agent", "")
        return RequestRecord(self.command, path, query, content_type, status, agent)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
