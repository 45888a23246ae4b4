"""The emulator's HTTP side with a tiny Python runtime client (loopback only, no processes)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.errors import PayloadTooLargeError
from rlayer.local.runtime_api import (
    ERROR_CONTENT_TYPE,
    Invocation,
    InvocationBroker,
    InvokeResult,
    InvokeServer,
    RuntimeAPIServer,
)

NEXT = "/2018-06-01/runtime/invocation/next"


@pytest.fixture
def api() -> Iterator[RuntimeAPIServer]:
    server = RuntimeAPIServer(InvocationBroker(max_response_bytes=1000))
    server.start()
    yield server
    server.close()


def client(server: RuntimeAPIServer) -> http.client.HTTPConnection:
    host, port = server.address.split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def submit(server: RuntimeAPIServer, request_id: str, payload: bytes = b"{}") -> Invocation:
    inv = Invocation(request_id=request_id, payload=payload, function_arn="arn:x", timeout_s=3.0)
    server.broker.submit(inv)
    return inv


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_a_runtime_serves_events_over_one_keep_alive_connection(api: RuntimeAPIServer) -> None:
    conn = client(api)
    sockets = set()
    for n in range(3):
        inv = submit(api, f"req-{n}", json.dumps({"n": n}).encode())
        status, headers, body = call(conn, "GET", NEXT)
        assert status == 200
        assert headers["Lambda-Runtime-Aws-Request-Id"] == f"req-{n}"
        assert json.loads(body) == {"n": n}
        sockets.add(id(conn.sock))
        status, _, _ = call(
            conn, "POST", f"/2018-06-01/runtime/invocation/req-{n}/response", b'"done"'
        )
        assert status == 202
        assert inv.done.is_set() and inv.response == b'"done"'
    assert len(sockets) == 1  # the server kept the connection open


def test_next_blocks_until_an_event_arrives(api: RuntimeAPIServer) -> None:
    conn = client(api)
    threading.Timer(0.1, submit, args=(api, "late")).start()
    status, headers, _ = call(conn, "GET", NEXT)
    assert status == 200 and headers["Lambda-Runtime-Aws-Request-Id"] == "late"


def test_error_report_with_its_type_header(api: RuntimeAPIServer) -> None:
    inv = submit(api, "req")
    conn = client(api)
    call(conn, "GET", NEXT)
    body = b'{"errorMessage": "boom", "errorType": "simpleError", "stackTrace": []}'
    status, _, _ = call(
        conn,
        "POST",
        "/2018-06-01/runtime/invocation/req/error",
        body,
        {"Content-Type": ERROR_CONTENT_TYPE, "Lambda-Runtime-Function-Error-Type": "simpleError"},
    )
    assert status == 202
    assert inv.error_type == "simpleError" and inv.response == body


def test_oversized_response_is_refused_with_413(api: RuntimeAPIServer) -> None:
    inv = submit(api, "req")
    conn = client(api)
    call(conn, "GET", NEXT)
    status, _, body = call(conn, "POST", "/2018-06-01/runtime/invocation/req/response", b"x" * 1001)
    assert status == 413
    assert json.loads(body)["errorType"] == "RequestEntityTooLarge"
    assert not inv.done.is_set()
    # The same connection carries on.
    status, _, _ = call(conn, "POST", "/2018-06-01/runtime/invocation/req/response", b"1")
    assert status == 202


def test_chunked_request_bodies_are_read(api: RuntimeAPIServer) -> None:
    inv = submit(api, "req")
    conn = client(api)
    call(conn, "GET", NEXT)
    conn.request(
        "POST",
        "/2018-06-01/runtime/invocation/req/response",
        body=iter([b'{"part":', b' "two"}']),
        encode_chunked=True,
        headers={"Transfer-Encoding": "chunked"},
    )
    assert conn.getresponse().status == 202
    assert inv.response == b'{"part": "two"}'


def test_init_error_and_unknown_routes(api: RuntimeAPIServer) -> None:
    conn = client(api)
    status, _, _ = call(conn, "GET", "/2018-06-01/runtime/invocation/unknown/response")
    assert status == 404
    status, _, _ = call(conn, "POST", "/2018-06-01/runtime/invocation/nope/response", b"{}")
    assert status == 400
    status, _, _ = call(
        conn,
        "POST",
        "/2018-06-01/runtime/init/error",
        b'{"errorMessage": "x", "errorType": "Runtime.HandlerNotFound"}',
    )
    assert status == 202
    assert api.broker.init_error is not None
    assert api.broker.init_error[1] == "Runtime.HandlerNotFound"


def test_closing_the_server_hangs_up_on_a_waiting_next(api: RuntimeAPIServer) -> None:
    conn = client(api)
    outcome: list[BaseException | int] = []

    def wait_for_next() -> None:
        try:
            outcome.append(call(conn, "GET", NEXT)[0])
        except (http.client.HTTPException, OSError) as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_next)
    waiter.start()
    threading.Timer(0.1, api.close).start()
    waiter.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], BaseException)


class FakeSession:
    """Stands in for RuntimeSession behind the Invoke endpoint."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, Any]] = []
        self.tenants: list[str | None] = []

    def invoke(
        self, payload: bytes, *, client_context: Any = None, tenant_id: str | None = None
    ) -> InvokeResult:
        if len(payload) > 100:
            raise PayloadTooLargeError("too big")
        self.calls.append((payload, client_context))
        self.tenants.append(tenant_id)
        failed = payload == b'"fail"'
        return InvokeResult(
            request_id="r",
            payload=b'{"errorType": "E"}' if failed else b'{"ok": true}',
            function_error="Unhandled" if failed else None,
            duration_ms=1.0,
            max_memory_mb=1,
            log_tail="START\nREPORT\n",
        )


def test_invoke_endpoint() -> None:
    session = FakeSession()
    with InvokeServer(session) as server:  # type: ignore[arg-type]
        host_port = server.url.split("/")[2]
        conn = http.client.HTTPConnection(host_port, timeout=10)
        path = "/2015-03-31/functions/function/invocations"
        context = base64.b64encode(b'{"custom": {"a": 1}}').decode()
        status, headers, body = call(
            conn, "POST", path, b'{"x": 1}', {"X-Amz-Client-Context": context}
        )
        assert (status, body) == (200, b'{"ok": true}')
        assert "X-Amz-Function-Error" not in headers and "X-Amz-Log-Result" not in headers
        assert session.calls[-1] == (b'{"x": 1}', '{"custom": {"a": 1}}')
        assert session.tenants[-1] is None
        call(conn, "POST", path, b"{}", {"X-Amz-Tenant-Id": "tenant-7"})
        assert session.tenants[-1] == "tenant-7"

        status, headers, _ = call(conn, "POST", path, b'"fail"', {"X-Amz-Log-Type": "Tail"})
        assert status == 200
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        assert base64.b64decode(headers["X-Amz-Log-Result"]) == b"START\nREPORT\n"

        assert call(conn, "POST", path, b"x" * 101)[0] == 413
        assert call(conn, "GET", path)[0] == 404
        status, _, _ = call(conn, "POST", path, b"")
        assert status == 200 and session.calls[-1][0] == b"{}"


def test_a_streamed_response_is_delivered_chunk_by_chunk_with_trailers(
    api: RuntimeAPIServer,
) -> None:
    arrived = threading.Event()
    seen: list[bytes] = []

    def on_chunk(chunk: bytes) -> None:
        seen.append(chunk)
        arrived.set()

    inv = Invocation(
        request_id="s1", payload=b"{}", function_arn="arn:x", timeout_s=3.0, on_chunk=on_chunk
    )
    api.broker.submit(inv)
    conn = client(api)
    assert call(conn, "GET", NEXT)[0] == 200
    # A streamed POST by hand: the head and a first chunk, then nothing until it has arrived.
    conn.putrequest("POST", "/2018-06-01/runtime/invocation/s1/response")
    conn.putheader("Content-Type", "text/plain")
    conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader(
        "Trailer", "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    )
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n")
    assert arrived.wait(5), "the first chunk did not arrive on its own"
    assert seen == [b"hello"] and not inv.done.is_set()
    error = base64.b64encode(b'{"errorType": "Late", "errorMessage": "gone"}').decode()
    conn.send(
        b"3\r\n, w\r\n0\r\nLambda-Runtime-Function-Error-Type: Late\r\n"
        b"Lambda-Runtime-Function-Error-Body: " + error.encode() + b"\r\n\r\n"
    )
    response = conn.getresponse()
    assert response.status == 202
    response.read()
    assert inv.done.wait(5)
    assert (inv.response, inv.error_type, inv.content_type) == (b"hello, w", "Late", "text/plain")
    assert json.loads(inv.stream_error or b"") == {"errorType": "Late", "errorMessage": "gone"}
    # The connection stays usable for the next /next.
    api.broker.submit(Invocation(request_id="s2", payload=b"{}", function_arn="a", timeout_s=3))
    assert call(conn, "GET", NEXT)[0] == 200


def _raw(server: RuntimeAPIServer, request: bytes) -> bytes:
    """Send bytes as they are and read the answer until the server hangs up."""
    host, port = server.address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"202 Accepted" in answer:
                break
        return answer


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /x HTTP/2.0\r\n\r\n", b"400"),
        (b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"GET /x HTTP/1.1\r\n" + b"X-N: 1\r\n" * 101 + b"\r\n", b"431"),
    ],
)
def test_malformed_requests_are_refused(
    api: RuntimeAPIServer, request_bytes: bytes, status: bytes
) -> None:
    assert _raw(api, request_bytes).split(b"\r\n", 1)[0].split(b" ")[1] == status


def test_a_body_sent_after_100_continue_is_read(api: RuntimeAPIServer) -> None:
    # curl asks before a body over 1 KB and sends it only after "100 Continue".
    inv = submit(api, "req-c")
    conn = client(api)
    assert call(conn, "GET", NEXT)[0] == 200
    host, port = api.address.split(":")
    body = b'"' + b"x" * 500 + b'"'  # (this server's limit is 1000 bytes)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /2018-06-01/runtime/invocation/req-c/response HTTP/1.1\r\n"
            b"Host: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        assert b" 202 " in sock.recv(65536).split(b"\r\n", 1)[0]
    assert inv.done.wait(5) and inv.response == body
