"""A Python task handler run as Lambda's Python runtime runs it: an event and a context in,
the JSON result or Lambda's error document out, and the START/END/REPORT log lines."""

from __future__ import annotations

import json
import math
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
    log = [f"START RequestId: {request_id} Version: {version}"]
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
    log.append(f"END RequestId: {request_id}")
    log.append(
        f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
        f"Billed Duration: {max(1, math.ceil(duration))} ms\t"
        f"Memory Size: {memory_mb} MB\tMax Memory Used: 0 MB"
    )
    return result, error_type, "\n".join(log) + "\n"
