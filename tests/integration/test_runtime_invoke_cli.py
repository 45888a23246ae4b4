"""`rlayer invoke` as a user runs it, and the emulator's Invoke endpoint over HTTP."""

from __future__ import annotations

import base64
import http.client
import io
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from rlayer.cli import main
from rlayer.local.runtime_api import MAX_PAYLOAD_BYTES, InvokeServer, RuntimeSession

from .conftest import HandlerWriter

pytestmark = pytest.mark.integration

HANDLER_R = """
handler <- function(event) {
  cat("working on", event$name, "\\n")
  if (identical(event$name, "bad")) stop("bad name")
  list(greeting = paste("hello", event$name))
}
"""


def rlayer(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    # The console script of this environment, as a user would run it.
    exe = Path(sys.executable).with_name("rlayer")
    return subprocess.run(
        [str(exe), *args], input=stdin, capture_output=True, cwd=cwd, timeout=120, check=False
    )


def test_invoke_prints_the_response(write_handler: HandlerWriter, tmp_path: Path) -> None:
    root = write_handler("main.R", HANDLER_R)
    event = tmp_path / "event.json"
    event.write_text('{"name": "world"}')
    done = rlayer("invoke", "main.handler", "--event", str(event), "--task-root", str(root))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"greeting": "hello world"}
    log = done.stderr.decode()
    assert "working on world" in log and "REPORT RequestId:" in log
    assert "Init Duration:" in log


def test_invoke_reads_stdin_from_the_task_root_and_fails_with_status_1(
    write_handler: HandlerWriter,
) -> None:
    root = write_handler("main.R", HANDLER_R)
    done = rlayer(
        "invoke", "main.handler", "--event", "-", "-q", stdin=b'{"name": "bad"}', cwd=root
    )
    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert body["errorType"] == "simpleError" and body["errorMessage"] == "bad name"
    assert done.stderr == b""  # --quiet


def test_invoke_with_layers_and_timeout(
    write_handler: HandlerWriter, runtime_layer: Path, r_layer: Path, tmp_path: Path
) -> None:
    root = write_handler("main.R", "handler <- function(event) { Sys.sleep(5); 1 }\n")
    zipped = tmp_path / "runtime.zip"
    subprocess.run(["zip", "-q", "-r", "-y", str(zipped), "."], cwd=runtime_layer, check=True)
    done = rlayer(
        "invoke",
        "main.handler",
        "--event",
        "-",
        "--task-root",
        str(root),
        "--layer",
        str(zipped),
        "--layer",
        str(r_layer),
        "--timeout",
        "1",
        stdin=b"{}",
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["errorType"] == "Sandbox.Timedout"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["main.handler", "--event", "-"], b"{nope", "not valid JSON"),
        (["main", "--event", "-"], b"{}", "not file.function"),
        (["main.handler", "--event", "-", "--layer", "/no/such/layer"], b"{}", "does not exist"),
        (["main.handler", "--event", "-", "--memory", "64"], b"{}", "memory_mb"),
        (["main.handler", "--event", "-", "--max-concurrency", "0"], b"{}", "max_concurrency"),
    ],
)
def test_invoke_usage_errors_exit_2(
    write_handler: HandlerWriter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    stdin: bytes,
    message: str,
) -> None:
    root = write_handler("main.R", HANDLER_R)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    assert main(["invoke", *args, "--task-root", str(root)]) == 2
    assert message in capsys.readouterr().err


def _post(url: str, body: bytes, headers: dict[str, str]) -> http.client.HTTPResponse:
    host_port, path = url.removeprefix("http://").split("/", 1)
    conn = http.client.HTTPConnection(host_port, timeout=60)
    conn.request("POST", "/" + path, body=body, headers=headers)
    return conn.getresponse()


def test_invoke_endpoint_answers_like_lambda(write_handler: HandlerWriter) -> None:
    root = write_handler("main.R", HANDLER_R)
    with (
        RuntimeSession(task_root=root, handler="main.handler") as session,
        InvokeServer(session) as server,
    ):
        assert server.url.endswith("/2015-03-31/functions/function/invocations")
        ok = _post(server.url, b'{"name": "http"}', {"X-Amz-Log-Type": "Tail"})
        assert ok.status == 200
        assert json.loads(ok.read()) == {"greeting": "hello http"}
        assert ok.getheader("X-Amz-Function-Error") is None
        log = base64.b64decode(ok.getheader("X-Amz-Log-Result") or "").decode()
        assert "working on http" in log

        failed = _post(server.url, b'{"name": "bad"}', {})
        assert failed.status == 200
        assert failed.getheader("X-Amz-Function-Error") == "Unhandled"
        assert json.loads(failed.read())["errorMessage"] == "bad name"

        too_big = _post(server.url, b"x" * (MAX_PAYLOAD_BYTES + 1), {})
        assert too_big.status == 413
        assert too_big.getheader("x-amzn-ErrorType") == "RequestTooLargeException"


STREAM_R = """
handler <- function(event, stream) {
  stream$write("first\\n")
  gate <- file.path(Sys.getenv("LAMBDA_TASK_ROOT"), "gate")
  while (!file.exists(gate)) Sys.sleep(0.02)
  stream$write("second\\n")
  if (isTRUE(event$fail)) stop("gave up")
}
"""


def test_invoke_stream_prints_chunks_as_they_arrive(write_handler: HandlerWriter) -> None:
    root = write_handler("main.R", STREAM_R)
    exe = Path(sys.executable).with_name("rlayer")
    with subprocess.Popen(
        [str(exe), "invoke", "main.handler", "--event", "-", "--stream", "-q"],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(b'{"fail": true}')
        proc.stdin.close()
        # The handler waits for the gate: the first chunk is printed before it returns.
        assert proc.stdout.readline() == b"first\n"
        (root / "gate").touch()
        rest = proc.stdout.read()
        error = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
    assert rest == b"second\n\n"
    assert "stream ended with simpleError" in error and "gave up" in error


def test_invoke_with_response_stream_endpoint_reads_with_boto3(
    write_handler: HandlerWriter,
) -> None:
    root = write_handler("main.R", STREAM_R)
    with (
        RuntimeSession(task_root=root, handler="main.handler", timeout_s=30) as session,
        InvokeServer(session) as server,
    ):
        client = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{server.port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        response = client.invoke_with_response_stream(
            FunctionName="function", Payload=b'{"fail": true}', LogType="Tail"
        )
        assert response["ExecutedVersion"] == "$LATEST"
        events = iter(response["EventStream"])
        # The handler waits for the gate after its first chunk: that chunk came before.
        assert next(events) == {"PayloadChunk": {"Payload": b"first\n"}}
        (root / "gate").touch()
        rest = list(events)
    assert rest[0] == {"PayloadChunk": {"Payload": b"second\n"}}
    complete = rest[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "simpleError"
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "gave up"
    assert "REPORT RequestId:" in base64.b64decode(complete["LogResult"]).decode()


def test_invoke_with_response_stream_of_a_buffered_answer(write_handler: HandlerWriter) -> None:
    root = write_handler("main.R", HANDLER_R)
    with (
        RuntimeSession(task_root=root, handler="main.handler") as session,
        InvokeServer(session) as server,
    ):
        client = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{server.port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        events = list(
            client.invoke_with_response_stream(FunctionName="function", Payload=b'{"name": "s"}')[
                "EventStream"
            ]
        )
        failed = list(
            client.invoke_with_response_stream(FunctionName="function", Payload=b'{"name": "bad"}')[
                "EventStream"
            ]
        )
    assert json.loads(events[0]["PayloadChunk"]["Payload"]) == {"greeting": "hello s"}
    assert events[-1] == {"InvokeComplete": {}}
    assert failed[-1]["InvokeComplete"]["ErrorCode"] == "simpleError"
