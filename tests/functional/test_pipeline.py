"""The whole state machine on moto with a canary that really runs R (host R in a layer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.builders.base import BuildState
from chalicelib.models import BuildRecord, BuildStatus
from chalicelib.pipeline import notify, runtimes
from chalicelib.pipeline.publish import PACKAGES_LICENSE, R_LICENSE
from chalicelib.pipeline.task import build_marker
from tests.functional.pipeline_harness import FakeBackend, Pipeline, Throttle, pipeline_stack
from tests.layerkit import HOST_R_VERSION, Artifacts, host_version

SUCCEEDED = BuildState.SUCCEEDED


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Pipeline]:
    backend = FakeBackend(Artifacts.host, [BuildState.IN_PROGRESS, SUCCEEDED])
    with pipeline_stack(monkeypatch, tmp_path, backend) as p:
        yield p


@pytest.fixture
def notified() -> Iterator[list[BuildRecord]]:
    seen: list[BuildRecord] = []
    notify.register(seen.append)
    yield seen
    notify.unregister(seen.append)


def _version(pipeline: Pipeline, arn: object) -> dict[str, Any]:
    name, _, number = str(arn).rpartition(":")
    found: dict[str, Any] = pipeline.lam.get_layer_version(
        LayerName=name, VersionNumber=int(number)
    )
    return found


def _layer(record: BuildRecord, kind: str) -> dict[str, object]:
    return next(la.model_dump() for la in record.layers if la.kind == kind)


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_build_goes_all_the_way_and_is_proven_by_the_canary(
    pipeline: Pipeline, notified: list[BuildRecord], where: str, tmp_path: Path
) -> None:
    if where == "local":  # the local backend leaves artifacts in a directory
        pipeline.use(FakeBackend(Artifacts.host, [SUCCEEDED], local_root=tmp_path / "artifacts"))
    record, execution = pipeline.run(["jsonlite"])

    assert execution["status"] == "SUCCEEDED", execution
    assert record.status is BuildStatus.SUCCEEDED
    assert list(record.steps) == [
        "QUEUED",
        "BUILDING",
        "VALIDATING",
        "PUBLISHING",
        "TESTING",
        "SUCCEEDED",
    ]
    assert pipeline.entered(record.build_id)[-3:] == ["RecordSuccess", "Notify", "Succeeded"]
    # The canary ran R in the sandbox with the published layers and loaded the package.
    assert record.canary is not None
    assert record.canary.r_version == HOST_R_VERSION
    assert record.canary.packages == {"jsonlite": host_version("jsonlite")}
    assert record.canary.init_ms and record.canary.init_ms > 0
    assert record.canary.duration_ms and record.canary.duration_ms > 0
    assert record.canary.max_memory_mb and record.canary.max_memory_mb > 10
    assert set(record.canary.timings) == {"load_ms", "compute_ms"}
    # Two layers, published from S3 with what Lambda needs to show about them.
    spec = record.spec
    runtime, packages = _layer(record, "runtime"), _layer(record, "packages")
    assert (runtime["name"], packages["name"]) == (
        spec.runtime_layer_name,
        spec.packages_layer_name,
    )
    for layer, license_info in ((runtime, R_LICENSE), (packages, PACKAGES_LICENSE)):
        version = _version(pipeline, layer["arn"])
        assert version["CompatibleRuntimes"] == ["provided.al2023"]
        assert version["CompatibleArchitectures"] == ["x86_64"]
        assert version["LicenseInfo"] == license_info
        assert len(version["Description"]) <= 256
        assert version["Description"].endswith(build_marker(record.build_id))
        assert HOST_R_VERSION in version["Description"]
        assert layer["reused"] is False
    jsonlite = host_version("jsonlite")
    assert f"jsonlite {jsonlite}" in _version(pipeline, packages["arn"])["Description"]
    # The proven runtime is remembered for reuse.
    proven = runtimes.get_proven(pipeline.store, HOST_R_VERSION, spec.architecture)
    assert (
        proven is not None and proven.arn == runtime["arn"] and proven.build_id == record.build_id
    )
    # Notified once, with the final record; the state kept small and JSON-clean.
    assert [(r.build_id, r.status) for r in notified] == [(record.build_id, BuildStatus.SUCCEEDED)]
    output = json.loads(execution["output"])
    assert set(output) <= {"build_id", "poll", "check", "validated", "published", "canary", "final"}
    assert len(execution["output"]) < 4096
    pipeline.assert_nothing_orphaned(record)


def test_a_failing_canary_retires_the_layers_it_tested(
    pipeline: Pipeline, notified: list[BuildRecord]
) -> None:
    # "brokenpkg" has a DESCRIPTION (it validates) but is no installed package: R fails to
    # load it in the canary, so the layers must not stay published.
    pipeline.use(
        FakeBackend(lambda spec: Artifacts.host(spec, broken={"brokenpkg": "1.0.0"}), [SUCCEEDED])
    )
    record, execution = pipeline.run(["jsonlite", "brokenpkg"])
    assert execution["status"] == "FAILED"
    assert record.status is BuildStatus.FAILED
    assert record.error is not None
    assert (record.error.step, record.error.error_type) == ("RunCanary", "CanaryFailedError")
    assert "brokenpkg" in record.error.message
    assert pipeline.entered(record.build_id)[-5:] == [
        "RunCanary",
        "RetireLayers",
        "RecordFailure",
        "NotifyFailure",
        "Failed",
    ]
    assert [la.kind for la in record.layers] == ["runtime", "packages"]
    assert all(la.retired for la in record.layers)
    assert pipeline.all_layer_versions() == []
    assert runtimes.get_proven(pipeline.store, HOST_R_VERSION, record.spec.architecture) is None
    assert [r.status for r in notified] == [BuildStatus.FAILED]
    pipeline.assert_nothing_orphaned(record)


def test_a_proven_runtime_is_reused_and_never_retired(pipeline: Pipeline) -> None:
    first, _ = pipeline.run(["jsonlite"])
    assert first.status is BuildStatus.SUCCEEDED
    runtime_arn = _layer(first, "runtime")["arn"]

    # Same R and recipe, no packages: nothing to publish, the canary proves the reuse.
    second, execution = pipeline.run([])
    assert execution["status"] == "SUCCEEDED"
    assert [(la.kind, la.arn, la.reused) for la in second.layers] == [
        ("runtime", runtime_arn, True)
    ]
    # A later build that fails its canary retires its own packages layer only.
    pipeline.use(
        FakeBackend(lambda spec: Artifacts.host(spec, broken={"brokenpkg": "2.0"}), [SUCCEEDED])
    )
    third, execution = pipeline.run(["brokenpkg"])
    assert execution["status"] == "FAILED"
    assert [(la.kind, la.reused, la.retired) for la in third.layers] == [
        ("runtime", True, False),
        ("packages", False, True),
    ]
    runtime_versions = pipeline.layer_versions(first.spec.runtime_layer_name)
    assert [v["LayerVersionArn"] for v in runtime_versions] == [runtime_arn]
    pipeline.assert_nothing_orphaned(third)


def test_publishing_throttled_is_retried_without_publishing_twice(pipeline: Pipeline) -> None:
    # The runtime layer is published, then Lambda throttles the packages layer twice (past
    # the client's own retries): the task fails with TransientError and is retried by the
    # state machine, which must not publish the runtime layer a second time.
    throttle = Throttle(
        "lambda",
        "PublishLayerVersion",
        times=2,
        code="TooManyRequestsException",
        status=429,
        match=lambda params: "-pkgs-" in params["url_path"],
    ).install()
    record, execution = pipeline.run(["jsonlite"])
    assert execution["status"] == "SUCCEEDED"
    assert throttle.hits == 2
    failures = [
        e["taskFailedEventDetails"]["error"]
        for e in pipeline.history(record.build_id)
        if e["type"] == "TaskFailed"
    ]
    assert failures == ["TransientError", "TransientError"]
    assert len(pipeline.layer_versions(record.spec.runtime_layer_name)) == 1
    assert len(pipeline.layer_versions(record.spec.packages_layer_name)) == 1
    pipeline.assert_nothing_orphaned(record)


def test_a_throttled_record_update_is_retried(pipeline: Pipeline) -> None:
    def final_update(params: dict[str, object]) -> bool:
        body = json.loads(params["body"])  # type: ignore[arg-type]
        return bool(body.get("ExpressionAttributeValues", {}).get(":to") == {"S": "SUCCEEDED"})

    throttle = Throttle(
        "dynamodb",
        "UpdateItem",
        times=2,
        code="ProvisionedThroughputExceededException",
        match=final_update,
    ).install()
    record, execution = pipeline.run(["jsonlite"])
    assert execution["status"] == "SUCCEEDED"
    assert record.status is BuildStatus.SUCCEEDED
    assert throttle.hits == 2
    history = pipeline.history(record.build_id)
    retried = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert retried == ["TransientError", "TransientError"]
    assert pipeline.entered(record.build_id).count("RecordSuccess") == 1
    pipeline.assert_nothing_orphaned(record)


def test_a_failing_notifier_never_fails_the_build(
    pipeline: Pipeline, notified: list[BuildRecord]
) -> None:
    def broken(record: BuildRecord) -> None:
        raise ConnectionError("chat service down")

    notify.register(broken)
    try:
        record, execution = pipeline.run([])
    finally:
        notify.unregister(broken)
    assert execution["status"] == "SUCCEEDED"
    assert record.status is BuildStatus.SUCCEEDED
    assert [r.build_id for r in notified] == [record.build_id]  # the others still ran
