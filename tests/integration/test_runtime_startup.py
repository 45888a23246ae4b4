"""What the runtime does at start-up: base R only (no jsonlite, no methods), and the
RLAYER_STARTUP_TIMES line bench/runtime splits a cold start with."""

from __future__ import annotations

import re

import pytest

from .conftest import HandlerWriter, SessionFactory

pytestmark = pytest.mark.integration

LOADED_R = """
handler <- function(event) list(loaded = loadedNamespaces(), search = search(), got = event)
"""


def test_start_up_loads_neither_jsonlite_nor_methods(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler("main.R", LOADED_R)
    session = make_session(task_root=root, handler="main.handler")
    body = session.invoke(b'{"a": [1, 2.5, "x"], "b": {"c": null}}').json_payload()
    assert body["got"] == {"a": ["1", "2.5", "x"], "b": {"c": None}}
    assert "jsonlite" not in body["loaded"]
    assert "methods" not in body["loaded"]
    assert not any(
        name.startswith("package:") and name != "package:base" for name in body["search"]
    )


def test_a_value_only_jsonlite_writes_loads_it_then(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler(
        "main.R",
        """\
        handler <- function(event) {
          if (isTRUE(event$frame)) data.frame(a = 1:2, b = c("x", NA))
          else list(jsonlite = "jsonlite" %in% loadedNamespaces())
        }
        """,
    )
    session = make_session(task_root=root, handler="main.handler")
    assert session.invoke(b"{}").json_payload() == {"jsonlite": False}
    assert session.invoke(b'{"frame": true}').json_payload() == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": None},
    ]
    assert session.invoke(b"{}").json_payload() == {"jsonlite": True}


def test_startup_times_line_splits_the_cold_start(
    write_handler: HandlerWriter, make_session: SessionFactory
) -> None:
    root = write_handler("main.R", LOADED_R)
    session = make_session(
        task_root=root, handler="main.handler", env={"RLAYER_STARTUP_TIMES": "1"}
    )
    result = session.invoke(b"{}")
    assert result.ok, result.payload
    found = re.search(r"rlayer startup: r_start_epoch=([0-9.]+) (.*)", result.log_tail)
    assert found, result.log_tail
    marks = {k: float(v) for k, v in (p.split("=") for p in found.group(2).split())}
    assert list(marks) == ["r_ready", "json_from", "json", "handler_from", "handler"]
    values = list(marks.values())
    assert values == sorted(values) and values[0] > 0
    # Without the variable, no such line.
    quiet = make_session(task_root=root, handler="main.handler")
    assert "rlayer startup" not in quiet.invoke(b"{}").log_tail
