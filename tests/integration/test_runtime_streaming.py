"""Response streaming with real R: the runtime's chunked POST, the emulator's chunk-by-chunk
delivery, the HTTP integration form and mid-stream errors in trailers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rlayer.local.runtime_api import RuntimeSession

pytestmark = pytest.mark.integration

STREAM_R = r"""
handler <- function(event, context, stream) {
  switch(event$case,
    gated = {
      stream$content_type("text/plain")
      stream$write("first\n")
      # Goes on only once the invoker has seen the first chunk.
      gate <- file.path(Sys.getenv("LAMBDA_TASK_ROOT"), "gate")
      while (!file.exists(gate)) Sys.sleep(0.02)
      stream$write(charToRaw("second\n"))
      "not sent: the response was streamed"
    },
    http = {
      stream$http(201L, list(`Content-Type` = "text/plain", `X-Id` = "7"),
                  cookies = c("a=1", "b=2"))
      stream$write("hello ")
      stream$write("world")
    },
    mid_error = {
      stream$write("partial")
      stop("broke mid-stream")
    },
    late_http = {
      stream$write("x")
      stream$http(200L)
    },
    buffered = list(streamed = FALSE, request_id = context$aws_request_id),
    crash = {
      stream$write("before the crash")
      tools::pskill(Sys.getpid(), tools::SIGKILL)
    },
    ids = for (i in 1:3) {
      stream$write(paste0(context$aws_request_id, ";"))
      Sys.sleep(0.1)
    },
    early_error = stop("nothing written")
  )
}
"""


@pytest.fixture(scope="module")
def stream_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    (root / "stream.R").write_text(STREAM_R)
    return root


@pytest.fixture(scope="module")
def streaming(stream_root: Path, host_r: Path) -> Iterator[RuntimeSession]:
    with RuntimeSession(task_root=stream_root, handler="stream.handler", timeout_s=10) as session:
        yield session


def test_first_chunk_arrives_before_the_handler_returns(
    streaming: RuntimeSession, stream_root: Path
) -> None:
    gate = stream_root / "gate"
    gate.unlink(missing_ok=True)
    chunks: list[bytes] = []
    first = threading.Event()

    def on_chunk(chunk: bytes) -> None:
        chunks.append(chunk)
        if not first.is_set():
            first.set()
            gate.touch()  # the handler is waiting for this: it has not returned yet

    result = streaming.invoke(b'{"case": "gated"}', on_chunk=on_chunk)
    assert result.ok, result.payload
    assert chunks == [b"first\n", b"second\n"]
    assert result.streamed and result.content_type == "text/plain"
    assert result.payload == b"first\nsecond\n"


def test_http_integration_prelude_then_eight_nuls(streaming: RuntimeSession) -> None:
    result = streaming.invoke(b'{"case": "http"}')
    assert result.ok, result.payload
    assert result.content_type == "application/vnd.awslambda.http-integration-response"
    prelude, sep, body = result.payload.partition(b"\0" * 8)
    assert sep == b"\0" * 8
    assert json.loads(prelude) == {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-Id": "7"},
        "cookies": ["a=1", "b=2"],
    }
    assert body == b"hello world"


def test_an_error_mid_stream_goes_in_the_trailers(streaming: RuntimeSession) -> None:
    result = streaming.invoke(b'{"case": "mid_error"}')
    assert result.streamed and result.payload == b"partial"
    assert result.function_error == "Unhandled" and result.error_type == "simpleError"
    assert result.stream_error is not None
    error = json.loads(result.stream_error)
    assert error["errorType"] == "simpleError"
    assert error["errorMessage"] == "broke mid-stream"
    assert error["stackTrace"][0].startswith("stream.R:")
    assert "[ERROR]" in result.log_tail and "broke mid-stream" in result.log_tail
    # The loop goes on, on the same process.
    assert streaming.invoke(b'{"case": "buffered"}').ok


def test_http_after_a_write_is_an_error_in_the_trailers(streaming: RuntimeSession) -> None:
    result = streaming.invoke(b'{"case": "late_http"}')
    assert result.payload == b"x"
    assert result.stream_error is not None
    assert "before the first stream$write()" in json.loads(result.stream_error)["errorMessage"]


def test_a_handler_that_writes_nothing_answers_as_usual(streaming: RuntimeSession) -> None:
    result = streaming.invoke(b'{"case": "buffered"}')
    assert not result.streamed
    assert result.json_payload() == {"streamed": False, "request_id": result.request_id}
    failed = streaming.invoke(b'{"case": "early_error"}')
    assert not failed.streamed and failed.stream_error is None
    assert failed.json_payload()["errorMessage"] == "nothing written"


def test_workers_stream_side_by_side(stream_root: Path, host_r: Path) -> None:
    with (
        RuntimeSession(
            task_root=stream_root,
            handler="stream.handler",
            timeout_s=10,
            memory_mb=4096,
            max_concurrency=2,
        ) as session,
        ThreadPoolExecutor(2) as pool,
    ):
        results = list(pool.map(lambda _: session.invoke(b'{"case": "ids"}'), range(2)))
    for result in results:
        assert result.ok and result.streamed
        assert result.payload == f"{result.request_id};".encode() * 3


@pytest.mark.parametrize("workers", [1, 2])
def test_a_runtime_that_dies_mid_stream_fails_the_invocation(
    stream_root: Path, host_r: Path, workers: int
) -> None:
    chunks: list[bytes] = []
    with RuntimeSession(
        task_root=stream_root,
        handler="stream.handler",
        timeout_s=10,
        memory_mb=4096,
        max_concurrency=workers,
    ) as session:
        result = session.invoke(b'{"case": "crash"}', on_chunk=chunks.append)
        assert chunks == [b"before the crash"]
        assert result.function_error == "Unhandled"
        # One process: it exited; workers: the parent answers for the dead one.
        assert result.error_type == "Runtime.ExitError"
        assert session.invoke(b'{"case": "buffered"}').ok
