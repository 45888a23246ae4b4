"""Logging (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL, lambda_log), the missing-function
hint, and the context fields of newer Lambda features, with real R on the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rlayer.local.runtime_api import InvokeResult

from .conftest import HandlerWriter, SessionFactory

pytestmark = pytest.mark.integration

LOGGING_R = r"""
message("sourcing")
handler <- function(event, context) {
  switch(event$case,
    talk = {
      message("hello ", "\"world\"\ttab")
      warning("careful")
      lambda_log("debug detail", level = "DEBUG")
      lambda_log("counted", fields = list(n = 3L, ok = TRUE, tag = "x"))
      cat("plain stdout\n")
      "done"
    },
    long = { message(strrep("\u00e9", 5000)); "done" },
    odd = {
      message("bell\a and \001 control")
      message(rawToChar(as.raw(c(0x62, 0xff, 0x65))))  # not UTF-8
      "done"
    },
    fail = stop("it broke"),
    head = head(1:10, 3),
    median = median(c(1, 5, 9)),
    nosuch = no_such_function_anywhere(1),
    context = list(tenant = context$tenant_id, client = context$client_context)
  )
}
"""

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def json_lines(result: InvokeResult) -> list[dict[str, Any]]:
    """The log tail's JSON lines from the runtime and the handler (not the platform's)."""
    lines = []
    for line in result.log_tail.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if not str(doc.get("type", "")).startswith("platform."):
                lines.append(doc)
    return lines


def platform_records(result: InvokeResult) -> list[dict[str, Any]]:
    docs = (json.loads(line) for line in result.log_tail.splitlines() if line.startswith("{"))
    return [doc for doc in docs if str(doc.get("type", "")).startswith("platform.")]


@pytest.fixture
def logging_root(write_handler: HandlerWriter) -> Path:
    return write_handler("logs.R", LOGGING_R)


def test_json_format_turns_every_line_into_an_object_with_the_request_id(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    session = make_session(
        task_root=logging_root, handler="logs.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"}
    )
    result = session.invoke(b'{"case": "talk"}')
    assert result.ok, result.payload
    lines = json_lines(result)
    by_message = {line["message"]: line for line in lines}
    assert by_message["sourcing"]["level"] == "INFO"
    assert "requestId" not in by_message["sourcing"]  # init: no event yet
    hello = by_message['hello "world"\ttab']
    assert hello["level"] == "INFO" and hello["requestId"] == result.request_id
    assert RFC3339.match(hello["timestamp"])
    assert by_message["careful"]["level"] == "WARN"
    assert by_message["careful"]["requestId"] == result.request_id
    assert by_message["debug detail"]["level"] == "DEBUG"
    counted = by_message["counted"]
    assert (counted["n"], counted["ok"], counted["tag"]) == (3, True, "x")
    # What the handler prints on stdout is its own business, left as it is.
    assert "plain stdout" in result.log_tail
    assert "Warning" not in result.log_tail  # R's own warning text is replaced

    failed = session.invoke(b'{"case": "fail"}')
    error = next(line for line in json_lines(failed) if line["level"] == "ERROR")
    assert error["requestId"] == failed.request_id
    assert error["errorType"] == "simpleError" and error["errorMessage"] == "it broke"
    assert error["stackTrace"][0].startswith("logs.R:")


def test_json_format_makes_the_platform_lines_json_records_too(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    session = make_session(
        task_root=logging_root, handler="logs.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"}
    )
    result = session.invoke(b'{"case": "context"}')
    assert result.ok, result.payload
    # Nothing but JSON objects and the handler's own stdout (none here).
    assert all(line.startswith("{") for line in result.log_tail.splitlines())
    start, done, report = platform_records(result)
    assert start["type"] == "platform.start" and RFC3339.match(start["time"])
    assert start["record"] == {"requestId": result.request_id, "version": "$LATEST"}
    assert done["type"] == "platform.runtimeDone"
    assert done["record"] == {"requestId": result.request_id, "status": "success"}
    assert report["type"] == "platform.report" and report["record"]["status"] == "success"
    metrics = report["record"]["metrics"]
    assert metrics["memorySizeMB"] == 128 and metrics["billedDurationMs"] >= 1
    assert metrics["maxMemoryUsedMB"] == result.max_memory_mb
    assert metrics["initDurationMs"] > 0  # the first invoke of this environment

    failed = session.invoke(b'{"case": "fail"}')
    done, report = platform_records(failed)[-2:]
    assert done["record"]["status"] == report["record"]["status"] == "failure"
    assert done["record"]["errorType"] == "simpleError"
    assert "initDurationMs" not in report["record"]["metrics"]  # warm


def test_log_level_filters_lines_below_it(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    session = make_session(
        task_root=logging_root,
        handler="logs.handler",
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN"},
    )
    result = session.invoke(b'{"case": "talk"}')
    levels = {line["message"]: line["level"] for line in json_lines(result)}
    assert levels == {"careful": "WARN"}
    failed = session.invoke(b'{"case": "fail"}')
    assert [line["level"] for line in json_lines(failed)] == ["ERROR"]


def test_long_lines_are_cut_to_one_pipe_write(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    lines: list[str] = []
    session = make_session(
        task_root=logging_root,
        handler="logs.handler",
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON"},
        log_sink=lines.append,
    )
    assert session.invoke(b'{"case": "long"}').ok
    long = next(line for line in lines if line.startswith('{"timestamp') and "é" in line)
    assert len(long.encode()) + 1 <= 4096  # with its newline: PIPE_BUF
    assert json.loads(long)["message"].endswith("...")


def test_text_format_is_the_default(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    session = make_session(task_root=logging_root, handler="logs.handler")
    result = session.invoke(b'{"case": "talk"}')
    assert 'hello "world"\ttab' in result.log_tail
    assert f"[INFO] RequestId: {result.request_id} counted" in result.log_tail
    assert not json_lines(result)
    failed = session.invoke(b'{"case": "fail"}')
    assert f"[ERROR] RequestId: {failed.request_id} simpleError: it broke" in failed.log_tail


def test_a_default_package_function_gets_a_hint(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    session = make_session(task_root=logging_root, handler="logs.handler")
    for case, fn, pkg in (("head", "head", "utils"), ("median", "median", "stats")):
        message = session.invoke(json.dumps({"case": case}).encode()).json_payload()["errorMessage"]
        assert message.startswith(f'could not find function "{fn}"'), message
        assert f"{fn}() is in package {pkg}" in message
        assert "R_DEFAULT_PACKAGES" in message and f"library({pkg})" in message
    # A function no default package has: the message stays R's own.
    nosuch = session.invoke(b'{"case": "nosuch"}').json_payload()["errorMessage"]
    assert nosuch == 'could not find function "no_such_function_anywhere"'


def test_with_the_package_attached_there_is_no_error(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    session = make_session(
        task_root=logging_root, handler="logs.handler", env={"R_DEFAULT_PACKAGES": "base,utils"}
    )
    assert session.invoke(b'{"case": "head"}').json_payload() == [1, 2, 3]


def test_an_init_error_gets_the_hint_too(
    make_session: SessionFactory, write_handler: HandlerWriter, host_r: Path
) -> None:
    root = write_handler("init.R", "x <- head(letters)\nhandler <- function(event) x\n")
    result = make_session(task_root=root, handler="init.handler").invoke(b"{}")
    body = result.json_payload()
    assert body["errorType"] == "Runtime.InitError"
    assert "head() is in package utils" in body["errorMessage"]


def test_tenant_id_and_client_context_reach_the_context(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    session = make_session(task_root=logging_root, handler="logs.handler")
    result = session.invoke(
        b'{"case": "context"}', tenant_id="tenant-42", client_context={"custom": {"k": "v"}}
    )
    assert result.json_payload() == {"tenant": "tenant-42", "client": {"custom": {"k": "v"}}}
    # Without a tenant (the usual case) the field is absent, i.e. NULL in R.
    plain = session.invoke(b'{"case": "context"}').json_payload()
    assert plain == {"tenant": None, "client": None}


def test_json_lines_stay_json_for_control_characters_and_stray_bytes(
    make_session: SessionFactory, logging_root: Path, host_r: Path
) -> None:
    lines: list[str] = []
    session = make_session(
        task_root=logging_root,
        handler="logs.handler",
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON"},
        log_sink=lines.append,
    )
    assert session.invoke(b'{"case": "odd"}').ok
    docs = [json.loads(line) for line in lines if line.startswith("{")]
    messages = [doc["message"] for doc in docs if "message" in doc]  # not platform records
    assert "bell\a and \x01 control" in messages
    # The stray byte is replaced (as "?", or as R's "<ff>" where the locale is C).
    assert "b?e" in messages or "b<ff>e" in messages
