"""The Runtime API contract (DESIGN.md section 3), point by point, with real R.

Most points share one warm function (a handler that switches on ``event$case``); the
points that end the process (init errors, timeouts, crashes) start their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from rlayer.local.process import RuntimeProcess
from rlayer.local.runtime_api import (
    Invocation,
    InvocationBroker,
    Reply,
    RuntimeAPIServer,
    RuntimeSession,
)
from rlayer.local.runtime_api import server as server_module
from rlayer.local.sandbox import Sandbox, lambda_environment

from .conftest import HandlerWriter, SessionFactory

pytestmark = pytest.mark.integration

CONTRACT_R = r"""
sourced <- 0L
sourced <- sourced + 1L
calls <- 0L

proxy <- function(event) {
  mode <- event$queryStringParameters$mode
  if (mode == "status") {
    return(list(statusCode = 201L, headers = list(`X-Test` = "yes"),
                body = list(made = TRUE, path = event$path)))
  }
  if (mode == "string") return(list(statusCode = 204L, body = "as is"))
  list(plain = TRUE)
}

handler <- function(event, context) {
  calls <<- calls + 1L
  if (!is.null(event$requestContext)) return(proxy(event))
  switch(event$case,
    echo = event$value,
    context = list(
      request_id = context$aws_request_id,
      arn = context$invoked_function_arn,
      deadline_ms = context$deadline_ms,
      remaining_ms = context$get_remaining_time_in_millis(),
      function_name = context$function_name,
      memory_mb = context$memory_limit_in_mb,
      trace_env = Sys.getenv("_X_AMZN_TRACE_ID"),
      trace_id = context$trace_id,
      client_context = context$client_context,
      identity = context$identity
    ),
    state = list(sourced = sourced, calls = calls, pid = Sys.getpid()),
    types = list(num = 1.5, int = 2L, str = "\u00e9\u2713", yes = TRUE, nothing = NULL,
                 missing = NA, vec = c(1, 2, 3), one = I(4), empty = list(),
                 nested = list(a = list(b = "c")), strings = c("x", "y")),
    null = NULL,
    event_shape = list(
      vec_is_numeric = is.numeric(event$vec) && length(event$vec) == 3L,
      objects_stay_lists = is.list(event$objects) && identical(event$objects[[2]]$id, 2L),
      null_is_null = is.null(event$nothing)
    ),
    fail = stop("bad input: ", event$value),
    custom = stop(structure(class = c("ValidationError", "error", "condition"),
                            list(message = "custom failure", call = NULL))),
    big = strrep("x", 7 * 1024 * 1024),
    unserialisable = new.env(),
    say = { cat("hello from R\n"); message("to stderr"); "said" },
    size = nchar(event$blob),
    stop(sprintf("unknown case %s", event$case))
  )
}
"""


def payload(**event: object) -> bytes:
    return json.dumps(event).encode()


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory, host_r: Path) -> Iterator[RuntimeSession]:
    root = tmp_path_factory.mktemp("contract")
    (root / "contract.R").write_text(CONTRACT_R)
    with RuntimeSession(task_root=root, handler="contract.handler", timeout_s=5) as session:
        yield session


def test_event_and_response_are_json(contract: RuntimeSession) -> None:
    result = contract.invoke(payload(case="echo", value={"a": [1, 2], "b": "text"}))
    assert result.ok, result.payload
    assert result.json_payload() == {"a": [1, 2], "b": "text"}


def test_scalars_are_unboxed_and_null_is_null(contract: RuntimeSession) -> None:
    result = contract.invoke(payload(case="types"))
    assert result.json_payload() == {
        "num": 1.5,
        "int": 2,
        "str": "é✓",
        "yes": True,
        "nothing": None,
        "missing": None,
        "vec": [1, 2, 3],
        "one": [4],
        "empty": [],
        "nested": {"a": {"b": "c"}},
        "strings": ["x", "y"],
    }
    assert contract.invoke(payload(case="null")).payload == b"null"


def test_event_arrays_of_scalars_are_vectors_arrays_of_objects_lists(
    contract: RuntimeSession,
) -> None:
    event = payload(case="event_shape", vec=[1, 2, 3], objects=[{"id": 1}, {"id": 2}], nothing=None)
    assert contract.invoke(event).json_payload() == {
        "vec_is_numeric": True,
        "objects_stay_lists": True,
        "null_is_null": True,
    }


def test_context_carries_the_request_headers(contract: RuntimeSession) -> None:
    before_ms = time.time() * 1000
    result = contract.invoke(
        payload(case="context"),
        client_context={"custom": {"tenant": "t1"}, "env": {"locale": "en"}},
        cognito_identity={"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "p"},
    )
    ctx = result.json_payload()
    assert ctx["request_id"] == result.request_id
    assert ctx["arn"] == contract.function_arn
    assert before_ms + 4000 < ctx["deadline_ms"] <= time.time() * 1000 + 5000
    assert 0 < ctx["remaining_ms"] <= 5000
    assert ctx["function_name"] == contract.function_name
    assert ctx["memory_mb"] == contract.memory_mb
    assert ctx["client_context"] == {"custom": {"tenant": "t1"}, "env": {"locale": "en"}}
    assert ctx["identity"]["cognitoIdentityId"] == "us-east-1:abc"


def test_trace_id_is_copied_to_the_environment(contract: RuntimeSession) -> None:
    first = contract.invoke(payload(case="context")).json_payload()
    second = contract.invoke(payload(case="context")).json_payload()
    assert first["trace_env"].startswith("Root=1-")
    assert first["trace_env"] == first["trace_id"]
    assert second["trace_env"] == second["trace_id"] != first["trace_env"]


def test_handler_is_sourced_once_and_the_process_stays(contract: RuntimeSession) -> None:
    first = contract.invoke(payload(case="state")).json_payload()
    second = contract.invoke(payload(case="state")).json_payload()
    assert first["sourced"] == second["sourced"] == 1
    assert second["calls"] == first["calls"] + 1
    assert first["pid"] == second["pid"]


def test_handler_error_is_reported_and_the_loop_goes_on(contract: RuntimeSession) -> None:
    pid = contract.invoke(payload(case="state")).json_payload()["pid"]
    result = contract.invoke(payload(case="fail", value=42))
    assert result.function_error == "Unhandled"
    body = result.json_payload()
    assert body["errorType"] == "simpleError" == result.error_type
    assert body["errorMessage"] == "bad input: 42"
    trace = body["stackTrace"]
    assert trace[0].startswith("contract.R:") and 'stop("bad input: "' in trace[0]
    assert trace[-1].startswith("handler(event")
    assert "[ERROR]" in result.log_tail and "bad input: 42" in result.log_tail
    after = contract.invoke(payload(case="state")).json_payload()
    assert after["pid"] == pid


def test_error_type_is_the_condition_class(contract: RuntimeSession) -> None:
    result = contract.invoke(payload(case="custom"))
    assert result.json_payload()["errorType"] == "ValidationError"
    assert result.json_payload()["errorMessage"] == "custom failure"


def test_oversized_response_becomes_an_error(contract: RuntimeSession) -> None:
    result = contract.invoke(payload(case="big"))
    assert result.function_error == "Unhandled"
    assert result.json_payload()["errorType"] == "Function.ResponseSizeTooLarge"
    assert "6291456" in result.json_payload()["errorMessage"]
    assert contract.invoke(payload(case="echo", value=1)).json_payload() == 1


def test_large_event_arrives_whole(contract: RuntimeSession) -> None:
    blob = "y" * (5 * 1024 * 1024)
    assert contract.invoke(payload(case="size", blob=blob)).json_payload() == len(blob)


def test_event_that_is_not_json_is_an_unmarshal_error(contract: RuntimeSession) -> None:
    result = contract.invoke(b"{not json")
    assert result.json_payload()["errorType"] == "Runtime.UnmarshalError"


def test_value_that_is_not_serialisable_is_a_marshal_error(contract: RuntimeSession) -> None:
    result = contract.invoke(payload(case="unserialisable"))
    assert result.json_payload()["errorType"] == "Runtime.MarshalError"


def test_proxy_response_with_status_code_passes_through(contract: RuntimeSession) -> None:
    event = payload(
        httpMethod="GET",
        path="/things",
        requestContext={"stage": "dev"},
        queryStringParameters={"mode": "status"},
    )
    answer = contract.invoke(event).json_payload()
    assert answer["statusCode"] == 201
    assert answer["headers"] == {"X-Test": "yes"}
    assert json.loads(answer["body"]) == {"made": True, "path": "/things"}


def test_proxy_string_body_is_kept_and_other_values_are_wrapped(
    contract: RuntimeSession,
) -> None:
    base = {"routeKey": "GET /", "requestContext": {"http": {"method": "GET"}}}
    kept = contract.invoke(payload(**base, queryStringParameters={"mode": "string"}))
    assert kept.json_payload() == {"statusCode": 204, "body": "as is"}
    wrapped = contract.invoke(payload(**base, queryStringParameters={"mode": "plain"}))
    answer = wrapped.json_payload()
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "application/json"
    assert json.loads(answer["body"]) == {"plain": True}


def test_handler_output_is_in_the_log_tail(contract: RuntimeSession) -> None:
    result = contract.invoke(payload(case="say"))
    assert result.json_payload() == "said"
    lines = result.log_tail.splitlines()
    assert lines[0] == f"START RequestId: {result.request_id} Version: $LATEST"
    assert "hello from R" in lines and "to stderr" in lines
    assert lines[-1].startswith(f"REPORT RequestId: {result.request_id}\tDuration: ")


# ---- each of these starts its own runtime ---------------------------------------------


def test_context_argument_is_optional(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler(
        "main.R",
        """
        handler <- function(event) list(got = event$x)
        no_args <- function() "no arguments"
        """,
    )
    assert make_session(task_root=root, handler="main.handler").invoke(
        payload(x=7)
    ).json_payload() == {"got": 7}
    session = make_session(task_root=root, handler="main.no_args")
    assert session.invoke(b"{}").json_payload() == "no arguments"


def test_lowercase_r_file_and_dotted_function_names(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler("app.r", "my.handler <- function(event) 'dotted'\n")
    session = make_session(task_root=root, handler="app.my.handler")
    assert session.invoke(b"{}").json_payload() == "dotted"


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message_part"),
    [
        ({}, "missing.handler", "Runtime.ImportModuleError", "missing.R"),
        (
            {"main.R": "other <- function(event) 1\n"},
            "main.handler",
            "Runtime.HandlerNotFound",
            "no function 'handler'",
        ),
        (
            {"main.R": "handler <- function(event) {\n"},
            "main.handler",
            "Runtime.UserCodeSyntaxError",
            "unexpected end of input",
        ),
        (
            {"main.R": "library(notapackage42)\nhandler <- function(event) 1\n"},
            "main.handler",
            "Runtime.ImportModuleError",
            "notapackage42",
        ),
        ({"main.R": "stop('no config')\n"}, "main.handler", "Runtime.InitError", "no config"),
        (
            {"main.R": "handler <- function(event) 1\n"},
            "main",
            "Runtime.MalformedHandlerName",
            "file.function",
        ),
    ],
    ids=[
        "missing-file",
        "missing-function",
        "parse-error",
        "missing-package",
        "init-stop",
        "malformed-name",
    ],
)
def test_init_errors_are_reported_on_every_invoke(
    write_handler: HandlerWriter,
    make_session: SessionFactory,
    task_root: Path,
    files: dict[str, str],
    handler: str,
    error_type: str,
    message_part: str,
) -> None:
    for name, source in files.items():
        write_handler(name, source)
    session = make_session(task_root=task_root, handler=handler)
    for _ in range(2):  # the process exits; the next invoke starts (and fails) again
        result = session.invoke(b"{}")
        assert result.function_error == "Unhandled"
        body = result.json_payload()
        assert body["errorType"] == error_type
        assert message_part in body["errorMessage"]
        assert result.init_ms is not None
        assert not session.warm


def test_timeout_kills_the_runtime_and_the_next_invoke_is_cold(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler(
        "main.R",
        "handler <- function(event) { Sys.sleep(event$sleep); 'awake' }\n",
    )
    session = make_session(task_root=root, handler="main.handler", timeout_s=1)
    assert session.invoke(payload(sleep=0)).ok
    first_pid = session.runtime_pid
    slow = session.invoke(payload(sleep=10))
    assert slow.function_error == "Unhandled"
    assert slow.json_payload()["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in slow.json_payload()["errorMessage"]
    assert 1000 <= slow.duration_ms < 3000
    after = session.invoke(payload(sleep=0))
    assert after.ok and after.init_ms is not None
    assert session.runtime_pid != first_pid  # a new process


def test_crash_is_an_exit_error_and_the_next_invoke_is_cold(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler(
        "main.R",
        "handler <- function(event) if (isTRUE(event$crash)) quit(status = 3L) else 'fine'\n",
    )
    session = make_session(task_root=root, handler="main.handler")
    crashed = session.invoke(payload(crash=True))
    assert crashed.json_payload()["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in crashed.json_payload()["errorMessage"]
    again = session.invoke(payload(crash=False))
    assert again.json_payload() == "fine" and again.init_ms is not None


def test_memory_over_the_size_is_out_of_memory(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler("main.R", "handler <- function(event) { x <- numeric(40e6); length(x) }\n")
    session = make_session(task_root=root, handler="main.handler", memory_mb=128)
    result = session.invoke(b"{}")
    assert result.json_payload()["errorType"] == "Runtime.OutOfMemory"
    assert result.max_memory_mb > 128


class _Failing(RuntimeAPIServer):
    """A Runtime API in a non-recoverable state: 500 to everything."""

    def dispatch(self, method: str, path: str, headers: object, body: bytes) -> Reply:
        return Reply.json(500, {"errorMessage": "container error", "errorType": "ServiceError"})

    def dispatch_next(self, send: Callable[[Reply], None]) -> bool:
        send(self.dispatch("GET", "/2018-06-01/runtime/invocation/next", {}, b""))
        return True


def _spawn_runtime(server: RuntimeAPIServer, sandbox: Sandbox) -> RuntimeProcess:
    env = lambda_environment(
        api_address=server.address,
        handler="main.handler",
        task_root=sandbox.task_root_inside,
        function_name="f",
        memory_mb=128,
        region="us-east-1",
        mode=sandbox.mode,
    )
    return sandbox.spawn(env)


def test_a_500_from_the_runtime_api_ends_the_process(
    write_handler: HandlerWriter, task_root: Path
) -> None:
    write_handler("main.R", "handler <- function(event) 1\n")
    server = _Failing(InvocationBroker())
    server.start()
    sandbox = Sandbox([], task_root)
    try:
        process = _spawn_runtime(server, sandbox)
        assert process.proc.wait(timeout=30) == 1
        process.drain()
        assert b"answered 500" in process.logs_since(0)
        process.kill()
    finally:
        server.close()
        sandbox.close()


class _ClosingHandler(server_module._Handler):
    """Hangs up after every answer to a POST without saying so (no Connection: close), as
    a server dropping idle keep-alive connections does."""

    connections: ClassVar[list[int]] = []  # one entry a connection accepted

    def setup(self) -> None:
        super().setup()
        self.connections.append(1)

    def _handle(self) -> None:
        super()._handle()
        if self.command == "POST":
            self.close_connection = True


class _Cutting(RuntimeAPIServer):
    """Cuts the connection instead of answering the response to an event."""

    def dispatch(self, method: str, path: str, headers: object, body: bytes) -> Reply | None:
        if path.endswith("/response"):
            return None  # the server hangs up without an answer
        return super().dispatch(method, path, headers, body)  # type: ignore[arg-type]


def test_a_connection_the_server_closed_while_idle_is_opened_again(
    write_handler: HandlerWriter, task_root: Path
) -> None:
    write_handler("main.R", "handler <- function(event) event$n * 2\n")
    server = RuntimeAPIServer(InvocationBroker())
    server._httpd.RequestHandlerClass = _ClosingHandler
    _ClosingHandler.connections.clear()
    server.start()
    sandbox = Sandbox([], task_root)
    process = _spawn_runtime(server, sandbox)
    try:
        answers = []
        for n in range(3):
            inv = Invocation(
                request_id=f"req-{n}", payload=b'{"n": %d}' % n, function_arn="a", timeout_s=9
            )
            server.broker.submit(inv)
            assert inv.done.wait(30), process.logs_since(0)
            answers.append(inv.response)
        assert answers == [b"0", b"2", b"4"]
        assert process.poll() is None
        # A connection per event: each closed one was noticed and a new one opened.
        assert len(_ClosingHandler.connections) >= 3
    finally:
        process.kill()
        server.close()
        sandbox.close()


def test_a_connection_cut_during_an_exchange_ends_the_runtime_with_the_reason(
    write_handler: HandlerWriter, task_root: Path
) -> None:
    write_handler("main.R", "handler <- function(event) 1\n")
    server = _Cutting(InvocationBroker())
    server.start()
    sandbox = Sandbox([], task_root)
    process = _spawn_runtime(server, sandbox)
    try:
        server.broker.submit(
            Invocation(request_id="req-1", payload=b"{}", function_arn="a", timeout_s=9)
        )
        assert process.proc.wait(timeout=30) == 1
        process.drain()
        log = process.logs_since(0).decode()
        assert "rlayer runtime: connection closed by the Runtime API" in log
        assert "; exiting" in log
    finally:
        process.kill()
        server.close()
        sandbox.close()


def test_the_loop_runs_without_jsonlite_until_a_value_needs_it(
    write_handler: HandlerWriter, make_session: SessionFactory, tmp_path: Path
) -> None:
    # JSON is base R (json.R); jsonlite is loaded only for values it alone writes.
    root = write_handler(
        "main.R",
        """\
        handler <- function(event) {
          if (isTRUE(event$frame)) data.frame(a = 1) else list(got = event, jsonlite =
            "jsonlite" %in% loadedNamespaces())
        }
        """,
    )
    empty = tmp_path / "empty-library"
    empty.mkdir()
    # Host R's site libraries (where Debian puts jsonlite) replaced by an empty one.
    session = make_session(task_root=root, handler="main.handler", env={"R_LIBS_SITE": str(empty)})
    body = session.invoke(b'{"x": [1, 2]}').json_payload()
    assert body == {"got": {"x": [1, 2]}, "jsonlite": False}
    failed = session.invoke(b'{"frame": true}').json_payload()
    assert failed["errorType"] == "Runtime.MarshalError"
    assert "needs the jsonlite package, which is not installed" in failed["errorMessage"]


def test_init_error_carries_the_call_stack_with_lines(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler(
        "main.R",
        """\
        settings <- list()
        load_config <- function() {
          stop("no config")
        }
        load_config()
        """,
    )
    body = make_session(task_root=root, handler="main.handler").invoke(b"{}").json_payload()
    assert body["errorType"] == "Runtime.InitError"
    assert body["stackTrace"] == ['main.R:3 stop("no config")', "main.R:5 load_config()"]
