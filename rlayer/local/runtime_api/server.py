"""The broker over HTTP/1.1 keep-alive on 127.0.0.1, for one runtime process."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any

from rlayer.local.runtime_api.broker import (
    ERROR_TYPE_HEADER,
    InvocationBroker,
    Reply,
    runtime_route,
)


@dataclass(frozen=True)
class StreamReply:
    """An answer sent with chunked transfer encoding, each chunk as it is produced."""

    status: int
    headers: Mapping[str, str]
    chunks: Iterator[bytes]


Dispatch = Callable[[str, str, Mapping[str, str], bytes], Reply | StreamReply | None]
# GET /invocation/next: called with a function that writes a Reply on the runtime's
# connection (from whichever thread has the event); False means hang up unanswered.
NextDispatch = Callable[[Callable[[Reply], None]], bool]
# A streamed request (Lambda-Runtime-Function-Response-Mode: streaming): its body is
# handed over chunk by chunk as it arrives, not read whole first.
StreamDispatch = Callable[[str, Mapping[str, str], "ChunkedBody"], Reply]
RESPONSE_MODE_HEADER = "lambda-runtime-function-response-mode"


class ChunkedBody:
    """A chunked request body, chunk by chunk as it arrives; ``trailers`` once it ended.

    Hand-written (why: http.server reads no chunked bodies, and a streamed response must
    reach the invoker chunk by chunk, before the function returns)."""

    def __init__(self, rfile: BufferedIOBase) -> None:
        self._rfile = rfile
        self.trailers: dict[str, str] = {}
        self.ended = False

    def _line(self) -> bytes:
        line = self._rfile.readline()
        if not line.endswith(b"\n"):
            # The runtime went away mid-stream: no answer for it (the invocation stays open
            # for whoever reports its end: a worker's parent, or the process's exit).
            raise ConnectionError("the streamed request was cut off")
        return line

    def __iter__(self) -> Iterator[bytes]:
        while not self.ended:
            size = int(self._line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while line := self._line().strip():
                    name, _, value = line.decode("latin-1").partition(":")
                    self.trailers[name.strip().lower()] = value.strip()
                self.ended = True
                return
            chunk = self._rfile.read(size)
            if len(chunk) < size:
                raise ConnectionError("the streamed request was cut off")
            self._line()
            yield chunk

    def drain(self) -> None:
        for _ in self:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        dispatch: Dispatch,
        host: str = "127.0.0.1",
        port: int = 0,
        stream_dispatch: StreamDispatch | None = None,
        next_dispatch: NextDispatch | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.stream_dispatch = stream_dispatch
        self.next_dispatch = next_dispatch
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed mid-request is routine here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


# http.client's limits for a header line and the number of headers.
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the runtime keeps one connection for all its calls.
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: http.server writes headers and body in separate sends; with Nagle on,
    # each keep-alive exchange would wait for the peer's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server
    _headers_buffer: list[bytes]
    raw_requestline: bytes  # set by handle_one_request before parse_request

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the runtime's own log is what matters."""

    def parse_request(self) -> bool:
        """The request line and headers, as BaseHTTPRequestHandler.parse_request reads them
        but without its trip through the email package: ~80 us of CPU a request, two
        requests an event (hand-written for that; HTTP/1.0 and 1.1 are all a Runtime API
        client speaks). Bad requests get the same 400 and 431 answers."""
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.0"  # a status line (0.9's answers have none)
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request {self.requestline!r}")
            return False
        self.command, self.path, self.request_version = words
        headers = HTTPMessage()
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE or len(headers) >= _MAX_HEADERS:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon or not name.strip():
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad header line {line!r}")
                return False
            headers[name.strip()] = value.strip()
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if self.request_version == "HTTP/1.1":
            self.close_connection = connection == "close"
            # curl sends this before a body over 1 KB and waits for it (the wiki's loop).
            if headers.get("Expect", "").lower() == "100-continue":
                return self.handle_expect_100()
        else:
            self.close_connection = connection != "keep-alive"
        return True

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(ChunkedBody(self.rfile))
        return b""

    def _is_stream(self, headers: Mapping[str, str]) -> bool:
        return (
            self.command == "POST"
            and self.server.stream_dispatch is not None
            and headers.get(RESPONSE_MODE_HEADER, "").lower() == "streaming"
            and "chunked" in headers.get("transfer-encoding", "").lower()
        )

    def _handle(self) -> None:
        next_dispatch = self.server.next_dispatch
        if next_dispatch is not None and runtime_route(self.command, self.path) == ("next", None):
            if not next_dispatch(self._send_reply):
                self.close_connection = True  # shutting down: hang up without an answer
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply: Reply | StreamReply | None
        if self._is_stream(headers):
            assert self.server.stream_dispatch is not None
            body = ChunkedBody(self.rfile)
            reply = self.server.stream_dispatch(self.path, headers, body)
            body.drain()  # whatever the dispatch left unread
        else:
            body_bytes = self._read_body() if self.command == "POST" else b""
            reply = self.server.dispatch(self.command, self.path, headers, body_bytes)
        if reply is None:  # shutting down: hang up without an answer
            self.close_connection = True
            return
        if isinstance(reply, StreamReply):
            self._send_stream(reply)
            return
        self._send_reply(reply)

    def _send_reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        # Head and body in one write (end_headers() then write() would be two): the runtime
        # then finds the whole answer in its first read instead of waiting for a second.
        # (_headers_buffer: where send_header() collects the head; flush_headers() writes it.)
        pending: list[bytes] = self._headers_buffer
        self._headers_buffer = []
        self.wfile.write(b"".join(pending) + b"\r\n" + reply.body)

    def _send_stream(self, reply: StreamReply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in reply.chunks:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()


class HTTPService:
    """A _Server on its own thread."""

    def __init__(
        self,
        dispatch: Dispatch,
        host: str = "127.0.0.1",
        port: int = 0,
        stream_dispatch: StreamDispatch | None = None,
        next_dispatch: NextDispatch | None = None,
    ) -> None:
        self._httpd = _Server(dispatch, host, port, stream_dispatch, next_dispatch)
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
        super().__init__(
            self.dispatch, stream_dispatch=self.dispatch_stream, next_dispatch=self.dispatch_next
        )

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
        action, request_id = route  # GET next never comes here: dispatch_next has it
        error_type = headers.get(ERROR_TYPE_HEADER.lower())
        if action == "init_error":
            return self.broker.post_init_error(body, error_type)
        assert request_id is not None
        if action == "response":
            return self.broker.post_response(request_id, body)
        return self.broker.post_error(request_id, body, error_type)

    def dispatch_next(self, send: Callable[[Reply], None]) -> bool:
        """GET next, answered as soon as there is an event (InvocationBroker.serve_next)."""
        return self.broker.serve_next(
            lambda invocation: send(Reply(200, invocation.payload, invocation.headers()))
        )

    def dispatch_stream(self, path: str, headers: Mapping[str, str], body: ChunkedBody) -> Reply:
        """A streamed response: its chunks reach the invocation as they arrive."""
        route = runtime_route("POST", path)
        if route is None or route[0] != "response" or route[1] is None:
            return Reply.json(404, {"errorMessage": f"no streaming route POST {path}"})
        return self.broker.post_stream(
            route[1], headers.get("content-type", "application/octet-stream"), body
        )

    def close(self) -> None:
        self.broker.close()
        self.stop()
