"""A local AWS Lambda Runtime API (2018-06-01) emulator, and functions run on it.

Pieces, smallest first:

- :class:`InvocationBroker`: the Runtime API's state, no I/O: queued invocations, the one
  being served, responses and errors, the 6 MB response limit (413), init errors.
- :class:`RuntimeAPIServer`: that broker over HTTP/1.1 keep-alive on 127.0.0.1, for ONE
  runtime process (a process that is replaced gets a new server, so a dead process's
  waiting ``/next`` can never take the next event).
- :class:`RuntimeSession`: a function: its sandbox (:mod:`rlayer.local.sandbox`), a
  warm runtime process, and :meth:`RuntimeSession.invoke`, which enforces the deadline
  (an overrunning runtime is killed), the memory size and the payload limit, and returns
  what Lambda's Invoke returns (payload, ``FunctionError``, duration, memory, log tail).
  A crash, a timeout or an init error ends the process; the next invoke starts a new one.
- :class:`InvokeServer`: ``POST /2015-03-31/functions/function/invocations`` over a
  session, as AWS's runtime interface emulator serves it.

Errors the platform itself reports (``errorType``), as Lambda names them:
``Sandbox.Timedout`` (deadline passed), ``Runtime.ExitError`` (the runtime exited without
answering), ``Runtime.OutOfMemory`` (resident memory above the memory size) and
``Runtime.InvalidEntrypoint`` (no bootstrap). Errors the runtime reports pass through.
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.errors import PayloadTooLargeError
from rlayer.local.process import LogSink, RuntimeProcess
from rlayer.local.sandbox import Sandbox, SandboxMode, lambda_environment

# Lambda's synchronous invoke limit, for the request and for the response.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
RUNTIME_PREFIX = "/2018-06-01/runtime"
ERROR_CONTENT_TYPE = "application/vnd.aws.lambda.error+json"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
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


# ---- the Runtime API's state ------------------------------------------------------------


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
    submitted_at: float = field(default_factory=time.monotonic)
    delivered_at: float | None = None
    deadline_ms: int | None = None
    completed_at: float | None = None
    # The runtime's answer: a response, or an error body and its type.
    response: bytes | None = None
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

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


def _error_type_of(body: bytes, header: str | None) -> str:
    if header:
        return header
    try:
        doc = json.loads(body)
    except ValueError:
        return "Unhandled"
    found = doc.get("errorType") if isinstance(doc, dict) else None
    return found if isinstance(found, str) and found else "Unhandled"


class InvocationBroker:
    """The Runtime API's state for one runtime process. Thread-safe; no I/O."""

    def __init__(self, max_response_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.max_response_bytes = max_response_bytes
        self._cond = threading.Condition()
        self._queue: deque[Invocation] = deque()
        self._active: dict[str, Invocation] = {}
        self._closed = False
        self.first_next_at: float | None = None  # monotonic: init ended (Init Duration)
        self.init_error: tuple[bytes, str] | None = None
        self.init_error_at: float | None = None

    def submit(self, invocation: Invocation) -> None:
        with self._cond:
            if self.init_error is not None:
                invocation.finish(*self.init_error)
                return
            self._queue.append(invocation)
            self._cond.notify_all()

    def next_invocation(self, timeout: float | None = None) -> Invocation | None:
        """Block until an event is queued (None when closed or after ``timeout``)."""
        with self._cond:
            if self.first_next_at is None:
                self.first_next_at = time.monotonic()
            if not self._cond.wait_for(lambda: self._queue or self._closed, timeout):
                return None
            if self._closed:
                return None
            invocation = self._queue.popleft()
            invocation.deliver()
            self._active[invocation.request_id] = invocation
            return invocation

    def post_response(self, request_id: str, body: bytes) -> Reply:
        with self._cond:
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

    def post_error(self, request_id: str, body: bytes, error_type_header: str | None) -> Reply:
        with self._cond:
            invocation = self._active.pop(request_id, None)
            if invocation is None:
                return _invalid_request_id(request_id)
            error_type = _error_type_of(body, error_type_header)
            invocation.finish(body or error_payload(error_type, ""), error_type)
            return ACCEPTED

    def post_init_error(self, body: bytes, error_type_header: str | None) -> Reply:
        with self._cond:
            error_type = _error_type_of(body, error_type_header)
            self.init_error = (body or error_payload(error_type, ""), error_type)
            self.init_error_at = time.monotonic()
            for invocation in [*self._queue, *self._active.values()]:
                invocation.finish(*self.init_error)
            self._queue.clear()
            self._active.clear()
            return ACCEPTED

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


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


# ---- HTTP ------------------------------------------------------------------------------

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


class _HTTPService:
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


class RuntimeAPIServer(_HTTPService):
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


# ---- a function -----------------------------------------------------------------------


class InvokeResult(BaseModel):
    """What Lambda's Invoke returns, plus the REPORT line's numbers."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    payload: bytes
    # "Unhandled" when the runtime reported an error, timed out or crashed (as Lambda).
    function_error: str | None = None
    # The errorType of that error (the runtime's, or one of the platform's).
    error_type: str | None = None
    # Set on a cold invoke: start of the process to its first GET next (or its init error).
    init_ms: float | None = None
    duration_ms: float
    max_memory_mb: int
    # The last 4 KB of the invocation's log (runtime output and START/END/REPORT lines).
    log_tail: str

    @property
    def ok(self) -> bool:
        return self.function_error is None

    def json_payload(self) -> Any:
        return json.loads(self.payload)


@dataclass
class _Failure:
    error_type: str
    message: str


@dataclass
class _Instance:
    """One runtime process and the Runtime API server it talks to."""

    process: RuntimeProcess
    api: RuntimeAPIServer
    started_at: float
    invokes: int = 0

    def close(self) -> None:
        self.process.kill()
        self.api.close()


def _exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name.removeprefix("SIG").lower()
        except ValueError:
            name = str(-returncode)
        return f"signal: {name}"
    return f"exit status {returncode}"


class RuntimeSession:
    """A function on this machine: layers at /opt, code at /var/task, one warm runtime.

    ``layers`` are directories or zips, merged in order; with none, the runtime of this
    repository runs with host R. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        layers: Sequence[Path] = (),
        task_root: Path = Path("."),
        handler: str = "main.handler",
        env: Mapping[str, str] | None = None,
        timeout_s: float = 3.0,
        memory_mb: int = 128,
        *,
        function_name: str = "rlayer-local",
        region: str = "us-east-1",
        sandbox_mode: SandboxMode | None = None,
        init_timeout_s: float = INIT_TIMEOUT_S,
        log_sink: LogSink | None = None,
    ) -> None:
        self.handler = handler
        self.env = dict(env or {})
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.function_name = function_name
        self.region = region
        self.init_timeout_s = init_timeout_s
        self.log_sink = log_sink
        self.sandbox = Sandbox(layers, task_root, sandbox_mode)
        self._instance: _Instance | None = None
        self._lock = threading.Lock()

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:000000000000:function:{self.function_name}"

    @property
    def warm(self) -> bool:
        return self._instance is not None and self._instance.process.poll() is None

    @property
    def runtime_pid(self) -> int | None:
        return self._instance.process.pid if self._instance else None

    def rss_bytes(self) -> int | None:
        """Resident memory of the warm runtime now (None when there is none)."""
        return self._instance.process.rss_bytes() if self.warm and self._instance else None

    def __enter__(self) -> RuntimeSession:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Prepare /opt and start the runtime (its init runs before the first invoke)."""
        with self._lock:
            self.sandbox.prepare()
            if self._instance is None and self.sandbox.entrypoint() is not None:
                self._instance = self._spawn()

    def close(self) -> None:
        with self._lock:
            self._stop_instance()
            self.sandbox.close()

    def _stop_instance(self) -> None:
        if self._instance is not None:
            self._instance.close()
            self._instance = None

    def _spawn(self) -> _Instance:
        api = RuntimeAPIServer()
        api.start()
        env = lambda_environment(
            api_address=api.address,
            handler=self.handler,
            task_root=self.sandbox.task_root_inside,
            function_name=self.function_name,
            memory_mb=self.memory_mb,
            region=self.region,
            mode=self.sandbox.mode,
            extra=self.env,
        )
        try:
            process = self.sandbox.spawn(env, self.log_sink)
        except BaseException:
            api.close()
            raise
        return _Instance(process, api, time.monotonic())

    def invoke(
        self,
        payload: bytes,
        *,
        client_context: str | Mapping[str, Any] | None = None,
        cognito_identity: str | Mapping[str, Any] | None = None,
    ) -> InvokeResult:
        """Invoke synchronously (RequestResponse), starting the runtime if it is cold."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the "
                f"InvokeFunction operation (got {len(payload)})"
            )
        with self._lock:
            return self._invoke(payload, _as_json(client_context), _as_json(cognito_identity))

    def _invoke(
        self, payload: bytes, client_context: str | None, cognito_identity: str | None
    ) -> InvokeResult:
        request_id = str(uuid.uuid4())
        self.sandbox.prepare()
        if self.sandbox.entrypoint() is None:
            message = (
                f"RequestId: {request_id} Error: Couldn't find valid bootstrap(s): "
                "[/var/task/bootstrap /opt/bootstrap]"
            )
            return InvokeResult(
                request_id=request_id,
                payload=error_payload("Runtime.InvalidEntrypoint", message),
                function_error="Unhandled",
                error_type="Runtime.InvalidEntrypoint",
                duration_ms=0.0,
                max_memory_mb=0,
                log_tail=message + "\n",
            )
        if self._instance is not None and self._instance.process.poll() is not None:
            self._stop_instance()  # exited while idle
        if self._instance is None:
            self._instance = self._spawn()
        instance = self._instance
        cold = instance.invokes == 0
        instance.invokes += 1
        process = instance.process
        mark = 0 if cold else process.log_mark()  # a cold invoke's log includes init
        invocation = Invocation(
            request_id=request_id,
            payload=payload,
            function_arn=self.function_arn,
            timeout_s=self.timeout_s,
            client_context=client_context,
            cognito_identity=cognito_identity,
        )
        process.note(f"START RequestId: {request_id} Version: $LATEST")
        instance.api.broker.submit(invocation)
        failure = self._await(instance, invocation)
        process.drain()
        if cold:
            process.refresh_tree()  # the sandbox's processes are all there by now
        peak_mb = math.ceil(process.peak_rss_bytes() / 2**20)
        if failure is None and peak_mb > self.memory_mb:
            # Lambda kills a runtime as it crosses its memory size; this one got through a
            # short spike between two looks, which Lambda would not have let finish.
            failure = _Failure(
                "Runtime.OutOfMemory",
                f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
            )
        end = invocation.completed_at or time.monotonic()
        duration_ms = (end - (invocation.delivered_at or invocation.submitted_at)) * 1000
        broker = instance.api.broker
        init_ms: float | None = None
        if cold:
            init_end = broker.first_next_at or broker.init_error_at
            if init_end is not None:
                init_ms = (init_end - instance.started_at) * 1000

        if failure is not None:
            body = error_payload(failure.error_type, failure.message)
            error_type: str | None = failure.error_type
        else:
            body = invocation.response or b""
            error_type = invocation.error_type
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, math.ceil(duration_ms))} ms\t"
            f"Memory Size: {self.memory_mb} MB\tMax Memory Used: {peak_mb} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        if failure is not None:
            process.note(f"{failure.message}\n[{failure.error_type}]")
        process.note(f"END RequestId: {request_id}")
        process.note(report)
        tail = process.logs_since(mark)[-LOG_TAIL_BYTES:].decode(errors="replace")
        # A runtime that failed to start, crashed or overran is gone: next time is cold.
        if failure is not None or broker.init_error is not None:
            self._stop_instance()
        return InvokeResult(
            request_id=request_id,
            payload=body,
            function_error="Unhandled" if error_type is not None else None,
            error_type=error_type,
            init_ms=init_ms,
            duration_ms=duration_ms,
            max_memory_mb=peak_mb,
            log_tail=tail,
        )

    def _await(self, instance: _Instance, invocation: Invocation) -> _Failure | None:
        """Wait for the runtime's answer; on a deadline, exit or memory overrun, say why."""
        init_limit = invocation.submitted_at + max(self.init_timeout_s, self.timeout_s)
        limit_bytes = self.memory_mb * 2**20
        tree_settled = False
        while True:
            started = invocation.delivered_at
            limit = init_limit if started is None else started + self.timeout_s
            wait = min(max(limit - time.monotonic(), 0.0), WATCH_INTERVAL_S)
            if invocation.done.wait(wait):
                return None
            returncode = instance.process.poll()
            if returncode is not None:
                # Its last request (an init error, say) may still be in the server's hands.
                if invocation.done.wait(0.2):
                    return None
                return _Failure(
                    "Runtime.ExitError",
                    f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
                    f"{_exit_description(returncode)}",
                )
            if time.monotonic() >= limit:
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                return _Failure(
                    "Sandbox.Timedout",
                    f"{stamp} {invocation.request_id} Task timed out after "
                    f"{self.timeout_s:.2f} seconds",
                )
            if not tree_settled:
                # During init the sandbox's processes are still appearing (bwrap forks,
                # the bootstrap execs R): look for them again until the event is delivered.
                instance.process.refresh_tree()
                tree_settled = invocation.delivered_at is not None
            if instance.process.rss_bytes() > limit_bytes:
                return _Failure(
                    "Runtime.OutOfMemory",
                    f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
                    "signal: killed",
                )


def _as_json(value: str | Mapping[str, Any] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


# ---- the invoke endpoint --------------------------------------------------------------


class InvokeServer(_HTTPService):
    """``POST /2015-03-31/functions/function/invocations`` over a :class:`RuntimeSession`,
    answered like Lambda's Invoke: 200 with the payload, ``X-Amz-Function-Error`` on a
    function error, ``X-Amz-Log-Result`` (base64) when asked with ``X-Amz-Log-Type: Tail``.
    """

    def __init__(self, session: RuntimeSession, host: str = "127.0.0.1", port: int = 0) -> None:
        self.session = session
        super().__init__(self.dispatch, host, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations"

    def __enter__(self) -> InvokeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def dispatch(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        if method != "POST" or not INVOKE_PATH.match(path.split("?")[0]):
            return Reply.json(404, {"message": f"no route {method} {path}"})
        client_context = headers.get("x-amz-client-context")
        if client_context:
            client_context = base64.b64decode(client_context).decode()
        try:
            result = self.session.invoke(body or b"{}", client_context=client_context)
        except PayloadTooLargeError as exc:
            return Reply.json(
                413,
                {"Type": "User", "message": exc.message},
                {"x-amzn-ErrorType": "RequestTooLargeException"},
            )
        reply_headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            reply_headers["X-Amz-Function-Error"] = result.function_error
        if headers.get("x-amz-log-type", "").lower() == "tail":
            reply_headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail.encode()).decode()
        return Reply(200, result.payload, reply_headers)
