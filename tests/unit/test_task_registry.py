"""The task registry (chalicelib.pipeline.TASKS) is what app.py, the ASL and the deployment use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.pipeline import HANDLERS, PLACEHOLDER_RE, TASK_FUNCTIONS, TASKS

REPO = Path(__file__).resolve().parents[2]


def test_app_declares_one_function_per_task_calling_its_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app as app_module

    declared = {f.name for f in app_module.app.pure_lambda_functions} - {"check_releases"}
    assert declared == {task.function for task in TASKS}
    # Each stub hands its event to the registry's handler for that function.
    seen: list[str] = []
    for task in TASKS:
        monkeypatch.setitem(
            HANDLERS, task.function, lambda event, name=task.function: seen.append(name) or {}
        )
        getattr(app_module, task.function)({}, None)
    assert seen == [task.function for task in TASKS]


def test_every_task_state_of_the_asl_is_in_the_registry() -> None:
    asl = (REPO / "state_machine.asl.json").read_text()
    used = {name for name in PLACEHOLDER_RE.findall(asl) if name.endswith("FunctionArn")}
    assert used == set(TASK_FUNCTIONS)
    states = json.loads(asl)["States"]
    for task in TASKS:
        assert task.state in states, task.state
        assert f"${{{task.placeholder}}}" in json.dumps(states[task.state])
