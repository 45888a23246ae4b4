"""Task functions one at a time on moto (no state machine): idempotency and clean-up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import s3
from chalicelib.aws.store import Store
from chalicelib.builders.base import BuildState, artifact_prefix
from chalicelib.builders.codebuild import CodeBuildBackend
from chalicelib.errors import PublishError, TransientError, UpstreamError
from chalicelib.models import BuildRecord, BuildSpec, BuildStatus
from chalicelib.pipeline import publish, retire, start
from chalicelib.pipeline import task as pipeline_task
from chalicelib.pipeline.contracts import TaskInput
from chalicelib.pipeline.task import Deps, build_marker, task
from chalicelib.settings import get_settings
from tests.functional.pipeline_harness import FakeBackend
from tests.layerkit import Artifacts

SPEC = BuildSpec(r_version="4.2.2", packages=["digest==0.6.33"])  # type: ignore[arg-type]


@pytest.fixture
def deps(aws: dict[str, Any], store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deps]:
    backend = FakeBackend(Artifacts.synthetic, [BuildState.SUCCEEDED])
    monkeypatch.setattr(pipeline_task, "backend_for", lambda settings: backend)
    yield Deps(settings=get_settings(), store=store, _backend=backend)


def _record(
    store: Store, status: BuildStatus, build_id: str = "20260101T000000-0000abcd"
) -> BuildRecord:
    record = BuildRecord(build_id=build_id, spec_hash=SPEC.spec_hash, spec=SPEC)
    store.create_build(record, replaces=None, force=True)
    order = [
        BuildStatus.BUILDING,
        BuildStatus.VALIDATING,
        BuildStatus.PUBLISHING,
        BuildStatus.TESTING,
    ]
    for step in order[: order.index(status) + 1] if status in order else []:
        store.transition(build_id, step)
    return store.get_build(build_id)


def _stage(deps: Deps, record: BuildRecord) -> None:
    for name, data in Artifacts.synthetic(record.spec).files().items():
        s3.put_bytes(deps.settings.artifact_bucket, artifact_prefix(record.build_id) + name, data)


def test_start_build_starts_once_per_build(deps: Deps) -> None:
    record = _record(deps.store, BuildStatus.BUILDING)
    data = TaskInput(build_id=record.build_id)
    first = start.run(data, deps)
    again = start.run(data, deps)  # a retried task
    assert first.build_ref == again.build_ref
    backend = deps.backend
    assert isinstance(backend, FakeBackend)
    assert list(backend.started) == [first.build_ref]
    assert deps.store.get_build(record.build_id).build_ref == first.build_ref


def test_publish_adopts_a_version_an_earlier_attempt_published_but_did_not_record(
    deps: Deps,
) -> None:
    record = _record(deps.store, BuildStatus.VALIDATING)
    _stage(deps, record)
    lam = boto3.client("lambda", region_name="us-east-1")
    bucket, prefix = deps.settings.artifact_bucket, artifact_prefix(record.build_id)
    # The first attempt got as far as publishing the runtime layer, then died.
    orphan = lam.publish_layer_version(
        LayerName=SPEC.runtime_layer_name,
        Description=f"R 4.2.2 runtime {build_marker(record.build_id)}",
        Content={"S3Bucket": bucket, "S3Key": prefix + "runtime.zip"},
    )
    out = publish.run(TaskInput(build_id=record.build_id), deps)
    runtime = next(layer for layer in out.layers if layer.kind == "runtime")
    assert runtime.arn == orphan["LayerVersionArn"]
    versions = lam.list_layer_versions(LayerName=SPEC.runtime_layer_name)["LayerVersions"]
    assert len(versions) == 1
    assert [la.kind for la in deps.store.get_build(record.build_id).layers] == [
        "runtime",
        "packages",
    ]


def test_publish_withdraws_a_version_whose_bytes_are_not_the_validated_ones(
    deps: Deps,
) -> None:
    record = _record(deps.store, BuildStatus.VALIDATING)
    _stage(deps, record)
    # Someone replaced the zip after validation: Lambda measures other bytes.
    key = artifact_prefix(record.build_id) + "runtime.zip"
    s3.put_bytes(deps.settings.artifact_bucket, key, b"PK\x05\x06" + bytes(18))
    with pytest.raises(PublishError, match="the version was deleted"):
        publish.run(TaskInput(build_id=record.build_id), deps)
    lam = boto3.client("lambda", region_name="us-east-1")
    assert lam.list_layer_versions(LayerName=SPEC.runtime_layer_name)["LayerVersions"] == []


def test_retire_finds_unrecorded_versions_by_their_marker_and_keeps_others(deps: Deps) -> None:
    record = _record(deps.store, BuildStatus.PUBLISHING)
    _stage(deps, record)
    lam = boto3.client("lambda", region_name="us-east-1")
    content = {
        "S3Bucket": deps.settings.artifact_bucket,
        "S3Key": artifact_prefix(record.build_id) + "runtime.zip",
    }
    other = lam.publish_layer_version(
        LayerName=SPEC.runtime_layer_name, Description="[rlayer another-build]", Content=content
    )
    mine = lam.publish_layer_version(
        LayerName=SPEC.runtime_layer_name,
        Description=f"x {build_marker(record.build_id)}",
        Content=content,
    )
    out = retire.run(TaskInput(build_id=record.build_id), deps)
    assert out.retired == [mine["LayerVersionArn"]]
    left = lam.list_layer_versions(LayerName=SPEC.runtime_layer_name)["LayerVersions"]
    assert [v["LayerVersionArn"] for v in left] == [other["LayerVersionArn"]]


def test_retire_never_touches_a_succeeded_build(deps: Deps) -> None:
    record = _record(deps.store, BuildStatus.TESTING)
    deps.store.transition(record.build_id, BuildStatus.SUCCEEDED)
    assert retire.run(TaskInput(build_id=record.build_id), deps).retired == []


def test_task_wrapper_maps_aws_failures_to_our_errors(deps: Deps) -> None:
    def throttled(data: TaskInput, deps: Deps) -> Any:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "X")

    def refused(data: TaskInput, deps: Deps) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "X")

    with pytest.raises(TransientError, match="ThrottlingException"):
        task("T", TaskInput, throttled)({"build_id": "b-1"})
    with pytest.raises(UpstreamError, match="AccessDeniedException") as caught:
        task("T", TaskInput, refused)({"build_id": "b-1"})
    assert not isinstance(caught.value, TransientError)


def test_task_input_is_validated(deps: Deps) -> None:
    handler = task("T", TaskInput, lambda data, deps: data)
    assert handler({"build_id": "b-1", "anything": "else"}) == {"build_id": "b-1"}
    with pytest.raises(Exception, match="build_id"):
        handler({"build_id": "../../etc"})


def test_codebuild_backend_passes_the_spec_as_environment_overrides(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cb = boto3.client("codebuild", region_name="us-east-1")
    cb.create_project(
        name="rlayer-build-x86_64",
        source={"type": "S3", "location": "rlayer-sources/buildspec.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/amazonlinux2-x86_64-standard:5.0",
            "computeType": "BUILD_GENERAL1_MEDIUM",
        },
        serviceRole="arn:aws:iam::123456789012:role/codebuild",
    )
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(json.loads(params["body"]))

    from chalicelib.aws.session import client

    client("codebuild").meta.events.register("before-call.codebuild.StartBuild", capture)
    backend = CodeBuildBackend(get_settings())
    ref = backend.start_build("20260101T000000-00000001", SPEC)
    assert ref.startswith("rlayer-build-x86_64:")
    env = {v["name"]: v["value"] for v in sent[0]["environmentVariablesOverride"]}
    assert env["RLAYER_R_VERSION"] == "4.2.2"
    assert env["RLAYER_PACKAGES"] == "digest==0.6.33"
    assert env["RLAYER_ARTIFACT_URI"] == (
        f"s3://{aws['bucket']}/artifacts/20260101T000000-00000001/"
    )
    assert sent[0]["idempotencyToken"] == "20260101T000000-00000001"
    progress = backend.check_build(ref)
    assert progress.state is BuildState.SUCCEEDED  # moto's CodeBuild always succeeds
    assert progress.current_phase
