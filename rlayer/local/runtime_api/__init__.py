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

from rlayer.local.runtime_api.broker import (
    ERROR_CONTENT_TYPE,
    MAX_PAYLOAD_BYTES,
    Invocation,
    InvocationBroker,
    Reply,
    error_payload,
    new_trace_id,
    runtime_route,
)
from rlayer.local.runtime_api.invoke_server import InvokeServer
from rlayer.local.runtime_api.results import InvokeResult
from rlayer.local.runtime_api.server import RuntimeAPIServer
from rlayer.local.runtime_api.session import RuntimeSession

__all__ = [
    "ERROR_CONTENT_TYPE",
    "MAX_PAYLOAD_BYTES",
    "Invocation",
    "InvocationBroker",
    "InvokeResult",
    "InvokeServer",
    "Reply",
    "RuntimeAPIServer",
    "RuntimeSession",
    "error_payload",
    "new_trace_id",
    "runtime_route",
]
