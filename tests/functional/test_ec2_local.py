"""The ec2 backend through the real ASL on the local stack (no R compile here).

Every build is ``"backend": "ec2"``: StartBuild launches a moto instance, the EC2 bridge
boots the user data moto stored for it in the build root, and the script fetches the build
source from the stack's S3, runs the buildspec phases, uploads its status and powers off.
The failures are real ones: R's source is not the version asked for, or the build source
the instances fetch has a step that fails, hangs or is missing. Each test ends by listing
the instances: none may still run.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chalicelib.aws import s3
from chalicelib.aws.session import client
from chalicelib.builders.ec2_reaper import reap
from chalicelib.models import BuildRecord, BuildRequest, BuildStatus
from deploy.package import build_source_zip
from rlayer.client import ApiClient
from rlayer.client.progress import follow
from rlayer.local.stack import LocalStack, StackOptions
from tests.functional.test_local_stack import fake_r_source

LIVE = ("pending", "running", "stopping", "stopped", "shutting-down")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    source = fake_r_source(tmp_path / "R-fake.tar.gz", "4.0.0")
    log = (tmp_path / "stack.log").open("w")
    stack = LocalStack(
        StackOptions(
            api_port=0,
            data_dir=tmp_path / "data",
            run_schedules=False,
            log_stream=log,
            poll_interval_s=1,
            env={"R_SOURCE": str(source), "EC2_BUILD_TIMEOUT_S": "30"},
        )
    )
    try:
        with stack:
            yield stack
            # Whatever the path, no instance is left running: not in moto, not here.
            assert live_instances() == []
            assert stack._ec2_bridge is not None and stack._ec2_bridge.running() == []
    finally:
        log.close()


def live_instances() -> list[str]:
    pages = client("ec2").get_paginator("describe_instances").paginate()
    return [
        i["InstanceId"]
        for page in pages
        for r in page["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] in LIVE
    ]


def all_instances() -> list[dict[str, Any]]:
    reservations = client("ec2").describe_instances()["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def sabotage(stack: LocalStack, tmp_path: Path, **scripts: str) -> None:
    """Replace buildspec scripts (``install_deps="..."`` for install-deps.sh) in the build
    source the instances fetch."""
    bodies = {f"buildspec/{k.replace('_', '-')}.sh": v.encode() for k, v in scripts.items()}
    real = build_source_zip(tmp_path / "real-source.zip")
    out = io.BytesIO()
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, bodies.get(info.filename, src.read(info)))
    bucket, key = s3.split_uri(stack.settings.ec2_build_source)
    s3.put_bytes(bucket, key, out.getvalue())


def build(stack: LocalStack, version: str = "4.4.1", timeout: float = 180) -> BuildRecord:
    api = ApiClient(stack.api_url)
    request = BuildRequest(r_version=version, packages=[], backend="ec2")
    submitted = api.create_build(request)
    return follow(
        api, submitted.build_id, console=Console(quiet=True), interval=0.5, timeout=timeout
    )


def failure(record: BuildRecord) -> tuple[str, str, str]:
    assert record.status is BuildStatus.FAILED
    assert record.error is not None
    return record.error.step, record.error.error_type, record.error.message


def test_a_real_failure_in_the_build_phase_runs_the_instance_to_a_failed_record(
    stack: LocalStack,
) -> None:
    record = build(stack)
    step, error_type, message = failure(record)
    assert (step, error_type) == ("CheckBuild", "BuildFailedError")
    assert "phase build: `sh buildspec/build-runtime.sh` exited with status 1" in message
    assert "R's source is version 4.0.0, the build asks for 4.4.1" in message
    assert record.backend == "ec2"
    assert record.build_ref is not None
    instance_id = record.build_ref.split("/")[1]
    [instance] = [i for i in all_instances() if i["InstanceId"] == instance_id]
    # The script powered the machine off (or CheckBuild, having read its status, ended it
    # first): terminated either way.
    assert instance["State"]["Name"] == "terminated"
    # The build log went up with the status.
    bucket, key = s3.split_uri(record.log_url or "")
    log = (s3.get_bytes(bucket, key) or b"").decode()
    assert "[rlayer-ec2] phase install: sh buildspec/install-deps.sh" in log


@pytest.mark.parametrize(
    ("script", "phase"),
    [
        ("install-deps.sh", "install"),
        ("prepare.sh", "pre_build"),
        ("upload.sh", "post_build"),
    ],
)
def test_a_failure_in_each_phase_names_it(
    stack: LocalStack, tmp_path: Path, script: str, phase: str
) -> None:
    scripts = {
        script.removesuffix(".sh").replace("-", "_"): f"echo '{script} cannot go on' >&2\nexit 7\n"
    }
    if phase == "post_build":
        # The build phase must pass first: it fails on R's source before the upload runs.
        scripts["build_runtime"] = "echo runtime layer skipped\n"
    sabotage(stack, tmp_path, **scripts)
    _, error_type, message = failure(build(stack))
    assert error_type == "BuildFailedError"
    assert f"phase {phase}: `" in message and "exited with status" in message
    assert f"{script} cannot go on" in message


def test_a_build_source_the_instance_cannot_fetch_fails_the_build(stack: LocalStack) -> None:
    bucket, key = s3.split_uri(stack.settings.ec2_build_source)
    client("s3").delete_object(Bucket=bucket, Key=key)
    _, error_type, message = failure(build(stack))
    assert error_type == "BuildFailedError"
    assert "source: build-source.zip could not be fetched" in message


def test_an_instance_that_dies_fails_the_build_with_its_console(
    stack: LocalStack, tmp_path: Path
) -> None:
    sabotage(stack, tmp_path, install_deps="echo 'installing forever'\nexec sleep 300\n")
    api = ApiClient(stack.api_url)
    submitted = api.create_build(BuildRequest(r_version="4.4.1", backend="ec2"))
    instance_id = wait_for_instance(api, submitted.build_id)
    wait_for_console(instance_id, "installing forever")
    # The machine goes away under the build, as hardware or a Spot reclaim takes it.
    client("ec2").terminate_instances(InstanceIds=[instance_id])
    record = follow(api, submitted.build_id, console=Console(quiet=True), interval=0.5, timeout=120)
    _, error_type, message = failure(record)
    assert error_type == "BuildFailedError"
    assert f"instance {instance_id} ended without a result" in message
    assert "installing forever" in message  # its console's last lines


def test_the_watchdog_ends_a_hanging_build_as_timed_out(stack: LocalStack, tmp_path: Path) -> None:
    sabotage(stack, tmp_path, prepare="echo 'waiting for nothing'\nexec sleep 300\n")
    started = time.monotonic()
    _, error_type, message = failure(build(stack, timeout=150))
    assert error_type == "BuildTimedOutError"
    assert "timed out after 30 s in pre_build" in message
    assert time.monotonic() - started < 120


def test_an_execution_stopped_from_outside_leaves_the_instance_to_the_reaper(
    stack: LocalStack, tmp_path: Path
) -> None:
    sabotage(stack, tmp_path, install_deps="exec sleep 300\n")
    api = ApiClient(stack.api_url)
    submitted = api.create_build(BuildRequest(r_version="4.4.1", backend="ec2"))
    instance_id = wait_for_instance(api, submitted.build_id)
    record = api.get_build(submitted.build_id)
    # Stopped from outside: no Catch runs, no StopBuild.
    client("stepfunctions").stop_execution(executionArn=record.execution_arn)
    time.sleep(2)
    assert instance_id in live_instances()
    settings = stack.settings
    assert reap(settings).terminated == []  # young yet
    later = datetime.now(UTC) + timedelta(seconds=settings.ec2_build_timeout_s + 1)
    assert reap(settings, now=later).terminated == [instance_id]
    wait_until(lambda: stack._ec2_bridge is not None and stack._ec2_bridge.running() == [])


def test_the_state_machines_poll_limit_stops_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlayer.local import moto_resources

    # Six one-second polls, well before the instance's own watchdog (30 s).
    monkeypatch.setattr(moto_resources, "BUILD_TIMEOUT_S", 6)
    log = (tmp_path / "stack.log").open("w")
    options = StackOptions(
        api_port=0,
        data_dir=tmp_path / "data",
        run_schedules=False,
        log_stream=log,
        poll_interval_s=1,
        env={"EC2_BUILD_TIMEOUT_S": "30", "R_VERSIONS": "4.4.1"},
    )
    with LocalStack(options) as stack:
        sabotage(stack, tmp_path, install_deps="echo 'installing slowly'\nexec sleep 300\n")
        # Any R the stack offers: the build never gets past its install phase.
        version = stack.settings.buildable_r_versions()[0]
        step, error_type, message = failure(build(stack, version, timeout=90))
        assert (step, error_type) == ("StopBuild", "BuildTimedOutError")
        assert "it was stopped" in message
        wait_until(lambda: stack._ec2_bridge is not None and stack._ec2_bridge.running() == [])
        assert live_instances() == []
    log.close()


def wait_until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.3)


def wait_for_instance(api: ApiClient, build_id: str) -> str:
    found: list[str] = []

    def started() -> bool:
        ref = api.get_build(build_id).build_ref
        if ref:
            found.append(ref.split("/")[1])
        return bool(ref)

    wait_until(started)
    return found[-1]


def wait_for_console(instance_id: str, text: str) -> None:
    def shows() -> bool:
        out = client("ec2").get_console_output(InstanceId=instance_id).get("Output", "")
        return text in out

    wait_until(shows)


def test_the_bridge_boots_the_stored_user_data_and_a_power_off_terminates(
    tmp_path: Path,
) -> None:
    from moto import mock_aws

    from rlayer.local.ec2_bridge import Ec2Bridge

    user_data = '#!/bin/sh\necho "booted as $(id -u) in $(pwd)"\nsleep 1\npoweroff\necho never\n'
    with mock_aws(), Ec2Bridge(work_dir=tmp_path) as bridge:
        ec2 = client("ec2")
        ami = client("ssm").get_parameter(
            Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
        )["Parameter"]["Value"]
        kept, ended = (
            ec2.run_instances(
                ImageId=ami,
                MinCount=1,
                MaxCount=1,
                UserData=user_data,
                InstanceInitiatedShutdownBehavior=behaviour,
            )["Instances"][0]["InstanceId"]
            for behaviour in ("stop", "terminate")
        )
        wait_until(lambda: bridge.running() == [])
        states = {i["InstanceId"]: i for i in all_instances()}
        assert states[ended]["State"]["Name"] == "terminated"
        assert states[ended]["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
        assert states[kept]["State"]["Name"] == "stopped"
        console = ec2.get_console_output(InstanceId=ended)["Output"]
        assert "booted as 0 in /" in console
        assert "never" not in console
        ec2.terminate_instances(InstanceIds=[kept])
