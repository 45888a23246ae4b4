"""The Runtime API's state, no I/O: invocations queued and served, replies, limits."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# Lambda's synchronous invoke limit, for the request and for the response.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
RUNTIME_PREFIX = "/2018-06-01/runtime"
ERROR_CONTENT_TYPE = "application/vnd.aws.lambda.error+json"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# A streamed response reports an error that comes after its first bytes in these trailers
# (the body: the error JSON, base64-encoded).
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
# LogResult is the last 4 KB of an invocation's log.
LOG_TAIL_BYTES = 4096
# Lambda gives init its own 10 s (on demand, it then retries within the invoke timeout).
INIT_TIMEOUT_S = 10.0
# How often a waiting invoke looks at the process (exit, memory); a response wakes it at once.
WATCH_INTERVAL_S = 0.05


def _now_ms() -> int:
    return int(time.time() * 1000)


def new_trace_id() -> str:
    """An X-Ray trace header like the one Lambda passes on."""
    epoch = f"{int(time.time()):08x}"
    return f"Root=1-{epoch}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


def error_payload(error_type: str, message: str, trace: Sequence[str] = ()) -> bytes:
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "stackTrace": list(trace)}
    ).encode()


@dataclass
class Invocation:
    """One event on its way through the Runtime API."""

    request_id: str
    payload: bytes
    function_arn: str
    timeout_s: float
    trace_id: str = field(default_factory=new_trace_id)
    client_context: str | None = None
    cognito_identity: str | None = None
    # Lambda's tenant isolation mode: the invoke's TenantId.
    tenant_id: str | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    delivered_at: float | None = None
    deadline_ms: int | None = None
    completed_at: float | None = None
    # The runtime's answer: a response, or an error body and its type.
    response: bytes | None = None
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # A streamed answer: each chunk goes to on_chunk as it arrives; an error after the
    # first bytes (the trailers) is stream_error, the response keeps what was streamed.
    on_chunk: Callable[[bytes], None] | None = None
    streamed: bool = False
    content_type: str | None = None
    stream_error: bytes | None = None

    def deliver(self) -> None:
        self.delivered_at = time.monotonic()
        self.deadline_ms = _now_ms() + int(self.timeout_s * 1000)

    def finish(self, body: bytes, error_type: str | None = None) -> None:
        self.response = body
        self.error_type = error_type
        self.completed_at = time.monotonic()
        self.done.set()

    def headers(self) -> dict[str, str]:
        """The headers of ``GET /invocation/next`` for this event."""
        assert self.deadline_ms is not None, "deliver() first"
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": self.trace_id,
        }
        if self.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = self.client_context
        if self.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = self.cognito_identity
        if self.tenant_id is not None:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = self.tenant_id
        return headers


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, doc: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(
            status,
            json.dumps(doc).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


ACCEPTED = Reply.json(202, {"status": "OK"})


class StreamBody(Protocol):
    """A streamed request body: its chunks as they arrive, then its trailers."""

    trailers: dict[str, str]

    def __iter__(self) -> Iterator[bytes]: ...


def _error_type_of(body: bytes, header: str | None) -> str:
    if header:
        return header
    try:
        doc = json.loads(body)
    except ValueError:
        return "Unhandled"
    found = doc.get("errorType") if isinstance(doc, dict) else None
    return found if isinstance(found, str) and found else "Unhandled"


Send = Callable[[Invocation], None]


@dataclass
class _Waiting:
    """A GET next that waits for an event: how to answer it, and whether it was."""

    send: Send
    done: threading.Event = field(default_factory=threading.Event)
    sent: bool = False


class InvocationBroker:
    """The Runtime API's state for one runtime process. Thread-safe; no I/O of its own."""

    def __init__(self, max_response_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.max_response_bytes = max_response_bytes
        self._lock = threading.Lock()
        self._queue: deque[Invocation] = deque()
        self._waiting: deque[_Waiting] = deque()
        self._active: dict[str, Invocation] = {}
        self._closed = False
        self.first_next_at: float | None = None  # monotonic: init ended (Init Duration)
        self.init_error: tuple[bytes, str] | None = None
        self.init_error_at: float | None = None

    def submit(self, invocation: Invocation) -> None:
        """Queue the event, or hand it to a GET next that waits (see :meth:`serve_next`)."""
        with self._lock:
            if self.init_error is not None:
                invocation.finish(*self.init_error)
                return
            if not self._waiting:
                self._queue.append(invocation)
                return
            waiting = self._waiting.popleft()
            self._activate(invocation)
        try:
            waiting.send(invocation)
            waiting.sent = True
        except (OSError, ValueError):  # ValueError: a file already closed
            # The runtime's connection is gone: the event waits for its next GET next (a
            # runtime that died is the invoke's watcher's to report).
            with self._lock:
                if self._active.pop(invocation.request_id, None) is invocation:
                    invocation.delivered_at = invocation.deadline_ms = None
                    self._queue.appendleft(invocation)
        finally:
            waiting.done.set()

    def _activate(self, invocation: Invocation) -> None:
        invocation.deliver()
        self._active[invocation.request_id] = invocation

    def serve_next(self, send: Send) -> bool:
        """A GET next: ``send`` answers it with an event, in this thread if one is queued,
        else in the thread that submits the next one (Lambda hands an event to a waiting
        runtime at once; here that saves a thread switch, ~0.1 ms, per warm event).
        Blocks until it was answered; False when the broker closed first."""
        with self._lock:
            if self.first_next_at is None:
                self.first_next_at = time.monotonic()
            if self._closed:
                return False
            invocation = self._queue.popleft() if self._queue else None
            if invocation is not None:
                self._activate(invocation)
            else:
                waiting = _Waiting(send)
                self._waiting.append(waiting)
        if invocation is not None:
            send(invocation)
            return True
        waiting.done.wait()
        return waiting.sent

    def post_response(self, request_id: str, body: bytes) -> Reply:
        with self._lock:
            invocation = self._active.get(request_id)
            if invocation is None:
                return _invalid_request_id(request_id)
            if len(body) > self.max_response_bytes:
                # The invocation stays open: the runtime reports an error for it next.
                return Reply.json(
                    413,
                    {
                        "errorMessage": "Exceeded maximum allowed payload size "
                        f"({self.max_response_bytes} bytes).",
                        "errorType": "RequestEntityTooLarge",
                    },
                )
            del self._active[request_id]
            invocation.finish(body)
            return ACCEPTED

    def post_stream(self, request_id: str, content_type: str, body: StreamBody) -> Reply:
        """A streamed response, read as it arrives (outside the lock: it may take as long
        as the function runs); an error in its trailers fails the invocation."""
        with self._lock:
            invocation = self._active.get(request_id)
            if invocation is None:
                return _invalid_request_id(request_id)
            invocation.streamed = True
            invocation.content_type = content_type
        chunks: list[bytes] = []
        for chunk in body:
            chunks.append(chunk)
            if invocation.on_chunk is not None:
                invocation.on_chunk(chunk)
        error_type = body.trailers.get(ERROR_TYPE_HEADER.lower())
        if error_type:
            encoded = body.trailers.get(ERROR_BODY_TRAILER.lower(), "")
            try:
                invocation.stream_error = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                invocation.stream_error = encoded.encode()
        with self._lock:
            if self._active.pop(request_id, None) is None:
                return _invalid_request_id(request_id)  # answered meanwhile (init error)
            invocation.finish(b"".join(chunks), error_type or None)
            return ACCEPTED

    def post_error(self, request_id: str, body: bytes, error_type_header: str | None) -> Reply:
        with self._lock:
            invocation = self._active.pop(request_id, None)
            if invocation is None:
                return _invalid_request_id(request_id)
            error_type = _error_type_of(body, error_type_header)
            invocation.finish(body or error_payload(error_type, ""), error_type)
            return ACCEPTED

    def post_init_error(self, body: bytes, error_type_header: str | None) -> Reply:
        with self._lock:
            error_type = _error_type_of(body, error_type_header)
            self.init_error = (body or error_payload(error_type, ""), error_type)
            self.init_error_at = time.monotonic()
            for invocation in [*self._queue, *self._active.values()]:
                invocation.finish(*self.init_error)
            self._queue.clear()
            self._active.clear()
            return ACCEPTED

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for waiting in self._waiting:
                waiting.done.set()  # unanswered: the server hangs up
            self._waiting.clear()


def _invalid_request_id(request_id: str) -> Reply:
    return Reply.json(
        400,
        {"errorMessage": f"Invalid request ID: {request_id}", "errorType": "InvalidRequestID"},
    )


def runtime_route(method: str, path: str) -> tuple[str, str | None] | None:
    """(action, request id) of a Runtime API request, None when it is not one."""
    if not path.startswith(RUNTIME_PREFIX + "/"):
        return None
    parts = path[len(RUNTIME_PREFIX) + 1 :].split("/")
    if method == "GET" and parts == ["invocation", "next"]:
        return ("next", None)
    if method == "POST" and parts == ["init", "error"]:
        return ("init_error", None)
    is_answer = len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error")
    if method == "POST" and is_answer and parts[1]:
        return (parts[2], parts[1])
    return None
