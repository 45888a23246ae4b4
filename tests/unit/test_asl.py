"""state_machine.asl.json read as a document: placeholders, wiring, Retry and Catch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import errors
from chalicelib.errors import ConfigurationError
from chalicelib.pipeline import HANDLERS, TASK_FUNCTIONS
from rlayer.local import asl

LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
FAILURE_PATH = {"RecordFailure", "RetireLayers", "NotifyFailure"}
# Notify's failure must not fail the build: its Catch goes on to where it would have gone.
CATCH_ELSEWHERE = {"Notify": "Succeeded", "NotifyFailure": "Failed"}
ARNS = {name: f"arn:aws:lambda:us-east-1:123456789012:function:rlayer-{name}" for name in HANDLERS}


def _definition(**kwargs: Any) -> dict[str, Any]:
    return asl.definition(asl.substitutions(ARNS, table_name="builds", **kwargs))


def _states() -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = _definition()["States"]
    return states


def _lambda_tasks() -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in _states().items()
        if s.get("Resource") == "arn:aws:states:::lambda:invoke"
    }


def test_the_template_is_json_with_exactly_the_known_placeholders() -> None:
    text = asl.template()
    json.loads(text)  # readable and lintable before substitution
    assert asl.placeholders(text) == set(TASK_FUNCTIONS) | set(asl.OTHER_PLACEHOLDERS)
    assert "arn:aws:lambda" not in text  # no literal ARN, ever


def test_every_placeholder_is_substituted() -> None:
    rendered = asl.render(asl.substitutions(ARNS, table_name="builds", max_polls=7))
    assert "${" not in rendered
    states = json.loads(rendered)["States"]
    assert states["MarkBuilding"]["Parameters"]["TableName"] == "builds"
    assert "States.StringToJson('7')" in json.dumps(states["StartBuild"])
    for placeholder, name in TASK_FUNCTIONS.items():
        arns = {s["Parameters"]["FunctionName"] for s in _lambda_tasks().values()}
        assert ARNS[name] in arns, placeholder


def test_task_functions_name_real_handlers() -> None:
    assert set(TASK_FUNCTIONS.values()) == set(HANDLERS)


def test_substitution_refuses_missing_or_unused_values() -> None:
    subs = asl.substitutions(ARNS, table_name="builds")
    with pytest.raises(ConfigurationError, match="without a value: \\['TableName'\\]"):
        asl.render({k: v for k, v in subs.items() if k != "TableName"})
    with pytest.raises(ConfigurationError, match="without a placeholder: \\['Extra'\\]"):
        asl.render({**subs, "Extra": "x"})
    with pytest.raises(ConfigurationError, match="no ARN"):
        asl.substitutions({}, table_name="builds")
    with pytest.raises(ConfigurationError, match="plain"):
        asl.render({**subs, "TableName": 'a"b'})


def test_every_transition_names_a_state_and_every_state_is_reachable() -> None:
    definition = _definition()
    states = definition["States"]
    targets: dict[str, set[str]] = {}
    for name, state in states.items():
        nxt = {state["Next"]} if "Next" in state else set()
        nxt |= {c["Next"] for c in state.get("Catch", [])}
        nxt |= {c["Next"] for c in state.get("Choices", [])}
        if "Default" in state:
            nxt.add(state["Default"])
        assert nxt <= set(states), f"{name} goes to a state that does not exist: {nxt}"
        if state["Type"] not in ("Succeed", "Fail", "Choice"):
            assert "Next" in state or state.get("End"), f"{name} goes nowhere"
        targets[name] = nxt
    seen, todo = set(), [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += targets[name]
    assert seen == set(states)


def test_every_lambda_task_retries_service_errors_and_catches_to_the_failure_path() -> None:
    tasks = _lambda_tasks()
    assert set(TASK_FUNCTIONS) <= {
        asl.PLACEHOLDER_RE.search(s["Parameters"]["FunctionName"]).group(1)  # type: ignore[union-attr]
        for s in json.loads(asl.template())["States"].values()
        if s.get("Resource") == "arn:aws:states:::lambda:invoke"
    }
    for name, state in tasks.items():
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert retried >= LAMBDA_ERRORS | {"TransientError"}, name
        catch_all = [c for c in state["Catch"] if c["ErrorEquals"] == ["States.ALL"]]
        assert catch_all, f"{name} has no catch-all"
        expected = CATCH_ELSEWHERE.get(name)
        for catch in state["Catch"]:
            if expected:
                assert catch["Next"] == expected
            else:
                assert catch["Next"] in FAILURE_PATH, name
                # The Catch names its own state, so RecordFailure can say what failed.
                assert catch["ResultPath"] == f"$.failed.{name}"


def test_catches_name_our_exception_classes() -> None:
    for name, state in _states().items():
        for catch in state.get("Catch", []):
            for error in catch["ErrorEquals"]:
                if error.startswith(("States.", "Lambda.", "DynamoDB.")):
                    continue
                cls = getattr(errors, error, None)
                assert isinstance(cls, type) and issubclass(cls, errors.PipelineError), (
                    f"{name} catches {error}, which is not a task error class"
                )
        for retry in state.get("Retry", []):
            for error in retry["ErrorEquals"]:
                if not error.startswith(("States.", "Lambda.", "DynamoDB.")):
                    assert issubclass(getattr(errors, error), errors.UpstreamError)


def test_every_failure_path_records_the_failure_before_it_ends() -> None:
    states = _states()
    for name, state in states.items():
        for catch in state.get("Catch", []):
            if name in CATCH_ELSEWHERE or name == "RecordFailure":
                continue
            path, current = [], catch["Next"]
            while states[current]["Type"] not in ("Fail", "Succeed"):
                path.append(current)
                current = states[current]["Next"]
            assert "RecordFailure" in path and states[current]["Type"] == "Fail", (name, path)


def test_canary_and_publish_failures_retire_layers_first() -> None:
    states = _states()
    for name in ("PublishLayers", "RunCanary", "RecordSuccess"):
        assert {c["Next"] for c in states[name]["Catch"]} == {"RetireLayers"}
    assert states["RetireLayers"]["Next"] == "RecordFailure"


def test_the_poll_loop_is_bounded_by_max_polls() -> None:
    states = _states()
    assert states["StartBuild"]["ResultSelector"]["count"] == 0
    assert states["WaitForBuild"]["SecondsPath"] == "$.poll.interval_s"
    assert states["CountPoll"]["Parameters"]["count.$"] == "States.MathAdd($.poll.count, 1)"
    loop = states["BuildFinished"]
    assert {
        "Variable": "$.poll.count",
        "NumericLessThanPath": "$.poll.max",
        "Next": "WaitForBuild",
    } in loop["Choices"]
    assert loop["Default"] == "StopBuild"
    assert states["StopBuild"]["ResultPath"] == "$.failed.StopBuild"
    assert states["StopBuild"]["Next"] == "RecordFailure"


def test_record_updates_in_the_definition_keep_the_forward_only_condition() -> None:
    mark = _states()["MarkBuilding"]
    assert mark["Resource"] == "arn:aws:states:::dynamodb:updateItem"
    params = mark["Parameters"]
    assert params["ConditionExpression"] == "attribute_exists(pk) AND #status = :from"
    assert params["ExpressionAttributeValues"][":from"] == {"S": "QUEUED"}
    assert params["ExpressionAttributeValues"][":to"] == {"S": "BUILDING"}
    assert mark["Catch"][-1]["Next"] == "RecordFailure"


def test_task_results_are_trimmed() -> None:
    # A Lambda result holds response metadata (and, in AWS, dates): keep only what is used.
    for name, state in _lambda_tasks().items():
        assert state.get("ResultPath", "$") is None or "ResultSelector" in state, name
