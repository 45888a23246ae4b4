"""The local stack itself: what `rlayer serve` starts, runs and stops (no R compile).

The build here fails fast and for real (R's source is not the version asked for), which
takes the request through the whole machine: the API, moto's Step Functions running the
real ASL, the Lambda bridge, the local build backend, the Catch path and the record.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chalicelib.aws.session import client
from chalicelib.errors import ConfigurationError, UpstreamError
from chalicelib.models import BuildRequest, BuildStatus
from chalicelib.pipeline import TASK_FUNCTIONS
from rlayer.client import ApiClient
from rlayer.client.progress import follow
from rlayer.local.moto_resources import INVOKED_FUNCTIONS, function_name
from rlayer.local.stack import LocalStack, StackOptions

FEED = [{"version": "4.4.1", "date": "2024-06-14T08:00:00Z", "nickname": "Race for Your Life"}]


def fake_r_source(path: Path, version: str) -> Path:
    """A tarball shaped like R's source (one top directory with VERSION)."""
    data = f"{version} Patched (2022-11-10 r83330)\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("R-fake/VERSION")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    source = fake_r_source(tmp_path / "R-fake.tar.gz", "4.0.0")
    feed = tmp_path / "r-versions.json"
    feed.write_text(json.dumps(FEED))
    log = (tmp_path / "stack.log").open("w")
    stack = LocalStack(
        StackOptions(
            api_port=0,
            data_dir=tmp_path / "data",
            run_schedules=False,
            log_stream=log,
            poll_interval_s=1,
            env={"R_SOURCE": str(source), "R_RELEASES_URL": feed.as_uri()},
        )
    )
    try:
        with stack:
            yield stack
    finally:
        log.close()


def stack_app() -> Any:
    from rlayer.local.stack import load_app

    return load_app()


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_the_stack_creates_what_the_deployment_does(stack: LocalStack) -> None:
    from deploy import template

    settings = stack.settings
    assert os.environ["AWS_ENDPOINT_URL"] == stack.moto_url
    assert settings.build_backend == "local"
    # The table as the deployment's template declares it (deploy/resources.yml).
    declared = template.load_resources()["Resources"]["BuildsTable"]["Properties"]
    table = client("dynamodb").describe_table(TableName=settings.table_name)["Table"]
    assert table["KeySchema"] == declared["KeySchema"]
    assert {
        (i["IndexName"], tuple((k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]))
        for i in table["GlobalSecondaryIndexes"]
    } == {
        (i["IndexName"], tuple((k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]))
        for i in declared["GlobalSecondaryIndexes"]
    }
    client("s3").head_bucket(Bucket=settings.artifact_bucket)
    # The task functions as `chalice package` names them for the template.
    tasks, _all = template.chalice_functions(stack_app())
    names = {f["FunctionName"] for f in client("lambda").list_functions()["Functions"]}
    invoked = {function_name(n) for n in INVOKED_FUNCTIONS}
    assert names == {function_name(n) for n in tasks.values()} | invoked
    assert set(tasks.values()) == set(TASK_FUNCTIONS.values())
    machine = client("stepfunctions").describe_state_machine(
        stateMachineArn=settings.state_machine_arn
    )
    assert "${" not in machine["definition"]
    assert ApiClient(stack.api_url).list_builds().builds == []


def test_a_failing_build_runs_the_whole_machine_to_a_failed_record(stack: LocalStack) -> None:
    api = ApiClient(stack.api_url)
    submitted = api.create_build(BuildRequest(r_version="4.4.1", packages=["jsonlite"]))
    record = follow(api, submitted.build_id, console=Console(quiet=True), interval=0.5, timeout=180)
    assert record.status is BuildStatus.FAILED
    assert record.error is not None
    assert (record.error.step, record.error.error_type) == ("CheckBuild", "BuildFailedError")
    assert "R's source is version 4.0.0, the build asks for 4.4.1" in record.error.message
    assert record.log_url and record.log_url.startswith("file://")
    execution = client("stepfunctions").describe_execution(executionArn=record.execution_arn)
    assert execution["status"] == "FAILED"


def test_a_release_check_request_runs_in_the_check_function(stack: LocalStack) -> None:
    # The API answers at once; moto's Lambda (the bridge) runs the check in the background.
    post = urllib.request.Request(
        f"{stack.api_url}/releases/check",
        data=b"",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(post, timeout=30) as resp:
        assert resp.status == 202
        accepted = json.loads(resp.read())
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(accepted["status_url"], timeout=30) as resp:
            run = json.loads(resp.read())
        if run["state"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert run["state"] == "SUCCEEDED", run
    assert run["result"]["baseline"] == ["4.4.1"]


def test_one_data_directory_serves_one_stack(stack: LocalStack) -> None:
    second = LocalStack(StackOptions(api_port=0, data_dir=stack.options.data_dir))
    with pytest.raises(ConfigurationError, match="another local stack is using"):
        second.start()
    # The failed start left the running stack as it was.
    assert ApiClient(stack.api_url).list_builds().builds == []


def test_stop_closes_the_ports_and_restores_the_environment(tmp_path: Path) -> None:
    before = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "TABLE_NAME", "MOTO_PORT")}
    stack = LocalStack(StackOptions(api_port=0, data_dir=tmp_path, run_schedules=False))
    stack.start()
    api_url, moto_url = stack.api_url, stack.moto_url
    assert not refused(api_url) and not refused(moto_url)
    stack.stop()
    assert refused(api_url) and refused(moto_url)
    assert {k: os.environ.get(k) for k in before} == before
    with pytest.raises(UpstreamError, match="cannot reach"):
        ApiClient(api_url).list_builds()
    stack.stop()  # twice is fine
