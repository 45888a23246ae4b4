"""Chalice test client against moto: the table, a bucket and a state machine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib.aws.items import table_definition
from chalicelib.aws.store import Store
from chalicelib.models import BuildStatus, CanaryResult, LayerRef

TABLE = "rlayer-test-builds"
BUCKET = "rlayer-test-artifacts"
# A state machine that waits, so executions stay RUNNING while the API is exercised.
IDLE_ASL = {"StartAt": "Idle", "States": {"Idle": {"Type": "Pass", "End": True}}}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**table_definition(TABLE))
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(
            RoleName="sfn",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        sm = boto3.client("stepfunctions", region_name="us-east-1").create_state_machine(
            name="rlayer-test", definition=json.dumps(IDLE_ASL), roleArn=role
        )["stateMachineArn"]
        monkeypatch.setenv("TABLE_NAME", TABLE)
        monkeypatch.setenv("ARTIFACT_BUCKET", BUCKET)
        monkeypatch.setenv("STATE_MACHINE_ARN", sm)
        # No package index to read: the API's package checks are left to the build (the
        # tests of those checks name a repository of their own).
        monkeypatch.setenv("CRAN_REPO", "file:///nonexistent/rlayer-test-repo")
        yield {"state_machine_arn": sm, "table": TABLE, "bucket": BUCKET}


@pytest.fixture
def store(aws: dict[str, Any]) -> Store:
    return Store(TABLE)


@pytest.fixture
def client(aws: dict[str, Any]) -> Iterator[Client]:
    from app import app

    with Client(app) as c:
        yield c


class OneCallAtATime:
    """A boto3 client whose calls run one at a time, each as a whole.

    DynamoDB makes every call atomic, a transaction included. moto does not, under
    threads: a cancelled transaction puts back a copy of the whole table taken when it
    began, erasing what other threads wrote meanwhile, and a conditional put checks and
    writes in separate steps. One lock per call restores the service's guarantee; the
    overlapping runs still interleave between calls, as Lambdas do.
    """

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


def atomic_store(table_name: str) -> Store:
    """A Store whose DynamoDB calls are each atomic, as in the real service."""
    store = Store(table_name)
    store._ddb = OneCallAtATime(store._ddb)
    return store


def mark_succeeded(
    store: Store, build_id: str, arn: str, *, zipped_bytes: int = 1, unzipped_bytes: int = 2
) -> None:
    """Walk a build through every step to SUCCEEDED with one runtime layer and a canary."""
    for status in (
        BuildStatus.BUILDING,
        BuildStatus.VALIDATING,
        BuildStatus.PUBLISHING,
        BuildStatus.TESTING,
    ):
        store.transition(build_id, status)
    layer = LayerRef(
        kind="runtime",
        name="r-4_4_1-x86_64",
        arn=arn,
        version=1,
        sha256="0" * 64,
        zipped_bytes=zipped_bytes,
        unzipped_bytes=unzipped_bytes,
    )
    canary = CanaryResult(r_version="4.4.1", packages={"jsonlite": "1.8.9"})
    store.transition(
        build_id,
        BuildStatus.SUCCEEDED,
        {"layers": [layer.model_dump()], "canary": canary.model_dump()},
    )
