"""The pipeline's decisions without AWS: build states, canary verdicts, failure records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.aws.lambdas import Invocation
from chalicelib.builders.base import BuildState
from chalicelib.builders.codebuild import progress_from_build
from chalicelib.errors import CanaryFailedError
from chalicelib.models import BuildRecord, BuildSpec, LayerManifest
from chalicelib.pipeline import notify
from chalicelib.pipeline.canary import canary_code, judge, parse_report
from chalicelib.pipeline.contracts import CaughtError, RecordFailureInput
from chalicelib.pipeline.publish import describe, layer_name
from chalicelib.pipeline.record import failure_info
from chalicelib.pipeline.task import build_marker
from chalicelib.settings import Settings

SPEC = BuildSpec(r_version="4.4.1", packages=["jsonlite", "digest==0.6.33"])  # type: ignore[arg-type]
RECORD = BuildRecord(build_id="20260101T000000-0000abcd", spec_hash=SPEC.spec_hash, spec=SPEC)


def _build(status: str, **extra: Any) -> dict[str, Any]:
    """A batch_get_builds entry, in botocore's casing."""
    build = {
        "id": "rlayer-build-x86_64:6b1f",
        "buildStatus": status,
        "currentPhase": "COMPLETED" if status != "IN_PROGRESS" else "BUILD",
        "logs": {"deepLink": "https://console.aws.amazon.com/cloudwatch/home#logEvent:x"},
        "environment": {
            "environmentVariables": [
                {"name": "RLAYER_ARTIFACT_URI", "value": "s3://b/artifacts/x/", "type": "PLAINTEXT"}
            ]
        },
        "phases": [
            {"phaseType": "SUBMITTED", "phaseStatus": "SUCCEEDED"},
            {"phaseType": "INSTALL", "phaseStatus": "SUCCEEDED"},
        ],
    }
    build.update(extra)
    return build


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("IN_PROGRESS", BuildState.IN_PROGRESS),
        ("SUCCEEDED", BuildState.SUCCEEDED),
        ("FAILED", BuildState.FAILED),
        ("FAULT", BuildState.FAILED),
        ("STOPPED", BuildState.FAILED),
        ("TIMED_OUT", BuildState.TIMED_OUT),
    ],
)
def test_codebuild_statuses_map_to_build_states(status: str, state: BuildState) -> None:
    progress = progress_from_build(_build(status))
    assert progress.state is state
    assert progress.artifact_location == "s3://b/artifacts/x/"
    assert progress.log_url and progress.log_url.startswith("https://console.aws.amazon.com/")


def test_a_failed_codebuild_build_says_which_phase_and_why() -> None:
    phases = [
        {"phaseType": "INSTALL", "phaseStatus": "SUCCEEDED"},
        {
            "phaseType": "BUILD",
            "phaseStatus": "FAILED",
            "contexts": [
                {
                    "statusCode": "COMMAND_EXECUTION_ERROR",
                    "message": "Error while executing command: sh buildspec/build.sh. "
                    "Reason: exit status 1",
                }
            ],
        },
    ]
    progress = progress_from_build(_build("FAILED", phases=phases))
    assert progress.reason == (
        "BUILD: Error while executing command: sh buildspec/build.sh. Reason: exit status 1"
    )


def test_artifacts_from_a_project_with_s3_artifacts() -> None:
    build = _build("SUCCEEDED", environment={}, artifacts={"location": "arn:aws:s3:::bkt/a/b"})
    assert progress_from_build(build).artifact_location == "s3://bkt/a/b/"


REPORT = (
    "START RequestId: 1 Version: 3\nloading\nEND RequestId: 1\n"
    "REPORT RequestId: 1\tDuration: 812.34 ms\tBilled Duration: 813 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 87 MB\tInit Duration: 243.10 ms\t\n"
)


def test_the_report_line_gives_the_timings() -> None:
    assert parse_report(REPORT) == {"init_ms": 243.1, "duration_ms": 812.34, "max_memory_mb": 87}
    warm = REPORT.replace("\tInit Duration: 243.10 ms", "")
    assert parse_report(warm)["init_ms"] is None
    assert parse_report("no report here") == dict.fromkeys(
        ("init_ms", "duration_ms", "max_memory_mb")
    )


def _answer(payload: Any, error: str | None = None, log: str = REPORT) -> Invocation:
    return Invocation(json.dumps(payload).encode(), error, log, "3")


GOOD = {
    "r_version": "4.4.1",
    "packages": {"jsonlite": "1.8.9", "digest": "0.6.33"},
    "failed": {},
    "timings": {"load_ms": 41.5, "compute_ms": 2.0},
}


def test_a_good_canary_answer_is_recorded_with_its_timings() -> None:
    result = judge(RECORD, _answer(GOOD))
    assert result.packages == {"jsonlite": "1.8.9", "digest": "0.6.33"}
    assert (result.init_ms, result.duration_ms, result.max_memory_mb) == (243.1, 812.34, 87)
    assert result.timings == {"load_ms": 41.5, "compute_ms": 2.0}


@pytest.mark.parametrize(
    ("invocation", "reason"),
    [
        (
            _answer(
                {"errorType": "CanaryError", "errorMessage": "digest (no such file)"}, "Unhandled"
            ),
            "the canary raised CanaryError: digest (no such file)",
        ),
        (_answer({**GOOD, "r_version": "4.4.0"}), "ran R '4.4.0', not 4.4.1"),
        (_answer({**GOOD, "packages": {"jsonlite": "1.8.9"}}), "digest: not loaded"),
        (
            _answer({**GOOD, "failed": {"digest": "libcrypto.so.3: cannot open"}}),
            "digest: libcrypto.so.3: cannot open",
        ),
        (
            _answer({**GOOD, "packages": {"jsonlite": "1.8.9", "digest": "0.6.30"}}),
            "digest loaded as version 0.6.30, not the pinned 0.6.33",
        ),
        (_answer(["not", "an", "object"]), "not an object"),
    ],
)
def test_a_bad_canary_answer_fails_with_the_reason(invocation: Invocation, reason: str) -> None:
    with pytest.raises(CanaryFailedError) as caught:
        judge(RECORD, invocation)
    assert reason in caught.value.message


def test_the_canary_code_zip_is_reproducible() -> None:
    settings = Settings()
    assert canary_code(settings) == canary_code(settings)


def _caught(error: str, message: str) -> dict[str, str]:
    cause = json.dumps({"errorType": error, "errorMessage": message, "stackTrace": []})
    return {"Error": error, "Cause": cause}


def test_the_recorded_failure_is_the_first_failed_state_then_the_follow_ups() -> None:
    data = RecordFailureInput.model_validate(
        {
            "build_id": RECORD.build_id,
            "failed": {
                "RetireLayers": _caught("UpstreamError", "AccessDenied"),
                "RunCanary": _caught("CanaryFailedError", "digest did not load"),
            },
        }
    )
    info = failure_info(data)
    assert (info.step, info.error_type) == ("RunCanary", "CanaryFailedError")
    assert info.message == (
        "digest did not load; then RetireLayers failed too: UpstreamError: AccessDenied"
    )


def test_a_service_error_cause_is_kept_as_text() -> None:
    caught = CaughtError.model_validate(
        {"Error": "Lambda.ServiceException", "Cause": "Internal error (Service: AWSLambda)"}
    )
    assert caught.message() == "Internal error (Service: AWSLambda)"
    assert CaughtError.model_validate({"Error": "States.Timeout"}).message() == "States.Timeout"


def _manifest(packages: dict[str, str]) -> LayerManifest:
    return LayerManifest(
        kind="packages",
        layer_name=SPEC.packages_layer_name,
        zip_name="packages.zip",
        r_version="4.4.1",
        architecture=SPEC.architecture,
        recipe_hash="r" * 40,
        build_root="amazonlinux-2023",
        packages=packages,
        file_count=1,
        zipped_bytes=1,
        unzipped_bytes=1,
        sha256="0" * 64,
        build_seconds=1.0,
    )


def test_layer_descriptions_fit_lambdas_limit_and_name_the_build() -> None:
    many = {f"package{i:03d}": f"{i}.0.1" for i in range(100)}
    text = describe(RECORD, "packages", _manifest(many))
    assert len(text) <= 256
    assert text.startswith("R 4.4.1 (x86_64) packages: package000 0.0.1, package001 1.0.1")
    assert text.endswith("… " + build_marker(RECORD.build_id))
    user = RECORD.model_copy(update={"description": "team X's layer"})
    assert describe(user, "packages", _manifest({})) == (
        f"team X's layer {build_marker(RECORD.build_id)}"
    )


def test_a_failing_notifier_is_logged_and_the_others_still_run() -> None:
    seen: list[str] = []

    def broken(record: BuildRecord) -> None:
        raise RuntimeError("down")

    failed = notify.notify_all(RECORD, [broken, lambda r: seen.append(r.build_id)])
    assert failed == ["test_a_failing_notifier_is_logged_and_the_others_still_run.<locals>.broken"]
    assert seen == [RECORD.build_id]


def test_the_slack_notifier_is_a_builtin() -> None:
    from chalicelib.slack.notifier import notify_slack

    assert notify_slack in notify.notifiers()


def test_the_backend_is_chosen_by_settings() -> None:
    from chalicelib.builders import get_backend
    from chalicelib.builders.codebuild import CodeBuildBackend
    from rlayer.builders.local import LocalBuildBackend

    assert isinstance(get_backend(Settings(build_backend="codebuild")), CodeBuildBackend)
    assert isinstance(get_backend(Settings(build_backend="local")), LocalBuildBackend)


@pytest.mark.parametrize(
    ("given", "published"),
    [(None, SPEC.packages_layer_name), ("team-x", "r-team-x"), ("r-team-x", "r-team-x")],
)
def test_every_published_layer_is_named_r_dash(given: str | None, published: str) -> None:
    record = RECORD.model_copy(update={"layer_name": given})
    assert layer_name(record, "packages") == published
    assert layer_name(record, "runtime") == SPEC.runtime_layer_name


def test_a_failure_message_does_not_repeat_log_lines_the_reason_quotes() -> None:
    from chalicelib.builders.base import BuildProgress
    from chalicelib.pipeline.check import _explain

    progress = BuildProgress(
        state=BuildState.FAILED,
        reason="step install-packages failed:\nERROR: package 'nope' is not available",
        log_tail=["installing nope", "ERROR: package 'nope' is not available"],
    )
    message = _explain("the build failed", progress)
    assert message.count("is not available") == 1
    assert "installing nope" in message
