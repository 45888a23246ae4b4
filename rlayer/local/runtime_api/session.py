"""A function: its sandbox, a warm runtime process, and Invoke with Lambda's limits."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from chalicelib.errors import PayloadTooLargeError
from rlayer.local.process import LogSink, RuntimeProcess
from rlayer.local.runtime_api.broker import (
    INIT_TIMEOUT_S,
    LOG_TAIL_BYTES,
    MAX_PAYLOAD_BYTES,
    Invocation,
    error_payload,
)
from rlayer.local.runtime_api.platform_log import Report, end_lines, is_json_format, start_line
from rlayer.local.runtime_api.results import Failure, InvokeResult
from rlayer.local.runtime_api.server import RuntimeAPIServer
from rlayer.local.runtime_api.watch import await_answer
from rlayer.local.sandbox import Sandbox, SandboxMode, lambda_environment


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
        max_concurrency: int = 1,
    ) -> None:
        self.handler = handler
        self.env = dict(env or {})
        # Lambda Managed Instances: this many events at once in one environment, which
        # the runtime learns from AWS_LAMBDA_MAX_CONCURRENCY.
        self.max_concurrency = max(1, int(max_concurrency))
        if self.max_concurrency > 1:
            self.env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(self.max_concurrency)
        self._slots = threading.Semaphore(self.max_concurrency)
        self._json_log = is_json_format(self.env)  # platform lines as Lambda writes them
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.function_name = function_name
        self.region = region
        self.init_timeout_s = init_timeout_s
        self.log_sink = log_sink
        self.sandbox = Sandbox(layers, task_root, sandbox_mode)
        self._instance: _Instance | None = None
        self._lock = threading.Lock()
        # Runtimes are started from one thread that lives until close(): bwrap's
        # --die-with-parent kills the sandbox when the *thread* that started it ends, and
        # invokes come from passing threads (a thread pool, one per HTTP request).
        self._spawner: ThreadPoolExecutor | None = None

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
            if self._spawner is not None:
                self._spawner.shutdown(wait=False)
                self._spawner = None

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
            if self._spawner is None:
                self._spawner = ThreadPoolExecutor(1, thread_name_prefix="rlayer-runtime")
            process = self._spawner.submit(self.sandbox.spawn, env, self.log_sink).result()
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
        tenant_id: str | None = None,
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> InvokeResult:
        """Invoke synchronously (RequestResponse), starting the runtime if it is cold.
        A response the runtime streams goes to ``on_chunk`` chunk by chunk as it arrives
        (InvokeWithResponseStream); the result holds it whole as well."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the "
                f"InvokeFunction operation (got {len(payload)})"
            )
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            payload=payload,
            function_arn=self.function_arn,
            timeout_s=self.timeout_s,
            client_context=_as_json(client_context),
            cognito_identity=_as_json(cognito_identity),
            tenant_id=tenant_id,
            on_chunk=on_chunk,
        )
        with self._slots:
            return self._invoke(invocation)

    def _invoke(self, invocation: Invocation) -> InvokeResult:
        request_id = invocation.request_id
        with self._lock:  # the instance is shared; the wait for the answer is not
            self.sandbox.prepare()
            started = self._submit(invocation)
        if isinstance(started, InvokeResult):
            return started
        instance, cold, mark = started
        process = instance.process
        failure = await_answer(
            process,
            invocation,
            timeout_s=self.timeout_s,
            init_timeout_s=self.init_timeout_s,
            memory_mb=self.memory_mb,
        )
        process.drain()
        if cold:
            process.refresh_tree()  # the sandbox's processes are all there by now
        peak_mb = math.ceil(process.peak_rss_bytes() / 2**20)
        if failure is None and peak_mb > self.memory_mb:
            # Lambda kills a runtime as it crosses its memory size; this one got through a
            # short spike between two looks, which Lambda would not have let finish.
            failure = Failure(
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
        report = Report(
            request_id,
            duration_ms,
            self.memory_mb,
            peak_mb,
            init_ms,
            error_type,
            platform_failure=failure is not None,
        )
        if failure is not None:
            process.note(f"{failure.message}\n[{failure.error_type}]")
        for line in end_lines(report, self._json_log):
            process.note(line)
        tail = process.logs_since(mark)[-LOG_TAIL_BYTES:].decode(errors="replace")
        # A runtime that failed to start, crashed or overran is gone: next time is cold.
        if failure is not None or broker.init_error is not None:
            with self._lock:
                if self._instance is instance:  # not one started since
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
            streamed=invocation.streamed,
            content_type=invocation.content_type,
            stream_error=invocation.stream_error,
        )

    def _submit(self, invocation: Invocation) -> InvokeResult | tuple[_Instance, bool, int]:
        """Queue the event on the warm runtime (starting one if there is none): the
        instance, whether it is cold, and where the event's log starts."""
        request_id = invocation.request_id
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
        process.note(start_line(request_id, self._json_log))
        instance.api.broker.submit(invocation)
        return instance, cold, mark


def _as_json(value: str | Mapping[str, Any] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)
