"""Every failure branch of the state machine, executed for real, ending with a final record
and nothing left behind (no running build, no layer version of a failed build)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.builders.base import BuildState
from chalicelib.models import BuildRecord, BuildStatus, ErrorInfo
from tests.functional.pipeline_harness import FakeBackend, Pipeline, pipeline_stack
from tests.layerkit import BROKEN, CASE_SPEC, Artifacts

IN_PROGRESS, SUCCEEDED = BuildState.IN_PROGRESS, BuildState.SUCCEEDED


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Pipeline]:
    backend = FakeBackend(Artifacts.synthetic, [IN_PROGRESS, SUCCEEDED])
    with pipeline_stack(monkeypatch, tmp_path, backend, max_polls=3) as p:
        yield p


def _failed(record: BuildRecord, execution: dict[str, object]) -> ErrorInfo:
    assert execution["status"] == "FAILED"
    assert record.status is BuildStatus.FAILED
    assert record.error is not None
    assert BuildStatus.FAILED.value in record.steps
    return record.error


def test_a_failed_build_is_recorded_with_its_reason_and_log(pipeline: Pipeline) -> None:
    backend = pipeline.use(
        FakeBackend(
            None,
            [IN_PROGRESS, BuildState.FAILED],
            reason="BUILD: COMMAND_EXECUTION_ERROR: exit status 1",
            log_tail=["installing digest", "ERROR: compilation failed for package 'digest'"],
        )
    )
    record, execution = pipeline.run(["digest"])
    error = _failed(record, execution)
    assert (error.step, error.error_type) == ("CheckBuild", "BuildFailedError")
    assert "COMMAND_EXECUTION_ERROR" in error.message
    assert "compilation failed for package 'digest'" in error.message
    assert record.log_url == f"https://logs.example/{record.build_id}"
    assert list(backend.checks.values()) == [2]
    assert pipeline.entered(record.build_id)[-3:] == ["RecordFailure", "NotifyFailure", "Failed"]
    assert "ValidateArtifact" not in pipeline.entered(record.build_id)
    pipeline.assert_nothing_orphaned(record)


def test_a_build_the_backend_timed_out_is_recorded_as_timed_out(pipeline: Pipeline) -> None:
    pipeline.use(FakeBackend(None, [BuildState.TIMED_OUT], reason="BUILD: timed out"))
    record, execution = pipeline.run(["digest"])
    error = _failed(record, execution)
    assert (error.step, error.error_type) == ("CheckBuild", "BuildTimedOutError")
    pipeline.assert_nothing_orphaned(record)


def test_a_build_past_the_poll_limit_is_stopped_and_recorded_timed_out(
    pipeline: Pipeline,
) -> None:
    backend = pipeline.use(FakeBackend(None, [IN_PROGRESS]))
    record, execution = pipeline.run(["digest"])
    error = _failed(record, execution)
    assert (error.step, error.error_type) == ("StopBuild", "BuildTimedOutError")
    assert "after 3 polls" in error.message
    # Exactly MaxPolls checks, then one stop of that build.
    assert list(backend.checks.values()) == [3]
    assert backend.stopped == [record.build_ref]
    assert pipeline.entered(record.build_id).count("CheckBuild") == 3
    pipeline.assert_nothing_orphaned(record)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_invalid_artifact_fails_the_build_before_anything_is_published(
    pipeline: Pipeline, case: str
) -> None:
    mutate, reason = BROKEN[case]
    pipeline.use(FakeBackend(lambda spec: mutate(Artifacts.synthetic(spec)), [SUCCEEDED]))
    record, execution = pipeline.run([str(p) for p in CASE_SPEC.packages])
    error = _failed(record, execution)
    assert (error.step, error.error_type) == ("ValidateArtifact", "ArtifactInvalidError")
    assert reason in error.message
    assert "PublishLayers" not in pipeline.entered(record.build_id)
    assert pipeline.all_layer_versions() == []
    pipeline.assert_nothing_orphaned(record)


def test_missing_artifacts_are_an_invalid_artifact(pipeline: Pipeline) -> None:
    # The backend says SUCCEEDED but left nothing behind.
    pipeline.use(FakeBackend(None, [SUCCEEDED]))
    record, execution = pipeline.run([])
    error = _failed(record, execution)
    assert error.error_type == "ArtifactInvalidError"
    assert "runtime.zip: missing" in error.message
    pipeline.assert_nothing_orphaned(record)


def test_a_throttled_task_invocation_is_retried_by_the_state_machine(pipeline: Pipeline) -> None:
    # Lambda itself refuses the invocation twice (429): Retry on Lambda.TooManyRequests.
    pipeline.use(FakeBackend(None, [BuildState.FAILED], reason="boom"))
    pipeline.bridge.throttle("rlayer-test-check_build", 2)
    record, execution = pipeline.run(["digest"])
    error = _failed(record, execution)
    assert error.error_type == "BuildFailedError"  # got through after the throttling
    kinds = [c.kind for c in pipeline.bridge.calls if c.function_name.endswith("check_build")]
    assert kinds == ["throttled", "throttled", "python"]
    failures = [
        e["taskFailedEventDetails"]["error"]
        for e in pipeline.history(record.build_id)
        if e["type"] == "TaskFailed"
    ]
    assert failures[:2] == ["Lambda.TooManyRequestsException"] * 2


def test_an_execution_for_a_record_that_is_not_queued_ends_without_touching_it(
    pipeline: Pipeline,
) -> None:
    # MarkBuilding's forward-only condition fails; RecordFailure finds the record final.
    build_id = pipeline.submit(["digest"])
    first = pipeline.wait(build_id)
    assert first["status"] == "FAILED"
    before = pipeline.store.get_build(build_id)
    again = pipeline.sfn.start_execution(
        stateMachineArn=pipeline.state_machine_arn,
        name=f"{build_id}-again",
        input=json.dumps({"build_id": build_id}),
    )["executionArn"]
    for _ in range(300):
        status = pipeline.sfn.describe_execution(executionArn=again)["status"]
        if status != "RUNNING":
            break
        time.sleep(0.1)
    assert status == "FAILED"
    history = pipeline.sfn.get_execution_history(executionArn=again)["events"]
    errors = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert errors == ["DynamoDB.ConditionalCheckFailedException"]
    assert pipeline.store.get_build(build_id) == before
