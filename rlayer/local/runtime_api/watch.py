"""Waiting for the runtime's answer to one event, as Lambda watches a runtime meanwhile."""

from __future__ import annotations

import time

from rlayer.local.process import RuntimeProcess
from rlayer.local.runtime_api import platform_log
from rlayer.local.runtime_api.broker import WATCH_INTERVAL_S, Invocation
from rlayer.local.runtime_api.results import Failure, exit_description


def await_answer(
    process: RuntimeProcess,
    invocation: Invocation,
    *,
    timeout_s: float,
    init_timeout_s: float,
    memory_mb: int,
) -> Failure | None:
    """Wait for the runtime's answer; on a deadline, exit or memory overrun, say why."""
    init_limit = invocation.submitted_at + max(init_timeout_s, timeout_s)
    limit_bytes = memory_mb * 2**20
    tree_settled = False
    while True:
        started = invocation.delivered_at
        limit = init_limit if started is None else started + timeout_s
        wait = min(max(limit - time.monotonic(), 0.0), WATCH_INTERVAL_S)
        if invocation.done.wait(wait):
            return None
        returncode = process.poll()
        if returncode is not None:
            # Its last request (an init error, say) may still be in the server's hands.
            if invocation.done.wait(0.2):
                return None
            return Failure(
                "Runtime.ExitError",
                f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
                f"{exit_description(returncode)}",
            )
        if time.monotonic() >= limit:
            return Failure(
                "Sandbox.Timedout",
                f"{platform_log.timestamp()} {invocation.request_id} "
                f"Task timed out after {timeout_s:.2f} seconds",
            )
        if not tree_settled:
            # During init the sandbox's processes are still appearing (bwrap forks,
            # the bootstrap execs R): look for them again until the event is delivered.
            process.refresh_tree()
            tree_settled = invocation.delivered_at is not None
        if process.rss_bytes() > limit_bytes:
            return Failure(
                "Runtime.OutOfMemory",
                f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
                "signal: killed",
            )
