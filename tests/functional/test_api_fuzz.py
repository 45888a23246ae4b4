"""schemathesis against GET /openapi.json on the local stack: every route, a fixed seed and
a bounded number of cases each (tests/fuzzkit.py says what every case must show)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.api.contract import OPERATIONS
from tests.fuzzkit import Target, fuzz_route, fuzz_stack

CASES_PER_ROUTE = 30


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with (tmp / "stack.log").open("w") as log, fuzz_stack(tmp, log=log) as target:
        yield target


@pytest.fixture(scope="module")
def api(target: Target) -> Any:
    return target.schema()


@pytest.mark.parametrize("route", [(op.method, op.path) for op in OPERATIONS], ids=str)
def test_every_route_holds_under_generated_input(
    route: tuple[str, str], target: Target, api: Any
) -> None:
    found = fuzz_route(target, api, *route, cases=CASES_PER_ROUTE)
    assert found.failures == [], found.failures[0]
    assert found.cases >= CASES_PER_ROUTE // 2, "too few cases were generated"
