"""Publishing in several regions: the whole state machine on moto, one backend per region."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.aws.session import client
from chalicelib.builders.base import BuildState
from chalicelib.errors import RequestInvalidError
from chalicelib.models import BuildRecord, BuildRequest, BuildStatus
from chalicelib.pipeline import runtimes
from chalicelib.pipeline.task import build_marker
from chalicelib.settings import get_settings
from chalicelib.submit import submit_build
from tests.functional.pipeline_harness import BUCKET, FakeBackend, Pipeline, pipeline_stack
from tests.layerkit import HOST_R_VERSION, Artifacts

HOME = "us-east-1"
OTHERS = ("eu-west-1", "ap-southeast-2")
SUCCEEDED = BuildState.SUCCEEDED


def staging_buckets() -> None:
    for region in OTHERS:
        client("s3", region).create_bucket(
            Bucket=f"{BUCKET}-{region}",
            CreateBucketConfiguration={"LocationConstraint": region},
        )


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Pipeline]:
    monkeypatch.setenv("REGIONS", ",".join((HOME, *OTHERS)))
    backend = FakeBackend(Artifacts.host, [SUCCEEDED])
    with pipeline_stack(monkeypatch, tmp_path, backend) as p:
        staging_buckets()
        yield p


def versions_in(region: str, name: str) -> list[dict[str, Any]]:
    lam = boto3.client("lambda", region_name=region)
    try:
        found: list[dict[str, Any]] = lam.list_layer_versions(LayerName=name)["LayerVersions"]
    except lam.exceptions.ResourceNotFoundException:
        return []
    return found


def marked(record: BuildRecord, region: str) -> list[str]:
    marker = build_marker(record.build_id)
    names = {record.spec.runtime_layer_name, record.spec.packages_layer_name}
    return [
        v["LayerVersionArn"]
        for name in names
        for v in versions_in(region, name)
        if marker in v.get("Description", "")
    ]


def test_a_build_is_published_and_checked_in_every_region(pipeline: Pipeline) -> None:
    record, execution = pipeline.run(["jsonlite"])
    assert execution["status"] == "SUCCEEDED", execution
    assert record.regions == [HOME, *OTHERS]
    for layer in record.layers:
        assert set(layer.regions) == {HOME, *OTHERS}
        assert layer.regions[HOME].arn == layer.arn
        expected = base64.b64encode(bytes.fromhex(layer.sha256)).decode()
        for region, version in layer.regions.items():
            assert version.arn.startswith(f"arn:aws:lambda:{region}:")
            name, _, number = version.arn.rpartition(":")
            found = boto3.client("lambda", region_name=region).get_layer_version(
                LayerName=name, VersionNumber=int(number)
            )
            # Lambda's own measure of the bytes it took from that region's bucket.
            assert found["Content"]["CodeSha256"] == expected
            assert found["CompatibleArchitectures"] == ["x86_64"]
    # Each region read its own staging bucket: the artifact was copied there.
    for region in OTHERS:
        keys = client("s3", region).list_objects_v2(Bucket=f"{BUCKET}-{region}")["Contents"]
        assert {k["Key"].rsplit("/", 1)[1] for k in keys} == {"runtime.zip", "packages.zip"}
    proven = runtimes.get_proven(pipeline.store, HOST_R_VERSION, record.spec.architecture)
    assert proven is not None and set(proven.arns) == {HOME, *OTHERS}

    # A later spec of the same R reuses the proven runtime in every region.
    second, execution = pipeline.run([], regions=["eu-west-1"])
    assert execution["status"] == "SUCCEEDED"
    assert second.regions == [HOME, "eu-west-1"]
    (runtime,) = second.layers
    assert runtime.reused and all(v.reused for v in runtime.regions.values())
    assert {r: v.arn for r, v in runtime.regions.items()} == {
        r: record.layers[0].regions[r].arn for r in (HOME, "eu-west-1")
    }


def test_a_region_outside_the_stage_is_refused(pipeline: Pipeline) -> None:
    request = BuildRequest(r_version=HOST_R_VERSION, regions=["us-west-2"])
    with pytest.raises(RequestInvalidError) as caught:
        submit_build(request, store=pipeline.store, settings=get_settings())
    assert caught.value.field == "regions"
    assert "us-west-2" in caught.value.message
    assert pipeline.store.list_builds(status=None, limit=10, token=None)[0] == []


def test_a_failed_canary_retires_the_versions_of_every_region(pipeline: Pipeline) -> None:
    pipeline.use(
        FakeBackend(lambda spec: Artifacts.host(spec, broken={"brokenpkg": "1.0.0"}), [SUCCEEDED])
    )
    record, execution = pipeline.run(["jsonlite", "brokenpkg"])
    assert execution["status"] == "FAILED"
    assert record.error is not None and record.error.step == "RunCanary"
    for layer in record.layers:
        assert set(layer.regions) == {HOME, *OTHERS}
        assert all(v.retired for v in layer.regions.values())
    for region in (HOME, *OTHERS):
        assert marked(record, region) == []


def test_other_bytes_in_one_region_fail_the_build_and_retire_everywhere(
    pipeline: Pipeline,
) -> None:
    # The staged copy in ap-southeast-2 changes before Lambda reads it: Lambda's CodeSha256
    # there is not the validated artifact's, so the build fails and nothing stays anywhere.
    s3 = client("s3", "ap-southeast-2")
    copied: list[tuple[str, str]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        copied.append((params["Bucket"], params["Key"]))

    def tamper(**_: Any) -> None:
        bucket, key = copied[-1]
        s3.put_object(Bucket=bucket, Key=key, Body=b"PK\x05\x06" + bytes(18))

    s3.meta.events.register("provide-client-params.s3.CopyObject", remember)
    s3.meta.events.register("after-call.s3.CopyObject", tamper)
    record, execution = pipeline.run(["jsonlite"])
    assert execution["status"] == "FAILED"
    assert record.status is BuildStatus.FAILED
    assert record.error is not None
    assert (record.error.step, record.error.error_type) == ("PublishLayers", "PublishError")
    assert "ap-southeast-2" in record.error.message
    for region in (HOME, *OTHERS):
        assert marked(record, region) == []
    assert copied and all(bucket == f"{BUCKET}-ap-southeast-2" for bucket, _ in copied)
    pipeline.assert_nothing_orphaned(record)
