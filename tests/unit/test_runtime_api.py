"""The Runtime API emulator's state and helpers, without processes or sockets."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlayer.local.runtime_api import (
    MAX_PAYLOAD_BYTES,
    Invocation,
    InvocationBroker,
    InvokeResult,
    error_payload,
    new_trace_id,
    runtime_route,
)
from rlayer.local.sandbox import SandboxMode, bwrap_argv, lambda_environment

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


def invocation(payload: bytes = b'{"a": 1}', **kwargs: object) -> Invocation:
    return Invocation(
        request_id=str(kwargs.pop("request_id", "req-1")),
        payload=payload,
        function_arn=ARN,
        timeout_s=float(kwargs.pop("timeout_s", 3.0)),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


# ---- routes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/2018-06-01/runtime/invocation/next", ("next", None)),
        ("POST", "/2018-06-01/runtime/invocation/abc/response", ("response", "abc")),
        ("POST", "/2018-06-01/runtime/invocation/abc/error", ("error", "abc")),
        ("POST", "/2018-06-01/runtime/init/error", ("init_error", None)),
        ("POST", "/2018-06-01/runtime/invocation/next", None),
        ("GET", "/2018-06-01/runtime/invocation/abc/response", None),
        ("POST", "/2018-06-01/runtime/invocation//response", None),
        ("POST", "/2018-06-01/runtime/invocation/abc/other", None),
        ("GET", "/2015-03-31/functions/function/invocations", None),
    ],
)
def test_runtime_routes(method: str, path: str, route: tuple[str, str | None] | None) -> None:
    assert runtime_route(method, path) == route


# ---- the broker -----------------------------------------------------------------------


def _take(broker: InvocationBroker) -> Invocation:
    """A GET next for a queued event, answered in this thread."""
    sent: list[Invocation] = []
    assert broker.serve_next(sent.append) is True
    return sent[0]


def test_next_headers_carry_the_whole_contract() -> None:
    broker = InvocationBroker()
    inv = invocation(client_context='{"custom": {}}', cognito_identity='{"id": "x"}')
    before = int(time.time() * 1000)
    broker.submit(inv)
    assert _take(broker) is inv
    headers = inv.headers()
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == ARN
    deadline = int(headers["Lambda-Runtime-Deadline-Ms"])
    assert before + 3000 <= deadline <= int(time.time() * 1000) + 3000
    assert headers["Lambda-Runtime-Trace-Id"] == inv.trace_id
    assert headers["Lambda-Runtime-Client-Context"] == '{"custom": {}}'
    assert headers["Lambda-Runtime-Cognito-Identity"] == '{"id": "x"}'


def test_optional_headers_are_left_out() -> None:
    broker = InvocationBroker()
    inv = invocation()
    broker.submit(inv)
    _take(broker)
    headers = inv.headers()
    assert "Lambda-Runtime-Client-Context" not in headers
    assert "Lambda-Runtime-Cognito-Identity" not in headers


def _serve_next_in_thread(
    broker: InvocationBroker, send: object
) -> tuple[threading.Thread, list[object]]:
    """A GET next waiting in its own thread, as the server's connection thread does."""
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append((broker.serve_next(send), threading.get_ident())),  # type: ignore[arg-type]
    )
    thread.start()
    for _ in range(500):  # until it waits
        if broker._waiting:
            break
        time.sleep(0.01)
    return thread, result


def test_a_waiting_next_is_answered_by_the_submitting_thread() -> None:
    broker = InvocationBroker()
    assert broker.first_next_at is None
    sent: list[tuple[Invocation, int]] = []
    thread, result = _serve_next_in_thread(
        broker, lambda inv: sent.append((inv, threading.get_ident()))
    )
    assert broker.first_next_at is not None  # the end of init (Init Duration)
    inv = invocation()
    broker.submit(inv)
    thread.join(timeout=5)
    # Written by the submitter (no hand-over to the waiting thread), delivered, and the
    # waiting GET next then returns.
    assert sent == [(inv, threading.get_ident())]
    assert inv.delivered_at is not None and inv.deadline_ms is not None
    assert result and result[0][0] is True
    assert broker.post_response("req-1", b"{}").status == 202


def test_a_queued_event_is_answered_by_the_next_that_finds_it() -> None:
    broker = InvocationBroker()
    inv = invocation()
    broker.submit(inv)  # no GET next waits: it is queued
    sent: list[Invocation] = []
    assert broker.serve_next(sent.append) is True
    assert sent == [inv] and inv.delivered_at is not None


def test_an_event_whose_answer_cannot_be_written_waits_for_the_next_get() -> None:
    broker = InvocationBroker()

    def broken(inv: Invocation) -> None:
        raise BrokenPipeError("the runtime hung up")

    thread, result = _serve_next_in_thread(broker, broken)
    inv = invocation()
    broker.submit(inv)
    thread.join(timeout=5)
    assert result and result[0][0] is False  # that connection hangs up
    assert inv.delivered_at is None and not inv.done.is_set()
    # The runtime's next GET next gets it.
    sent: list[Invocation] = []
    assert broker.serve_next(sent.append) is True
    assert sent == [inv]


def test_close_hangs_up_a_waiting_serve_next() -> None:
    broker = InvocationBroker()
    thread, result = _serve_next_in_thread(broker, lambda inv: None)
    broker.close()
    thread.join(timeout=5)
    assert result and result[0][0] is False
    assert broker.serve_next(lambda inv: None) is False


def test_response_completes_the_invocation() -> None:
    broker = InvocationBroker()
    inv = invocation()
    broker.submit(inv)
    _take(broker)
    reply = broker.post_response("req-1", b'{"ok": true}')
    assert reply.status == 202
    assert inv.done.is_set()
    assert inv.response == b'{"ok": true}' and inv.error_type is None
    # Answering twice, or for an unknown id, is refused.
    assert broker.post_response("req-1", b"{}").status == 400
    assert broker.post_error("nope", b"{}", None).status == 400


def test_oversized_response_is_413_and_the_invocation_stays_open() -> None:
    broker = InvocationBroker(max_response_bytes=10)
    inv = invocation()
    broker.submit(inv)
    _take(broker)
    reply = broker.post_response("req-1", b"x" * 11)
    assert reply.status == 413
    assert json.loads(reply.body)["errorType"] == "RequestEntityTooLarge"
    assert not inv.done.is_set()
    body = error_payload("Function.ResponseSizeTooLarge", "too big")
    assert broker.post_error("req-1", body, "Function.ResponseSizeTooLarge").status == 202
    assert inv.error_type == "Function.ResponseSizeTooLarge"
    assert inv.response == body


def test_default_limit_is_six_mb() -> None:
    assert InvocationBroker().max_response_bytes == MAX_PAYLOAD_BYTES == 6 * 1024 * 1024


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [
        (b'{"errorType": "FromBody"}', None, "FromBody"),
        (b'{"errorType": "FromBody"}', "FromHeader", "FromHeader"),
        (b"not json", None, "Unhandled"),
        (b"[1]", None, "Unhandled"),
        (b"", None, "Unhandled"),
    ],
)
def test_error_type_comes_from_the_header_then_the_body(
    body: bytes, header: str | None, expected: str
) -> None:
    broker = InvocationBroker()
    inv = invocation()
    broker.submit(inv)
    _take(broker)
    broker.post_error("req-1", body, header)
    assert inv.error_type == expected
    assert inv.response  # never empty: an empty body becomes an error document


def test_init_error_fails_the_pending_and_every_later_invocation() -> None:
    broker = InvocationBroker()
    pending = invocation()
    broker.submit(pending)
    body = error_payload("Runtime.HandlerNotFound", "no handler")
    assert broker.post_init_error(body, "Runtime.HandlerNotFound").status == 202
    assert pending.done.is_set() and pending.error_type == "Runtime.HandlerNotFound"
    later = invocation(request_id="req-2")
    broker.submit(later)
    assert later.done.is_set() and later.response == body


def test_error_payload_shape() -> None:
    assert json.loads(error_payload("T", "m", ["a", "b"])) == {
        "errorMessage": "m",
        "errorType": "T",
        "stackTrace": ["a", "b"],
    }


def test_trace_ids_look_like_xray_headers() -> None:
    first, second = new_trace_id(), new_trace_id()
    assert first != second
    root, parent, sampled = first.split(";")
    assert root.startswith("Root=1-") and len(root.split("-")[2]) == 24
    assert parent.startswith("Parent=") and sampled == "Sampled=0"


def test_invoke_result() -> None:
    ok = InvokeResult(
        request_id="r", payload=b'{"a": 1}', duration_ms=1.0, max_memory_mb=50, log_tail=""
    )
    assert ok.ok and ok.json_payload() == {"a": 1}
    failed = ok.model_copy(update={"function_error": "Unhandled"})
    assert not failed.ok


# ---- the sandbox's command line and environment ----------------------------------------


def test_bwrap_binds_layers_at_opt_and_code_at_var_task_read_only() -> None:
    argv = bwrap_argv("/usr/bin/bwrap", Path("/layers/merged"), Path("/code"), "/opt/bootstrap")
    pairs = list(zip(argv, argv[1:], argv[2:], strict=False))
    assert ("--ro-bind", "/layers/merged", "/opt") in pairs
    assert ("--ro-bind", "/code", "/var/task") in pairs
    assert ("--chdir", "/var/task", "/opt/bootstrap") in pairs
    assert argv[-1] == "/opt/bootstrap"
    assert "--tmpfs" in argv and argv[argv.index("--tmpfs") + 1] == "/tmp"
    assert "--die-with-parent" in argv
    # Loopback must stay the host's: the Runtime API listens there.
    assert "--unshare-net" not in argv and "--unshare-all" not in argv


def test_lambda_environment_in_the_sandbox() -> None:
    env = lambda_environment(
        api_address="127.0.0.1:9001",
        handler="main.handler",
        task_root="/var/task",
        function_name="fn",
        memory_mb=256,
        region="eu-west-1",
        mode=SandboxMode.BWRAP,
        extra={"MY_SETTING": "1", "TZ": "Europe/Paris"},
    )
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["_HANDLER"] == "main.handler"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["LD_LIBRARY_PATH"].endswith(":/opt/lib")
    assert env["MY_SETTING"] == "1" and env["TZ"] == "Europe/Paris"  # the function's own win


# ---- streamed responses and newer headers ---------------------------------------------


class ListBody:
    """A streamed body whose chunks are given, then its trailers."""

    def __init__(self, chunks: list[bytes], trailers: dict[str, str]) -> None:
        self._chunks = chunks
        self._final = trailers
        self.trailers: dict[str, str] = {}

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        self.trailers = self._final


def test_tenant_id_is_a_next_header_only_when_set() -> None:
    plain = invocation()
    plain.deliver()
    assert "Lambda-Runtime-Aws-Tenant-Id" not in plain.headers()
    tenant = invocation(tenant_id="t-1")
    tenant.deliver()
    assert tenant.headers()["Lambda-Runtime-Aws-Tenant-Id"] == "t-1"


def test_a_stream_reaches_on_chunk_chunk_by_chunk() -> None:
    broker = InvocationBroker()
    seen: list[tuple[bytes, bool]] = []
    inv = invocation(on_chunk=lambda c: seen.append((c, inv.done.is_set())))
    broker.submit(inv)
    _take(broker)
    reply = broker.post_stream("req-1", "text/plain", ListBody([b"a", b"bc"], {}))
    assert reply.status == 202
    assert seen == [(b"a", False), (b"bc", False)]  # each before the invocation ended
    assert inv.done.is_set() and inv.response == b"abc" and inv.error_type is None
    assert inv.streamed and inv.content_type == "text/plain"


def test_trailers_fail_a_stream_with_the_decoded_error() -> None:
    broker = InvocationBroker()
    inv = invocation()
    broker.submit(inv)
    _take(broker)
    error = error_payload("MyError", "late")
    trailers = {
        "lambda-runtime-function-error-type": "MyError",
        "lambda-runtime-function-error-body": base64.b64encode(error).decode(),
    }
    assert broker.post_stream("req-1", "text/plain", ListBody([b"part"], trailers)).status == 202
    assert (inv.response, inv.error_type, inv.stream_error) == (b"part", "MyError", error)


def test_a_stream_for_an_unknown_request_is_refused() -> None:
    reply = InvocationBroker().post_stream("nope", "text/plain", ListBody([], {}))
    assert reply.status == 400
