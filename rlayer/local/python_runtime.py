"""A Python task handler run as Lambda's Python runtime runs it: an event and a context in,
the JSON result or Lambda's error document out, and the START/END/REPORT log lines."""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlayer.local.runtime_api.platform_log import Report, end_lines, start_line


@dataclass
class LambdaContext:
    """The context object a Python handler gets (the attributes Lambda's has)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def run_python_handler(
    handler: Callable[[Any, Any], Any],
    payload: bytes,
    *,
    function_name: str,
    version: str,
    arn: str,
    memory_mb: int,
    timeout_s: float,
) -> tuple[bytes, str | None, str]:
    """(the response payload, the errorType when it failed, the invocation's log)."""
    request_id = str(uuid.uuid4())
    context = LambdaContext(
        function_name=function_name,
        function_version=version,
        invoked_function_arn=arn,
        memory_limit_in_mb=memory_mb,
        aws_request_id=request_id,
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="local/[$LATEST]bridge",
        deadline=time.monotonic() + timeout_s,
    )
    log = [start_line(request_id, False, version)]
    started = time.perf_counter()
    error_type: str | None = None
    try:
        event = json.loads(payload) if payload else {}
        result = json.dumps(handler(event, context)).encode()
    except Exception as exc:
        # Lambda's Python runtime: errorType is the class name, the message str(exc).
        error_type = type(exc).__name__
        trace = traceback.format_tb(exc.__traceback__)
        result = json.dumps(
            {
                "errorMessage": str(exc),
                "errorType": error_type,
                "requestId": request_id,
                "stackTrace": trace,
            }
        ).encode()
        log.append(f"[ERROR] {error_type}: {exc}")
    duration = (time.perf_counter() - started) * 1000
    # (No memory figure: the handler runs in this process.)
    log.extend(end_lines(Report(request_id, duration, memory_mb, 0, None, error_type), False))
    return result, error_type, "\n".join(log) + "\n"
