"""One runtime process through 1,000 invocations, handler errors mixed in."""

from __future__ import annotations

import json

import pytest

from .conftest import HandlerWriter, SessionFactory

pytestmark = pytest.mark.integration

INVOCATIONS = 1000
ERROR_EVERY = 7
# Resident memory moves by a few MB as R's collector resizes its heap (it goes down as
# well as up); a leak of 4 KB per invocation would pass this bound between the readings.
RSS_GROWTH_LIMIT_MB = 3.0
# What R itself holds after a full collection must not move at all.
HEAP_GROWTH_LIMIT_MB = 0.1


def test_thousand_invocations_one_process_flat_memory(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler(
        "main.R",
        """
        handler <- function(event, context) {
          if (isTRUE(event$probe)) {
            invisible(gc(full = TRUE))
            return(sum(gc()[, 2]))  # MB in use by R objects
          }
          if (event$i %% 7 == 0) stop("failure number ", event$i)
          list(i = event$i, squares = (1:50)^2, id = context$aws_request_id)
        }
        """,
    )
    session = make_session(task_root=root, handler="main.handler")
    pid = None
    rss_mb: dict[int, float] = {}
    heap_mb: dict[int, float] = {}
    for i in range(1, INVOCATIONS + 1):
        result = session.invoke(json.dumps({"i": i}).encode())
        if i % ERROR_EVERY == 0:
            assert result.function_error == "Unhandled", i
            assert result.json_payload()["errorMessage"] == f"failure number {i}"
            assert result.json_payload()["errorType"] == "simpleError"
        else:
            assert result.ok, (i, result.payload)
            body = result.json_payload()
            assert body["i"] == i and body["id"] == result.request_id
        if pid is None:
            pid = session.runtime_pid
        assert session.runtime_pid == pid, f"the runtime was replaced at invocation {i}"
        if i in (100, INVOCATIONS):
            rss = session.rss_bytes()
            assert rss is not None
            rss_mb[i] = rss / 2**20
            heap_mb[i] = session.invoke(b'{"probe": true}').json_payload()
    rss_growth = rss_mb[INVOCATIONS] - rss_mb[100]
    heap_growth = heap_mb[INVOCATIONS] - heap_mb[100]
    assert rss_growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {rss_growth:.2f} MB from 100 to 1000"
    assert heap_growth < HEAP_GROWTH_LIMIT_MB, f"R's heap grew {heap_growth:.2f} MB"
