"""What an invoke gives back: Lambda's Invoke answer, and the platform's own failures."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


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
    # A streamed response (payload holds its bytes): its Content-Type, and the error JSON
    # of the trailers when the function failed after streaming began.
    streamed: bool = False
    content_type: str | None = None
    stream_error: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.function_error is None

    def json_payload(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Failure:
    """An error the platform reports itself (Sandbox.Timedout, Runtime.ExitError, ...)."""

    error_type: str
    message: str


def exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name.removeprefix("SIG").lower()
        except ValueError:
            name = str(-returncode)
        return f"signal: {name}"
    return f"exit status {returncode}"
