"""The broker over HTTP/1.1 keep-alive on 127.0.0.1, for one runtime process."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rlayer.local.runtime_api.broker import (
    ERROR_TYPE_HEADER,
    InvocationBroker,
    Reply,
    runtime_route,
)

Dispatch = Callable[[str, str, Mapping[str, str], bytes], Reply | None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, dispatch: Dispatch, host: str = "127.0.0.1", port: int = 0) -> None:
        self.dispatch = dispatch
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed mid-request is routine here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the runtime keeps one connection for all its calls.
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: http.server writes headers and body in separate sends; with Nagle on,
    # each keep-alive exchange would wait for the peer's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the runtime's own log is what matters."""

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _handle(self) -> None:
        body = self._read_body() if self.command == "POST" else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.dispatch(self.command, self.path, headers, body)
        if reply is None:  # shutting down: hang up without an answer
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()


class HTTPService:
    """A _Server on its own thread."""

    def __init__(self, dispatch: Dispatch, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = _Server(dispatch, host, port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def wait(self) -> None:
        """Block until the server stops (join in steps, so Ctrl-C gets through)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()


class RuntimeAPIServer(HTTPService):
    """The Runtime API endpoints for one runtime process, on 127.0.0.1 and a free port."""

    def __init__(self, broker: InvocationBroker | None = None) -> None:
        self.broker = broker or InvocationBroker()
        super().__init__(self.dispatch)

    @property
    def address(self) -> str:
        """What AWS_LAMBDA_RUNTIME_API holds."""
        return f"127.0.0.1:{self.port}"

    def dispatch(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        route = runtime_route(method, path)
        if route is None:
            return Reply.json(404, {"errorMessage": f"no route {method} {path}"})
        action, request_id = route
        if action == "next":
            invocation = self.broker.next_invocation()
            if invocation is None:
                return None
            return Reply(200, invocation.payload, invocation.headers())
        error_type = headers.get(ERROR_TYPE_HEADER.lower())
        if action == "init_error":
            return self.broker.post_init_error(body, error_type)
        assert request_id is not None
        if action == "response":
            return self.broker.post_response(request_id, body)
        return self.broker.post_error(request_id, body, error_type)

    def close(self) -> None:
        self.broker.close()
        self.stop()
