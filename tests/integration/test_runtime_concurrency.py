"""Many events per execution environment (AWS_LAMBDA_MAX_CONCURRENCY): forked R workers,
each with its own /next loop and connection, driven by concurrent invokes."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rlayer.local.runtime_api import InvokeResult, RuntimeSession

from .conftest import HandlerWriter, SessionFactory

pytestmark = pytest.mark.integration

WORKERS = 4

CONCURRENT_R = r"""
handler <- function(event, context) {
  if (identical(event$case, "die")) tools::pskill(Sys.getpid(), 9L)
  if (identical(event$case, "die_idle")) {
    system(sprintf("(sleep 0.3; kill -9 %d) >/dev/null 2>&1 &", Sys.getpid()))
    return("dying")
  }
  started <- as.numeric(Sys.time())
  message("working on ", event$n)
  Sys.sleep(event$sleep)
  list(n = event$n, pid = Sys.getpid(), request_id = context$aws_request_id,
       trace_env = Sys.getenv("_X_AMZN_TRACE_ID"), trace_id = context$trace_id,
       started = started, ended = as.numeric(Sys.time()))
}
"""


def invoke_all(session: RuntimeSession, events: list[dict[str, Any]]) -> list[InvokeResult]:
    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(lambda e: session.invoke(json.dumps(e).encode()), events))


@pytest.fixture
def concurrent_root(write_handler: HandlerWriter) -> Path:
    return write_handler("conc.R", CONCURRENT_R)


def test_n_events_are_in_flight_at_once_without_cross_talk(
    make_session: SessionFactory, concurrent_root: Path, host_r: Path
) -> None:
    lines: list[str] = []
    session = make_session(
        task_root=concurrent_root,
        handler="conc.handler",
        max_concurrency=WORKERS,
        memory_mb=4096,  # the tree's resident memory counts the shared pages once per worker
        timeout_s=10,
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON"},
        log_sink=lines.append,
    )
    assert session.invoke(json.dumps({"n": 0, "sleep": 0}).encode()).ok  # warm
    results = invoke_all(session, [{"n": n, "sleep": 0.8} for n in range(WORKERS)])
    bodies = [r.json_payload() for r in results]
    assert all(r.ok for r in results), [r.payload for r in results]
    # Every event started before any of them ended: all N were being served at once.
    assert max(b["started"] for b in bodies) < min(b["ended"] for b in bodies)
    assert len({b["pid"] for b in bodies}) == WORKERS
    for n, (result, body) in enumerate(zip(results, bodies, strict=True)):
        assert body["n"] == n
        assert body["request_id"] == result.request_id
        assert body["trace_env"] == body["trace_id"]
    assert len({b["trace_id"] for b in bodies}) == WORKERS
    # Interleaved log lines stay whole and name the event they belong to.
    working = [json.loads(line) for line in lines if '"working on' in line]
    by_request = {line["requestId"]: line["message"] for line in working}
    for n, result in enumerate(results):
        assert by_request[result.request_id] == f"working on {n}"


def test_a_dead_workers_event_gets_an_error_and_the_worker_is_replaced(
    make_session: SessionFactory, concurrent_root: Path, host_r: Path
) -> None:
    session = make_session(
        task_root=concurrent_root,
        handler="conc.handler",
        max_concurrency=2,
        memory_mb=4096,
        timeout_s=10,
    )
    died = session.invoke(b'{"case": "die"}')
    assert died.error_type == "Runtime.ExitError"
    assert died.request_id in died.json_payload()["errorMessage"]
    # The environment goes on, with two workers again.
    results = invoke_all(session, [{"n": n, "sleep": 0.5} for n in range(2)])
    bodies = [r.json_payload() for r in results]
    assert all(r.ok for r in results)
    assert max(b["started"] for b in bodies) < min(b["ended"] for b in bodies)
    assert len({b["pid"] for b in bodies}) == 2


def test_text_lines_of_workers_name_their_event(
    make_session: SessionFactory, concurrent_root: Path, host_r: Path
) -> None:
    lines: list[str] = []
    session = make_session(
        task_root=concurrent_root,
        handler="conc.handler",
        max_concurrency=3,
        memory_mb=4096,
        timeout_s=10,
        log_sink=lines.append,
    )
    results = invoke_all(session, [{"n": n, "sleep": 0.3} for n in range(3)])
    assert all(r.ok for r in results)
    for n, result in enumerate(results):
        assert f"[INFO] RequestId: {result.request_id} working on {n}" in lines


def test_a_worker_lost_between_events_ends_the_environment(
    make_session: SessionFactory, concurrent_root: Path, host_r: Path
) -> None:
    lines: list[str] = []
    session = make_session(
        task_root=concurrent_root,
        handler="conc.handler",
        max_concurrency=2,
        memory_mb=4096,
        log_sink=lines.append,
    )
    first = session.invoke(b'{"case": "die_idle"}')
    assert first.ok and first.init_ms is not None
    deadline = time.monotonic() + 10
    while session.warm and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not session.warm  # the whole runtime exited, not a loop of new workers
    assert any("exited between events; exiting" in line for line in lines)
    again = session.invoke(json.dumps({"n": 1, "sleep": 0}).encode())
    assert again.ok and again.init_ms is not None  # a new, cold environment


def test_a_runtime_outlives_the_thread_whose_invoke_started_it(
    make_session: SessionFactory, concurrent_root: Path, host_r: Path
) -> None:
    # bwrap's --die-with-parent is per thread: a runtime started by a passing thread (a
    # pool's, an HTTP request's) must not die with it.
    session = make_session(task_root=concurrent_root, handler="conc.handler")
    event = json.dumps({"n": 1, "sleep": 0}).encode()
    first: list[InvokeResult] = []
    starter = threading.Thread(target=lambda: first.append(session.invoke(event)))
    starter.start()
    starter.join()
    time.sleep(0.3)  # time for a death signal to land, were one sent
    assert session.warm
    second = session.invoke(event)
    assert second.init_ms is None  # warm: the same environment
    assert second.json_payload()["pid"] == first[0].json_payload()["pid"]
