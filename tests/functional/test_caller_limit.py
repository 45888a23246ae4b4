"""At most N builds in flight per caller: 429 with Retry-After beyond, duplicates free."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from chalice.app import Request
from chalice.test import Client

from chalicelib.api.context import caller
from chalicelib.aws.store import Store
from chalicelib.errors import TooManyBuildsError
from chalicelib.models import BuildRequest, BuildStatus
from chalicelib.settings import get_settings, reset_settings
from chalicelib.submit import submit_build
from tests.functional.conftest import atomic_store, mark_succeeded
from tests.functional.test_slack_api import SECRET, form, sign

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def limit_two(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MAX_BUILDS_PER_CALLER", "2")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    reset_settings()
    return aws


def post(client: Client, body: dict[str, Any]) -> Any:
    return client.http.post("/builds", headers=JSON, body=json.dumps(body))


def executions(arn: str) -> int:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return len(sfn.list_executions(stateMachineArn=arn)["executions"])


def builds(store: Store) -> list[Any]:
    return store.list_builds(status=None, limit=100, token=None)[0]


def test_the_third_build_in_flight_is_a_429_and_leaves_nothing(
    client: Client, limit_two: dict[str, Any], store: Store
) -> None:
    first = post(client, {"r_version": "4.4.1"})
    second = post(client, {"r_version": "4.4.1", "packages": ["digest"]})
    assert (first.status_code, second.status_code) == (202, 202)
    before = (len(builds(store)), executions(limit_two["state_machine_arn"]))

    third = post(client, {"r_version": "4.4.1", "packages": ["jsonlite"]})
    assert third.status_code == 429
    assert third.headers["Retry-After"] == "60"
    answer = json.loads(third.body)
    assert answer["error"] == "TooManyBuildsError"
    assert json.loads(first.body)["build_id"] in answer["message"]
    assert (len(builds(store)), executions(limit_two["state_machine_arn"])) == before

    # Asking again for a spec that is running starts nothing, so it is never refused.
    again = post(client, {"r_version": "4.4.1", "packages": ["digest"]})
    assert again.status_code == 200
    assert json.loads(again.body)["build_id"] == json.loads(second.body)["build_id"]


def test_a_build_that_ends_frees_its_place(
    client: Client, limit_two: dict[str, Any], store: Store
) -> None:
    first = json.loads(post(client, {"r_version": "4.4.1"}).body)["build_id"]
    second = json.loads(post(client, {"r_version": "4.4.2"}).body)["build_id"]
    assert post(client, {"r_version": "4.4.3"}).status_code == 429
    store.transition(first, BuildStatus.FAILED)
    mark_succeeded(store, second, "arn:aws:lambda:us-east-1:123456789012:layer:r:1")
    assert post(client, {"r_version": "4.4.3"}).status_code == 202
    assert post(client, {"r_version": "4.4.4"}).status_code == 202
    assert post(client, {"r_version": "4.4.5"}).status_code == 429
    [mine] = {r.requested_by for r in builds(store)}
    assert mine == "ip:127.0.0.1"  # Chalice local gives only the source address


def test_slack_users_have_their_own_limits_and_are_told_in_words(
    client: Client, limit_two: dict[str, Any], store: Store
) -> None:
    def command(text: str, user: str) -> Any:
        body = form(text, user_id=user)
        resp = client.http.post("/slack/commands", headers=sign(body), body=body)
        assert resp.status_code == 200
        return json.loads(resp.body)["text"]

    assert command("build 4.4.1", "UADA").startswith(":rocket:")
    assert command("build 4.4.2", "UADA").startswith(":rocket:")
    refused = command("build 4.4.3", "UADA")
    assert refused.startswith(":hourglass: you have 2 builds in flight")
    assert command("build 4.4.3", "UGRACE").startswith(":rocket:")
    assert len(builds(store)) == 3


def test_racing_requests_of_one_caller_cannot_pass_the_limit(limit_two: dict[str, Any]) -> None:
    store = atomic_store(limit_two["table"])
    settings = get_settings()

    def one(i: int) -> str:
        request = BuildRequest(r_version=f"4.4.{i}")
        try:
            submit_build(
                request, store=store, settings=settings, caller="iam:arn:aws:iam::1:user/a"
            )
        except TooManyBuildsError:
            return "refused"
        return "created"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(one, range(6)))
    assert outcomes.count("created") == 2
    assert len(builds(store)) == 2


def test_the_scheduler_and_a_zero_limit_are_not_limited(
    limit_two: dict[str, Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    for i in range(3):
        submit_build(BuildRequest(r_version=f"4.3.{i}"), store=store, settings=settings)
    monkeypatch.setenv("MAX_BUILDS_PER_CALLER", "0")
    reset_settings()
    for i in range(3):
        submit_build(
            BuildRequest(r_version=f"4.2.{i}"), store=store, settings=get_settings(), caller="x"
        )
    assert len(builds(store)) == 6


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (
            {"userArn": "arn:aws:sts::1:assumed-role/ci/run-7", "caller": "AROA:run-7"},
            "iam:arn:aws:sts::1:assumed-role/ci/run-7",
        ),
        ({"caller": "AIDAEXAMPLE", "accountId": "1"}, "iam:AIDAEXAMPLE"),
        ({"sourceIp": "127.0.0.1"}, "ip:127.0.0.1"),
        ({}, "ip:unknown"),
    ],
)
def test_the_caller_is_the_iam_principal_api_gateway_names(
    identity: dict[str, str], expected: str
) -> None:
    event = {
        "requestContext": {"identity": identity, "resourcePath": "/builds", "httpMethod": "POST"},
        "headers": {},
        "pathParameters": {},
        "multiValueQueryStringParameters": None,
        "stageVariables": {},
        "body": None,
    }
    assert caller(Request(event)) == expected
