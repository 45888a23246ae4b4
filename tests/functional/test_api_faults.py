"""Every route, with AWS throttled, down or refusing: 503 + Retry-After, or a 500 that
shows a request id and nothing of the cause; and nothing half-written behind it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.aws.session import reset_clients
from chalicelib.aws.store import Store
from chalicelib.settings import reset_settings
from tests.faults import DENIED, THROTTLED, UNAVAILABLE, aws_fault
from tests.functional.test_releases import FeedServer, feed_of
from tests.functional.test_slack_api import SECRET, form, sign

JSON = {"Content-Type": "application/json"}
# One request per route that reaches the table. GET /openapi.json and the catalog page call
# no AWS service.
ROUTES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/builds"): {"body": {"r_version": "4.4.1", "packages": ["digest"]}},
    ("GET", "/builds"): {},
    ("GET", "/builds/{build_id}"): {"path": "/builds/20260101T000000-0a1b2c3d"},
    ("GET", "/layers"): {},
    ("GET", "/layers/latest"): {"path": "/layers/latest?r_version=4.4&architecture=x86_64"},
    ("POST", "/subscriptions"): {"body": {"packages": ["digest"]}},
    ("GET", "/subscriptions"): {},
    ("GET", "/subscriptions/{subscription_id}"): {"path": "/subscriptions/sub-0a1b2c3d4e5f"},
    ("DELETE", "/subscriptions/{subscription_id}"): {"path": "/subscriptions/sub-0a1b2c3d4e5f"},
    ("GET", "/releases"): {},
    ("POST", "/releases/check"): {},
    ("GET", "/releases/checks/{check_id}"): {"path": "/releases/checks/chk-0a1b2c3d4e5f"},
    ("POST", "/slack/commands"): {"slack": "build 4.4.1 digest"},
}
NO_AWS = {("GET", "/openapi.json"), ("GET", "/catalog")}  # the page reads the JSON routes


@pytest.fixture
def env(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    feed = FeedServer()
    feed.serve(feed_of("4.4.1"))
    for key, value in {
        "SLACK_SIGNING_SECRET": SECRET,
        "R_RELEASES_URL": feed.url,
        "RELEASES_BASELINE": "none",
        # One attempt: the fault reaches the adapter at once, not after four backoffs.
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    reset_clients()
    try:
        yield aws
    finally:
        feed.stop()


def call(client: Client, method: str, route: str) -> Any:
    spec = ROUTES[(method, route)]
    if "slack" in spec:
        body = form(spec["slack"])
        return client.http.post("/slack/commands", headers=sign(body), body=body)
    path = spec.get("path", route)
    body = json.dumps(spec["body"]) if "body" in spec else None
    return client.http.request(method, path, headers=JSON, body=body or b"")


def table_items(table: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    return ddb.scan(TableName=table)["Items"]  # type: ignore[no-any-return]


def executions(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return sfn.list_executions(stateMachineArn=arn)["executions"]  # type: ignore[no-any-return]


def test_the_table_covers_every_route_of_the_app() -> None:
    from app import app

    routes = {(m, path) for path, methods in app.routes.items() for m in methods}
    assert routes == set(ROUTES) | NO_AWS


@pytest.mark.parametrize("fault", [THROTTLED, UNAVAILABLE], ids=["throttled", "unavailable"])
@pytest.mark.parametrize(("method", "route"), list(ROUTES))
def test_a_busy_table_is_a_503_with_retry_after(
    client: Client, env: dict[str, Any], method: str, route: str, fault: tuple[str, int]
) -> None:
    before = table_items(env["table"])
    with aws_fault("dynamodb", *fault) as injected:
        resp = call(client, method, route)
    assert injected.calls, "the route never reached the table"
    answer = json.loads(resp.body)
    request_id = resp.headers["X-Request-Id"]
    if route == "/slack/commands":
        # Slack shows any other status as a bare failure: the answer is in words.
        assert resp.status_code == 200 and answer["response_type"] == "ephemeral"
        assert "try again in 5 s" in answer["text"] and request_id in answer["text"]
    else:
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "5"
        assert answer == {
            "error": "TransientError",
            "message": "the service is busy; try again in 5 s",
            "request_id": request_id,
        }
    assert table_items(env["table"]) == before
    assert executions(env["state_machine_arn"]) == []


@pytest.mark.parametrize(("method", "route"), list(ROUTES))
def test_a_refusal_is_a_500_naming_only_the_request_id(
    client: Client, env: dict[str, Any], method: str, route: str
) -> None:
    before = table_items(env["table"])
    with aws_fault("dynamodb", *DENIED) as injected:
        resp = call(client, method, route)
    assert injected.calls
    answer = json.loads(resp.body)
    request_id = resp.headers["X-Request-Id"]
    text = json.dumps(answer)
    assert "AccessDenied" not in text and "injected" not in text and "Traceback" not in text
    if route == "/slack/commands":
        assert resp.status_code == 200 and request_id in answer["text"]
    else:
        assert resp.status_code == 500 and "Retry-After" not in resp.headers
        assert answer["error"] == "InternalError" and answer["request_id"] == request_id
    assert table_items(env["table"]) == before


@pytest.mark.parametrize(
    ("code", "status", "expect"),
    [(*THROTTLED, 503), (*UNAVAILABLE, 503), (*DENIED, 500)],
    ids=["throttled", "unavailable", "denied"],
)
@pytest.mark.parametrize("route", ["/builds", "/slack/commands"])
def test_a_failed_start_leaves_a_failed_record_and_no_execution(
    client: Client,
    env: dict[str, Any],
    store: Store,
    route: str,
    code: str,
    status: int,
    expect: int,
) -> None:
    with aws_fault("stepfunctions", code, status, operation="StartExecution") as injected:
        resp = call(client, "POST", route)
    assert injected.calls == ["StartExecution"]
    if route == "/builds":
        assert resp.status_code == expect
    else:
        assert resp.status_code == 200 and ":boom:" in json.loads(resp.body)["text"]
    [record] = store.list_builds(status=None, limit=10, token=None)[0]
    assert record.status.value == "FAILED" and record.error is not None
    assert record.error.step == "StartExecution" and code in record.error.message
    assert executions(env["state_machine_arn"]) == []


def test_one_throttle_is_retried_by_the_client_and_the_caller_sees_success(
    client: Client, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    reset_settings()
    reset_clients()
    with aws_fault("dynamodb", *THROTTLED, operation="GetItem", times=1, stage="send") as injected:
        resp = call(client, "GET", "/builds/{build_id}")
    assert injected.calls == ["GetItem"]
    assert resp.status_code == 404  # the retry reached the table: no such build


def test_a_start_key_dynamodb_refuses_is_the_callers_bad_token(
    client: Client, env: dict[str, Any]
) -> None:
    for i in range(3):
        client.http.post("/builds", headers=JSON, body=json.dumps({"r_version": f"4.3.{i}"}))
    token = json.loads(client.http.get("/builds?limit=1").body)["next"]
    with aws_fault("dynamodb", "ValidationException", 400, operation="Query"):
        with_token = client.http.get(f"/builds?limit=1&next={token}")
        without = client.http.get("/builds?limit=1")
    assert with_token.status_code == 400 and json.loads(with_token.body)["field"] == "next"
    # Without a token the same refusal is ours to explain: a 500 with a request id.
    assert without.status_code == 500
