"""Make moto's Lambda run code: the ONE module that touches moto's internals.

moto without Docker never runs a function; it echoes the payload. The bridge replaces
``invoke`` of moto's Lambda backends (``LambdaBackend.invoke(self, function_name,
qualifier, body, headers, response_headers)``, returning the payload bytes) so that:

- a function named in ``handlers`` runs that Python handler in this process, the way
  Chalice's ``@app.lambda_function`` runs in Lambda: ``handler(event, context)``. An
  exception comes back as Lambda returns it: header ``X-Amz-Function-Error: Unhandled`` and
  the payload ``{"errorMessage", "errorType": <class name>, "requestId", "stackTrace"}``,
  so a Step Functions ``Catch`` on that class name fires as it does in AWS;
- a function on a ``provided.*`` runtime (the canary) runs for real: its layer zips and
  code, as stored in moto, go to a :class:`rlayer.local.runtime_api.RuntimeSession`
  (layers at /opt, code at /var/task, our Runtime API emulator); the answer carries the
  log tail with its REPORT line (``X-Amz-Log-Result``), as Lambda's does. Sessions stay
  warm per function and configuration, like an execution environment;
- anything else keeps moto's behaviour.

An asynchronous invocation (``InvocationType=Event``) of a Python handler is answered at
once (202) and the handler runs in a thread of its own, as Lambda queues the event and
runs it later; :meth:`LambdaBridge.wait_idle` waits for those runs (uninstalling does too).
Lambda's retries of a failed asynchronous run are not emulated.

``throttle(name, times)`` makes the next invocations of a function answer
``TooManyRequestsException`` (HTTP 429), which moto cannot do by itself: Step Functions
then sees ``Lambda.TooManyRequestsException`` and its ``Retry`` runs, as in AWS.

Use it as a context manager (or ``install()``/``uninstall()``); one bridge at a time.
It works in both moto modes: in-process (``mock_aws``) and ``ThreadedMotoServer``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.exceptions import JsonRESTError

from chalicelib.errors import ConfigurationError
from rlayer.local.layers import extract_layer_zip
from rlayer.local.python_runtime import run_python_handler
from rlayer.local.runtime_api import InvokeResult, RuntimeSession

# Chalice's lambda function signature: handler(event, context).
TaskHandler = Callable[[Any, Any], Any]
LOG_TAIL_BYTES = 4096
_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


class Session(Protocol):
    def start(self) -> None: ...

    def invoke(self, payload: bytes) -> InvokeResult: ...

    def close(self) -> None: ...


SessionFactory = Callable[..., Session]


class TooManyRequests(JsonRESTError):
    """What Lambda answers a throttled Invoke with."""

    code = 429

    def __init__(self, function_name: str) -> None:
        super().__init__(
            "TooManyRequestsException", f"Rate Exceeded. (function {function_name}, local fault)"
        )


@dataclass
class Call:
    """One invocation the bridge answered (for tests and the local stack's log)."""

    function_name: str
    kind: str  # "python", "provided", "throttled"
    error_type: str | None = None


class LambdaBridge:
    _active: LambdaBridge | None = None
    _guard = threading.Lock()

    def __init__(
        self,
        handlers: Mapping[str, TaskHandler],
        *,
        work_dir: Path | None = None,
        session_factory: SessionFactory = RuntimeSession,
    ) -> None:
        self.handlers = dict(handlers)
        self._session_factory = session_factory
        self._own_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="rlayer-bridge-"))
        self._lock = threading.Lock()
        self._throttles: Counter[str] = Counter()
        # (function ARN, qualifier) -> (configuration key, session)
        self._sessions: dict[tuple[str, str], tuple[tuple[Any, ...], Session]] = {}
        self._session_locks: dict[tuple[str, str], threading.Lock] = {}
        self._saved: dict[type[LambdaBackend], Any] = {}
        self._background: list[threading.Thread] = []
        self.calls: list[Call] = []

    # -- installation -------------------------------------------------------------------
    def install(self) -> LambdaBridge:
        with LambdaBridge._guard:
            if LambdaBridge._active is not None:
                raise ConfigurationError("a Lambda bridge is already installed")
            bridge = self

            def invoke(
                backend: LambdaBackend,
                function_name: str,
                qualifier: str | None,
                body: Any,
                headers: Any,
                response_headers: Any,
            ) -> str | bytes | None:
                return bridge.invoke(
                    backend, function_name, qualifier, body, headers, response_headers
                )

            # LambdaSimpleBackend (use_docker False) overrides LambdaBackend.invoke: patch both.
            for cls in (LambdaBackend, LambdaSimpleBackend):
                self._saved[cls] = cls.__dict__["invoke"]
                cls.invoke = invoke  # type: ignore[method-assign,assignment]
            LambdaBridge._active = self
        return self

    def uninstall(self) -> None:
        with LambdaBridge._guard:
            if LambdaBridge._active is not self:
                return
            for cls, original in self._saved.items():
                cls.invoke = original  # type: ignore[method-assign]
            self._saved.clear()
            LambdaBridge._active = None
        self.wait_idle()
        self.close_sessions()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LambdaBridge:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def close_sessions(self) -> None:
        with self._lock:
            sessions = [s for _, s in self._sessions.values()]
            self._sessions.clear()
        for session in sessions:
            session.close()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait for the asynchronous runs started so far; False if one is still running."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._background)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._background = [t for t in self._background if t.is_alive()]
            return not self._background

    # -- faults -------------------------------------------------------------------------
    def throttle(self, function_name: str, times: int = 1) -> None:
        """The next ``times`` invocations of this function (name or ARN) are throttled."""
        with self._lock:
            self._throttles[function_name.rsplit(":", 1)[-1]] += times

    def _take_throttle(self, name: str) -> bool:
        with self._lock:
            if self._throttles[name] > 0:
                self._throttles[name] -= 1
                return True
            return False

    # -- dispatch -----------------------------------------------------------------------
    def invoke(
        self,
        backend: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        fn = backend.get_function(function_name, qualifier)
        name = str(fn.function_name)
        if self._take_throttle(name):
            self.calls.append(Call(name, "throttled", "TooManyRequestsException"))
            raise TooManyRequests(name)
        payload = body.encode() if isinstance(body, str) else bytes(body or b"")
        if name in self.handlers:
            if headers.get("X-Amz-Invocation-Type") == "Event":
                return self._run_later(fn, self.handlers[name], payload)
            return self._run_python(fn, self.handlers[name], payload, response_headers)
        if str(fn.run_time or "").startswith("provided"):
            return self._run_provided(backend, fn, qualifier, payload, response_headers)
        return self._saved[type(backend)](  # type: ignore[no-any-return]
            backend, function_name, qualifier, body, headers, response_headers
        )

    @staticmethod
    def _call_python(
        fn: Any, handler: TaskHandler, payload: bytes
    ) -> tuple[bytes, str | None, str]:
        # The moto function's settings, as Lambda's Python runtime would give them.
        return run_python_handler(
            handler,
            payload,
            function_name=fn.function_name,
            version=str(fn.version),
            arn=fn.function_arn,
            memory_mb=int(fn.memory_size),
            timeout_s=float(fn.timeout),
        )

    def _run_python(
        self, fn: Any, handler: TaskHandler, payload: bytes, response_headers: Any
    ) -> bytes:
        result, error_type, log = self._call_python(fn, handler, payload)
        if error_type is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        self._finish(fn, "python", error_type, log, response_headers)
        return result

    def _run_later(self, fn: Any, handler: TaskHandler, payload: bytes) -> bytes:
        def run() -> None:
            _, error_type, _ = self._call_python(fn, handler, payload)
            self.calls.append(Call(str(fn.function_name), "python-event", error_type))

        thread = threading.Thread(target=run, name=f"event-{fn.function_name}", daemon=True)
        with self._lock:
            self._background.append(thread)
        thread.start()
        return b""  # Lambda's answer to an Event invocation: 202, no payload

    def _run_provided(
        self,
        backend: LambdaBackend,
        fn: Any,
        qualifier: str | None,
        payload: bytes,
        response_headers: Any,
    ) -> bytes:
        arch = (fn.architectures or ["x86_64"])[0]
        host = _HOST_ARCH.get(platform.machine().lower(), platform.machine())
        if arch != host:
            message = f"this machine is {host}; it cannot run a {arch} function"
            response_headers["x-amz-function-error"] = "Unhandled"
            self._finish(fn, "provided", "Runtime.ExitError", message + "\n", response_headers)
            return json.dumps(
                {"errorMessage": message, "errorType": "Runtime.ExitError", "stackTrace": []}
            ).encode()
        session, lock = self._session(backend, fn, qualifier)
        with lock:
            result = session.invoke(payload)
        if result.function_error:
            response_headers["x-amz-function-error"] = result.function_error
        self._finish(fn, "provided", result.error_type, result.log_tail, response_headers)
        return result.payload

    def _finish(
        self, fn: Any, kind: str, error_type: str | None, log: str, response_headers: Any
    ) -> None:
        tail = log.encode()[-LOG_TAIL_BYTES:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
        response_headers["x-amz-executed-version"] = str(fn.version)
        self.calls.append(Call(str(fn.function_name), kind, error_type))

    # -- provided runtimes --------------------------------------------------------------
    def _session(
        self, backend: LambdaBackend, fn: Any, qualifier: str | None
    ) -> tuple[Session, threading.Lock]:
        slot = (str(fn.function_arn), str(qualifier or fn.version))
        layers = [str(layer["Arn"]) for layer in fn.layers]
        env = dict(fn.environment_vars or {})
        config = (
            fn.code_sha_256,
            tuple(layers),
            fn.handler,
            int(fn.memory_size),
            float(fn.timeout),
            json.dumps(env, sort_keys=True),
        )
        with self._lock:
            lock = self._session_locks.setdefault(slot, threading.Lock())
            current = self._sessions.get(slot)
            if current is not None and current[0] == config:
                return current[1], lock
            stale = current[1] if current is not None else None
            self._sessions.pop(slot, None)
        if stale is not None:
            stale.close()  # the function was updated: a new execution environment
        session = self._session_factory(
            layers=[self._layer_zip(backend, arn) for arn in layers],
            task_root=self._code_dir(fn),
            handler=str(fn.handler),
            env=env,
            timeout_s=float(fn.timeout),
            memory_mb=int(fn.memory_size),
            function_name=str(fn.function_name),
            region=str(backend.region_name),
        )
        session.start()
        with self._lock:
            self._sessions[slot] = (config, session)
        return session, lock

    def _layer_zip(self, backend: LambdaBackend, arn: str) -> Path:
        layer = backend.layers_versions_by_arn(arn)
        if layer is None:
            raise JsonRESTError("ResourceNotFoundException", f"layer version {arn} not found")
        data: bytes = layer.code_bytes
        path = self.work_dir / "layers" / f"{hashlib.sha256(data).hexdigest()}.zip"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)
        return path

    def _code_dir(self, fn: Any) -> Path:
        data: bytes = fn.code_bytes
        path = self.work_dir / "code" / hashlib.sha256(data).hexdigest()
        if not path.exists():
            partial = Path(tempfile.mkdtemp(prefix="code-", dir=self.work_dir))
            zip_path = partial / "code.zip"
            zip_path.write_bytes(data)
            extract_layer_zip(zip_path, partial / "task")
            zip_path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            (partial / "task").replace(path)
            shutil.rmtree(partial, ignore_errors=True)
        return path
