"""A real build on the ec2 backend through the local stack: `"backend": "ec2"` end to end.

The request goes through the real ASL; StartBuild launches a moto instance whose user data
(read back from moto by the EC2 bridge) fetches this tree's build-source.zip from the
stack's S3, runs the buildspec phases in the build root, uploads the zips, the log and the
status through its presigned grants and powers off. ValidateArtifact, PublishLayers and the
canary then run on what the instance uploaded. R's compile comes from this machine's cache
when a local build made it (the instance's environment names the same build OS).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from rich.console import Console

from chalicelib.aws import s3
from chalicelib.aws.session import client
from chalicelib.models import BuildRecord, BuildRequest, BuildStatus
from rlayer.builders.sources import LocalSources, ensure_local_sources
from rlayer.client import ApiClient
from rlayer.client.progress import follow
from rlayer.local.stack import LocalStack, StackOptions

pytestmark = pytest.mark.integration

# A cold cache compiles R first (minutes on 2 cores).
BUILD_TIMEOUT_S = 45 * 60
PACKAGES = ["digest"]  # C code, compiled on the instance


@pytest.fixture(scope="module")
def sources() -> LocalSources:
    return ensure_local_sources()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sources: LocalSources) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("ec2-stack")
    with (data / "stack.log").open("w") as log:
        stack = LocalStack(
            StackOptions(
                api_port=0, data_dir=data, run_schedules=False, log_stream=log, poll_interval_s=2
            )
        )
        with stack:
            yield stack


@pytest.fixture(scope="module")
def built(stack: LocalStack, sources: LocalSources) -> BuildRecord:
    api = ApiClient(stack.api_url)
    request = BuildRequest(r_version=sources.r_version, packages=PACKAGES, backend="ec2")
    submitted = api.create_build(request)
    return follow(
        api, submitted.build_id, console=Console(quiet=True), interval=2, timeout=BUILD_TIMEOUT_S
    )


def test_an_ec2_build_succeeds_and_its_canary_runs_the_layers(
    built: BuildRecord, sources: LocalSources
) -> None:
    assert built.status is BuildStatus.SUCCEEDED, built.error
    assert built.backend == "ec2"
    assert [layer.kind for layer in built.layers] == ["runtime", "packages"]
    assert built.canary is not None
    assert built.canary.r_version == sources.r_version
    assert "digest" in built.canary.packages
    bucket = built.artifact_location.removeprefix("s3://").split("/")[0]  # type: ignore[union-attr]
    assert built.artifact_location == f"s3://{bucket}/artifacts/{built.build_id}/"
    # What the canary ran is what the instance uploaded.
    for layer in built.layers:
        body = s3.get_bytes(bucket, f"artifacts/{built.build_id}/{layer.kind}.zip")
        assert body is not None and hashlib.sha256(body).hexdigest() == layer.sha256
    log = (s3.get_bytes(bucket, f"artifacts/{built.build_id}/build.log") or b"").decode()
    assert "[rlayer-ec2] phase post_build:" in log
    assert "build SUCCEEDED" in log


def test_the_instance_powered_itself_off_and_nothing_runs(
    built: BuildRecord, stack: LocalStack
) -> None:
    assert built.build_ref is not None
    instance_id = built.build_ref.split("/")[1]
    reservations = client("ec2").describe_instances()["Reservations"]
    states = {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}
    assert states == {instance_id: "terminated"}
    assert stack._ec2_bridge is not None and stack._ec2_bridge.running() == []
