"""The state machine executed for real on moto, with the task functions behind the bridge.

- moto with ``execute_state_machine`` runs the real state_machine.asl.json;
- ``LambdaBridge`` dispatches its ``lambda:invoke`` to the Chalice task handlers in this
  process and runs the canary (provided.al2023) for real on the Runtime API emulator;
- ``FakeBackend`` stands in for CodeBuild: it reports the states a test chooses and, when
  it reports SUCCEEDED, leaves crafted artifacts where a build would (S3 or a directory).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from chalicelib.aws import s3
from chalicelib.aws.items import table_definition
from chalicelib.aws.session import client, reset_clients
from chalicelib.aws.store import Store
from chalicelib.builders.base import BuildProgress, BuildState, artifact_prefix
from chalicelib.models import BuildRecord, BuildRequest, BuildSpec
from chalicelib.pipeline import TASK_FUNCTIONS
from chalicelib.pipeline import task as pipeline_task
from chalicelib.settings import get_settings, reset_settings
from chalicelib.submit import submit_build
from rlayer.local import asl
from rlayer.local.lambda_bridge import LambdaBridge
from tests.layerkit import HOST_R_VERSION, Artifacts

TABLE = "rlayer-pipeline-builds"
BUCKET = "rlayer-pipeline-artifacts"
REGION = "us-east-1"
FUNCTION_PREFIX = "rlayer-test-"
MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


class FakeBackend:
    """A BuildBackend whose builds take the states it is given (the last one repeats)."""

    name = "fake"

    def __init__(
        self,
        artifacts: Callable[[BuildSpec], Artifacts] | None,
        states: list[BuildState],
        *,
        local_root: Path | None = None,
        reason: str | None = None,
        log_tail: list[str] | None = None,
    ) -> None:
        self.artifacts = artifacts
        self.states = states
        self.local_root = local_root
        self.reason = reason
        self.log_tail = log_tail or []
        self.started: dict[str, BuildSpec] = {}
        self.checks: dict[str, int] = {}
        self.stopped: list[str] = []
        self.finished: set[str] = set()

    def start_build(self, build_id: str, spec: BuildSpec) -> str:
        ref = f"fake:{build_id}"
        self.started[ref] = spec
        self.checks[ref] = 0
        return ref

    def _location(self, build_id: str) -> str:
        if self.local_root is not None:
            return str(self.local_root / artifact_prefix(build_id))
        return f"s3://{BUCKET}/{artifact_prefix(build_id)}"

    def check_build(self, build_ref: str) -> BuildProgress:
        n = self.checks[build_ref]
        self.checks[build_ref] = n + 1
        state = self.states[min(n, len(self.states) - 1)]
        build_id = build_ref.removeprefix("fake:")
        location = self._location(build_id)
        if state is BuildState.SUCCEEDED and self.artifacts is not None:
            self._write(build_id, self.artifacts(self.started[build_ref]))
        if state is not BuildState.IN_PROGRESS:
            self.finished.add(build_ref)
        return BuildProgress(
            state=state,
            artifact_location=location if state is BuildState.SUCCEEDED else None,
            log_url=f"https://logs.example/{build_id}",
            reason=self.reason if state in (BuildState.FAILED, BuildState.TIMED_OUT) else None,
            log_tail=self.log_tail,
            current_phase="BUILD",
        )

    def _write(self, build_id: str, artifacts: Artifacts) -> None:
        files = artifacts.files()
        if self.local_root is not None:
            directory = self.local_root / artifact_prefix(build_id)
            directory.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (directory / name).write_bytes(data)
            return
        for name, data in files.items():
            s3.put_bytes(BUCKET, artifact_prefix(build_id) + name, data)

    def stop_build(self, build_ref: str) -> None:
        self.stopped.append(build_ref)
        self.finished.add(build_ref)


@dataclass
class Throttle:
    """Make one operation of one of our clients fail with a throttling error N times.

    moto never throttles; this answers before the request is sent (``before-call``), as
    if AWS had refused it after the client's own retries.
    """

    service: str
    operation: str
    times: int
    code: str = "ThrottlingException"
    status: int = 400
    match: Callable[[dict[str, Any]], bool] = lambda params: True
    hits: int = 0

    def install(self) -> Throttle:
        client(self.service).meta.events.register(
            f"before-call.{self.service}.{self.operation}", self._hook
        )
        return self

    def _hook(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.hits >= self.times or not self.match(params):
            return None
        self.hits += 1
        response = AWSResponse(params.get("url", ""), self.status, {}, None)
        parsed = {
            "Error": {"Code": self.code, "Message": "Rate exceeded (test fault)"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        return response, parsed


@dataclass
class Pipeline:
    state_machine_arn: str
    store: Store
    bridge: LambdaBridge
    backend: FakeBackend
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path
    executions: list[str] = field(default_factory=list)

    @property
    def sfn(self) -> Any:
        return boto3.client("stepfunctions", region_name=REGION)

    @property
    def lam(self) -> Any:
        return boto3.client("lambda", region_name=REGION)

    def use(self, backend: FakeBackend) -> FakeBackend:
        self.backend = backend
        self.monkeypatch.setattr(pipeline_task, "backend_for", lambda settings: backend)
        return backend

    def submit(self, packages: list[str], *, r_version: str = HOST_R_VERSION, **extra: Any) -> str:
        request = BuildRequest(r_version=r_version, packages=packages, **extra)
        record, created = submit_build(request, store=self.store, settings=get_settings())
        assert created
        return record.build_id

    def execution_arn(self, build_id: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{build_id}"

    def wait(self, build_id: str, timeout_s: float = 90) -> dict[str, Any]:
        """Poll describe_execution until the execution ends (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            resp: dict[str, Any] = self.sfn.describe_execution(
                executionArn=self.execution_arn(build_id)
            )
            if resp["status"] != "RUNNING":
                return resp
            if time.monotonic() > deadline:
                raise AssertionError(f"execution {build_id} still running after {timeout_s}s")
            time.sleep(0.1)

    def run(self, packages: list[str], **extra: Any) -> tuple[BuildRecord, dict[str, Any]]:
        build_id = self.submit(packages, **extra)
        execution = self.wait(build_id)
        return self.store.get_build(build_id), execution

    def history(self, build_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.sfn.get_execution_history(
            executionArn=self.execution_arn(build_id), maxResults=1000
        )["events"]
        return events

    def entered(self, build_id: str) -> list[str]:
        """The states the execution entered, in order."""
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(build_id)
            if "stateEnteredEventDetails" in e
        ]

    def layer_versions(self, name: str) -> list[dict[str, Any]]:
        try:
            versions: list[dict[str, Any]] = self.lam.list_layer_versions(LayerName=name)[
                "LayerVersions"
            ]
        except self.lam.exceptions.ResourceNotFoundException:
            return []
        return versions

    def all_layer_versions(self) -> list[dict[str, Any]]:
        found = []
        for layer in self.lam.list_layers()["Layers"]:
            found += self.layer_versions(layer["LayerName"])
        return found

    def assert_nothing_orphaned(self, record: BuildRecord) -> None:
        """Final record; no build running; no unproven layer or canary version left."""
        assert record.status.is_final
        for ref in self.backend.started:
            assert ref in self.backend.finished, f"{ref} was left running"
        marker = pipeline_task.build_marker(record.build_id)
        mine = [v for v in self.all_layer_versions() if marker in v.get("Description", "")]
        if record.status.value == "FAILED":
            assert mine == [], f"layer versions of a failed build remain: {mine}"
            assert all(la.retired or la.reused for la in record.layers)
        else:
            assert {v["LayerVersionArn"] for v in mine} == {
                la.arn for la in record.layers if not la.reused
            }
        for fn in self.lam.list_functions()["Functions"]:
            versions = self.lam.list_versions_by_function(FunctionName=fn["FunctionName"])
            assert [v["Version"] for v in versions["Versions"]] == ["$LATEST"]


def function_name(name: str) -> str:
    return FUNCTION_PREFIX + name


@contextmanager
def pipeline_stack(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    backend: FakeBackend,
    *,
    max_polls: int = 5,
    poll_interval_s: int = 0,
) -> Iterator[Pipeline]:
    with mock_aws(config=MOTO_CONFIG):
        reset_settings()
        reset_clients()
        client("dynamodb").create_table(**table_definition(TABLE))
        client("s3").create_bucket(Bucket=BUCKET)
        role = client("iam").create_role(
            RoleName="rlayer-test", AssumeRolePolicyDocument=json.dumps({"Statement": []})
        )["Role"]["Arn"]
        arns = {
            name: client("lambda").create_function(
                FunctionName=function_name(name),
                Runtime="python3.12",
                Role=role,
                Handler=f"app.{name}",
                Code={"ZipFile": b"PK\x05\x06" + bytes(18)},  # the empty zip
                Timeout=900,
            )["FunctionArn"]
            for name in TASK_FUNCTIONS.values()
        }
        definition = asl.render(
            asl.substitutions(
                arns, table_name=TABLE, poll_interval_s=poll_interval_s, max_polls=max_polls
            )
        )
        state_machine = client("stepfunctions").create_state_machine(
            name="rlayer-test", definition=definition, roleArn=role
        )["stateMachineArn"]
        for key, value in {
            "TABLE_NAME": TABLE,
            "ARTIFACT_BUCKET": BUCKET,
            "STATE_MACHINE_ARN": state_machine,
            "CANARY_ROLE_ARN": role,
            "CANARY_TIMEOUT_S": "60",
            "CANARY_MEMORY_MB": "1024",
        }.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        from app import app

        handlers = {function_name(n): app.handler_map[n] for n in TASK_FUNCTIONS.values()}
        with LambdaBridge(handlers, work_dir=tmp_path / "bridge") as bridge:
            pipeline = Pipeline(
                state_machine_arn=state_machine,
                store=Store(TABLE),
                bridge=bridge,
                backend=backend,
                monkeypatch=monkeypatch,
                tmp_path=tmp_path,
            )
            pipeline.use(backend)
            yield pipeline
