"""POST /slack/commands through the Chalice test client, on moto, with signed requests.

Signatures are computed here from the v0 recipe (not with the verifier under test).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from chalice.test import Client

from chalicelib.aws import secrets
from chalicelib.aws.store import Store
from chalicelib.models import BuildStatus
from chalicelib.settings import get_settings, reset_settings
from chalicelib.slack.config import slack_config
from chalicelib.slack.messages import escape
from tests.functional.conftest import mark_succeeded

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
HOOK = "https://hooks.slack.com/commands/T0001/1234/abcd"
FORM_CT = "application/x-www-form-urlencoded"


def setenv(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Change settings mid-test: the store fixture has already read (and cached) them."""
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    secrets.clear_cache()


@pytest.fixture
def slack(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    setenv(monkeypatch, SLACK_SIGNING_SECRET=SECRET)
    yield
    secrets.clear_cache()


def form(text: str, **fields: str) -> str:
    base = {
        "token": "legacy-unused",
        "team_id": "T0001",
        "team_domain": "example",
        "channel_id": "C2147483705",
        "channel_name": "builds",
        "user_id": "U2147483697",
        "user_name": "ada",
        "command": "/rlayer",
        "text": text,
        "response_url": HOOK,
        # Unique per request, as from Slack: two commands typed in the same second differ.
        "trigger_id": uuid.uuid4().hex,
    }
    base.update(fields)
    return urlencode(base)


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": FORM_CT,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def send(
    client: Client, body: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    resp = client.http.post(
        "/slack/commands", headers=sign(body) if headers is None else headers, body=body
    )
    return resp.status_code, json.loads(resp.body)


def command(client: Client, text: str, **fields: str) -> dict[str, Any]:
    status, reply = send(client, form(text, **fields))
    assert status == 200, reply
    assert reply["response_type"] == "ephemeral"
    return reply


def queued_id(reply: dict[str, Any]) -> str:
    assert reply["text"].startswith(":rocket: Queued"), reply
    return str(reply["text"].split(" as build `")[1].split("`")[0])


def executions(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return sfn.list_executions(stateMachineArn=arn)["executions"]  # type: ignore[no-any-return]


def builds(store: Store) -> list[Any]:
    return store.list_builds(status=None, limit=100, token=None)[0]


def test_build_answers_with_the_build_id_and_records_where_to_notify(
    client: Client, slack: None, aws: dict[str, Any], store: Store
) -> None:
    reply = command(client, "build 4.4.1 jsonlite data.table arm64")
    [record] = builds(store)
    assert f"`{record.build_id}`" in reply["text"]
    assert "R 4.4.1 (arm64) with data.table, jsonlite" in reply["text"]
    assert record.source == "slack"
    assert record.spec.architecture.value == "arm64"
    assert record.notify is not None
    assert record.notify.model_dump() == {
        "response_url": HOOK,
        "channel_id": "C2147483705",
        "team_id": "T0001",
        "user_id": "U2147483697",
        "requested_at": None,
    }
    assert record.watchers == []
    # The API shows where the result goes, never the response_url itself.
    for path in (f"/builds/{record.build_id}", "/builds"):
        shown = json.loads(client.http.get(path).body)
        shown = shown["builds"][0] if "builds" in shown else shown
        assert shown["build_id"] == record.build_id
        assert shown["notify"] == {
            "channel_id": "C2147483705",
            "team_id": "T0001",
            "user_id": "U2147483697",
            "requested_at": None,
        }
    assert [e["name"] for e in executions(aws["state_machine_arn"])] == [record.build_id]


def test_slack_and_http_share_de_duplication(
    client: Client, slack: None, aws: dict[str, Any], store: Store
) -> None:
    first = command(client, "build 4.4.1 jsonlite digest")
    [record] = builds(store)
    again = command(client, "build 4.4.1 digest, jsonlite")  # another signature, same spec
    assert again["text"].startswith(":recycle:")
    assert f"`{record.build_id}` is QUEUED" in again["text"]
    http = client.http.post(
        "/builds",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"r_version": "4.4.1", "packages": ["jsonlite", "digest"]}),
    )
    assert http.status_code == 200 and json.loads(http.body)["build_id"] == record.build_id
    assert len(executions(aws["state_machine_arn"])) == 1
    assert first["text"] != again["text"]
    forced = command(client, "build 4.4.1 jsonlite digest --force")
    assert forced["text"].startswith(":rocket:")
    assert len(executions(aws["state_machine_arn"])) == 2


def test_later_requesters_of_a_running_build_are_told_when_it_ends(
    client: Client, slack: None, aws: dict[str, Any], store: Store
) -> None:
    queued_id(command(client, "build 4.4.1 jsonlite"))
    [record] = builds(store)
    other_hook = "https://hooks.slack.com/commands/T0001/5678/efgh"
    again = command(client, "build 4.4.1 jsonlite", user_id="U0000000002", response_url=other_hook)
    assert again["text"].startswith(":recycle:")
    assert "you will be told here when it ends" in again["text"]
    # The same people asking again, or a subscription's channel, add nobody twice.
    command(client, "build 4.4.1 jsonlite")
    command(client, "build 4.4.1 jsonlite", user_id="U0000000002", response_url=other_hook)
    watchers = store.get_build(record.build_id).watchers
    assert [(w.user_id, w.response_url) for w in watchers] == [("U0000000002", other_hook)]
    assert watchers[0].requested_at is not None
    assert watchers[0].requested_at >= record.created_at
    shown = json.loads(client.http.get(f"/builds/{record.build_id}").body)
    assert [set(w) for w in shown["watchers"]] == [
        {"channel_id", "team_id", "user_id", "requested_at"}
    ]
    assert len(executions(aws["state_machine_arn"])) == 1


def test_a_requester_of_an_ended_build_gets_the_result_and_is_not_a_watcher(
    client: Client, slack: None, store: Store
) -> None:
    build_id = queued_id(command(client, "build 4.4.1 jsonlite"))
    mark_succeeded(store, build_id, "arn:aws:lambda:us-east-1:123456789012:layer:r-4_4_1-x86_64:1")
    reply = command(client, "build 4.4.1 jsonlite", user_id="U0000000002")
    assert reply["text"].startswith("This exact spec was already built")
    assert store.get_build(build_id).watchers == []


def test_a_built_spec_answers_with_its_arns_at_once(
    client: Client, slack: None, aws: dict[str, Any], store: Store
) -> None:
    command(client, "build 4.4.1 jsonlite")
    [record] = builds(store)
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:r-4_4_1-x86_64:1"
    mark_succeeded(store, record.build_id, arn, zipped_bytes=14155776, unzipped_bytes=20971520)
    reply = command(client, "build 4.4.1 jsonlite")
    assert "already built" in reply["text"]
    assert f"```{arn}```" in reply["text"]
    assert "*Canary:* R 4.4.1 · jsonlite 1.8.9" in reply["text"]
    assert len(executions(aws["state_machine_arn"])) == 1


# Each Slack text with the JSON body POST /builds gets for the same request: the reason
# must be the very same message (escaped for Slack), naming the same field.
SAME_AS_HTTP = [
    ("build 4.4 jsonlite", {"r_version": "4.4", "packages": ["jsonlite"]}, "r_version"),
    ("build 4.4.1 'x;rm'", {"r_version": "4.4.1", "packages": ["x;rm"]}, "packages"),
    ("build", {}, "r_version"),
    ("build 3.6.3", {"r_version": "3.6.3"}, "r_version"),
    (
        "build 4.4.1 jsonlite==1.0;ls",
        {"r_version": "4.4.1", "packages": ["jsonlite==1.0;ls"]},
        "packages",
    ),
    (
        "build 4.4.1 jsonlite jsonlite==1.8.7",
        {"r_version": "4.4.1", "packages": ["jsonlite", "jsonlite==1.8.7"]},
        "packages",
    ),
    ("build 4.4.1 arch=sparc", {"r_version": "4.4.1", "architecture": "sparc"}, "architecture"),
    (
        "build 4.4.1 layer='my layer!'",
        {"r_version": "4.4.1", "layer_name": "my layer!"},
        "layer_name",
    ),
    ("build 4.4.1 colour=red", {"r_version": "4.4.1", "colour": "red"}, "colour"),
    ("build 4.4.1 <!channel>", {"r_version": "4.4.1", "packages": ["<!channel>"]}, "packages"),
]


@pytest.mark.parametrize(("text", "body", "field"), SAME_AS_HTTP)
def test_bad_arguments_get_the_http_reason_and_help_and_start_nothing(
    client: Client,
    slack: None,
    aws: dict[str, Any],
    store: Store,
    text: str,
    body: dict[str, Any],
    field: str,
) -> None:
    http = client.http.post(
        "/builds", headers={"Content-Type": "application/json"}, body=json.dumps(body)
    )
    assert http.status_code == 400
    expected = json.loads(http.body)
    assert expected["field"].split(".")[0] == field
    reply = command(client, text)
    assert reply["text"].startswith(f":warning: {escape(expected['message'])}\n")
    assert "request a build" in reply["text"]  # the help follows the reason
    assert "<!channel>" not in reply["text"]
    assert builds(store) == []
    assert executions(aws["state_machine_arn"]) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("frobnicate 4.4.1", "unknown subcommand 'frobnicate'"),
        ("status", "build_id: give exactly one build id"),
        ("list DONE", "status: 'DONE' is neither a status"),
        ("list 0", "limit:"),
        ("layers 4.4", "r_version: must be an R version"),
        ("build 4.4.1 'oops", "text: No closing quotation"),
    ],
)
def test_unknown_subcommands_and_malformed_arguments_get_help(
    client: Client, slack: None, aws: dict[str, Any], store: Store, text: str, reason: str
) -> None:
    reply = command(client, text)
    assert reply["text"].startswith(f":warning: {escape(reason)}")
    assert "`/rlayer help`" in reply["text"]
    assert builds(store) == []
    assert executions(aws["state_machine_arn"]) == []


def test_help_and_empty_text_show_every_subcommand(client: Client, slack: None) -> None:
    for text in ("help", ""):
        reply = command(client, text, command="/rl")
        for sub in ("build", "status", "list", "layers", "subscribe", "subscriptions", "help"):
            assert f"`/rl {sub}" in reply["text"]


def test_status_list_and_layers(client: Client, slack: None, store: Store) -> None:
    old, arm, new = (
        queued_id(command(client, text))
        for text in ("build 4.4.1 jsonlite", "build 4.4.1 arm64", "build 4.3.2")
    )
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:r-4_4_1-x86_64:7"
    mark_succeeded(store, old, arn, zipped_bytes=14155776, unzipped_bytes=20971520)
    store.transition(
        new,
        BuildStatus.FAILED,
        {
            "error": {
                "step": "CheckBuild",
                "error_type": "BuildFailedError",
                "message": "compile failed",
            }
        },
    )

    status = command(client, f"status {old}")["text"]
    assert status.startswith(":white_check_mark:") and arn in status
    failed = command(client, f"status {new}")["text"]
    assert "*Failed at* `CheckBuild` (BuildFailedError): compile failed" in failed
    queued = command(client, f"status {arm}")["text"]
    assert "is *QUEUED*" in queued
    missing = command(client, "status 20250101T000000-deadbeef")["text"]
    assert missing.startswith(":mag: no build with id")

    listed = command(client, "list")["text"].splitlines()
    assert [line.split("`")[1] for line in listed[1:]] == [new, arm, old]
    assert "FAILED" in listed[1] and "SUCCEEDED" in listed[3]
    only_failed = command(client, "list failed 5")["text"].splitlines()
    assert [line.split("`")[1] for line in only_failed[1:]] == [new]

    layers = command(client, "layers 4.4.1")["text"]
    assert old in layers and arn in layers and arm not in layers
    assert command(client, "layers 4.4.1 arm64")["text"] == "No proven layers match."


def test_unsigned_forged_stale_and_tampered_requests_get_401(
    client: Client, slack: None, aws: dict[str, Any], store: Store
) -> None:
    body = form("build 4.4.1 jsonlite")
    now = int(time.time())
    tampered = sign(form("build 4.4.1 digest"))
    bad_headers = [
        {"Content-Type": FORM_CT},  # unsigned
        {**sign(body), "X-Slack-Request-Timestamp": ""},
        {"Content-Type": FORM_CT, "X-Slack-Signature": sign(body)["X-Slack-Signature"]},
        sign(body, secret="not-the-secret"),  # forged
        sign(body, timestamp=now - 301),  # stale
        sign(body, timestamp=now + 400),  # from the future
        {**sign(body), "X-Slack-Request-Timestamp": "yesterday"},
        {**sign(body), "X-Slack-Signature": "v0=" + "0" * 64},
        tampered,  # a valid signature over another body
    ]
    for headers in bad_headers:
        status, answer = send(client, body, headers)
        assert status == 401, headers
        assert answer["error"] == "SignatureInvalidError"
    assert builds(store) == []
    assert executions(aws["state_machine_arn"]) == []
    # A request signed 4 minutes ago is still inside Slack's window.
    status, _ = send(client, body, sign(body, timestamp=now - 240))
    assert status == 200 and len(builds(store)) == 1


def test_a_replayed_request_gets_the_first_answer_and_starts_nothing(
    client: Client, slack: None, aws: dict[str, Any], store: Store
) -> None:
    body = form("build 4.4.1 jsonlite --force")  # --force: de-duplication alone would not do
    headers = sign(body)
    first = send(client, body, headers)
    replayed = [send(client, body, headers) for _ in range(3)]
    assert first[0] == 200 and first[1]["text"].startswith(":rocket:")
    assert all(r == first for r in replayed)
    assert len(builds(store)) == 1
    assert len(executions(aws["state_machine_arn"])) == 1
    marker = store.get_item(f"SLACKREQ#{headers['X-Slack-Signature']}")
    assert marker is not None and 0 < marker["ttl"] - time.time() <= 300


def test_teams_and_channels_outside_the_allow_lists_are_refused(
    client: Client, slack: None, aws: dict[str, Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    setenv(monkeypatch, SLACK_ALLOWED_TEAMS="T0001,T0002", SLACK_ALLOWED_CHANNELS="C2147483705")
    other_team = command(client, "build 4.4.1", team_id="T9999")
    assert other_team["text"] == ":no_entry: this Slack workspace is not allowed to use rlayer."
    other_channel = command(client, "build 4.4.1", channel_id="C1")
    assert other_channel["text"] == ":no_entry: rlayer is not enabled in this channel."
    assert builds(store) == []
    allowed = command(client, "build 4.4.1", team_id="T0002")
    assert allowed["text"].startswith(":rocket:")
    assert len(executions(aws["state_machine_arn"])) == 1


def test_no_signing_secret_configured_refuses_everything(
    client: Client, aws: dict[str, Any], store: Store
) -> None:
    body = form("build 4.4.1")
    status, answer = send(client, body, sign(body, secret=" "))
    assert status == 500 and answer["error"] == "ConfigurationError"
    assert builds(store) == []


def test_signing_secret_and_token_from_ssm(
    client: Client, aws: dict[str, Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = "ssm-stored-signing-secret"
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/rlayer/test/slack",
        Type="SecureString",
        Value=json.dumps({"signing_secret": stored, "bot_token": "xoxb-stored"}),
    )
    setenv(
        monkeypatch,
        SLACK_SECRET_PARAMETER="/rlayer/test/slack",
        SLACK_SIGNING_SECRET="the-environment-one-is-overridden",
    )
    body = form("help")
    assert send(client, body, sign(body, secret=stored))[0] == 200
    assert send(client, body, sign(body))[0] == 401
    assert slack_config(get_settings()).bot_token == "xoxb-stored"
    secrets.clear_cache()


def test_signing_secret_from_secrets_manager(
    client: Client, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="rlayer/slack", SecretString="sm-stored-secret"
    )
    setenv(monkeypatch, SLACK_SECRET_PARAMETER="secretsmanager:rlayer/slack")
    body = form("list")
    status, reply = send(client, body, sign(body, secret="sm-stored-secret"))
    assert status == 200 and reply["text"] == "No builds yet."
    setenv(monkeypatch, SLACK_SECRET_PARAMETER="secretsmanager:missing")
    status, answer = send(client, body, sign(body, secret="sm-stored-secret"))
    assert status == 500 and answer["error"] == "ConfigurationError"
    secrets.clear_cache()


def test_a_response_url_outside_slack_is_rejected(
    client: Client, slack: None, aws: dict[str, Any], store: Store
) -> None:
    status, answer = send(client, form("build 4.4.1", response_url="http://169.254.169.254/x"))
    # Signed, so answered in words (Slack drops the body of anything but a 200).
    assert status == 200 and answer["response_type"] == "ephemeral"
    assert "response_url" in answer["text"]
    assert builds(store) == []


def test_a_failed_start_is_reported_not_raised(
    client: Client, slack: None, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    setenv(
        monkeypatch,
        STATE_MACHINE_ARN="arn:aws:states:us-east-1:123456789012:stateMachine:missing",
    )
    reply = command(client, "build 4.4.1")
    # The reason (no such state machine) is in the log; the user gets a request id.
    assert reply["text"].startswith(":boom: rlayer could not do that just now; try again later")
    assert "request id `" in reply["text"] and "missing" not in reply["text"]
    [record] = builds(store)
    assert record.status is BuildStatus.FAILED


def test_only_form_bodies_are_accepted(client: Client, slack: None) -> None:
    body = form("help")
    resp = client.http.post(
        "/slack/commands", headers={**sign(body), "Content-Type": "application/json"}, body=body
    )
    assert resp.status_code == 415


def test_subscribe_list_and_unsubscribe_from_a_channel(
    client: Client, slack: None, store: Store
) -> None:
    from chalicelib.subscriptions import iter_subscriptions

    reply = command(client, "subscribe jsonlite, data.table arm64", channel_id="C42")
    assert reply["text"].startswith(":bell: subscribed")
    (subscription,) = list(iter_subscriptions(store))
    assert subscription.packages == ["data.table", "jsonlite"]
    assert [a.value for a in subscription.architectures] == ["arm64"]
    assert subscription.notify is not None and subscription.notify.channel_id == "C42"
    assert subscription.source == "slack" and subscription.created_by == "U2147483697"
    assert subscription.subscription_id in command(client, "subscriptions")["text"]

    bad = command(client, "subscribe 'x;rm'")
    assert "packages" in bad["text"] and len(list(iter_subscriptions(store))) == 1

    gone = command(client, f"unsubscribe {subscription.subscription_id}")
    assert subscription.subscription_id in gone["text"]
    assert list(iter_subscriptions(store)) == []
    assert command(client, "subscriptions")["text"] == "No subscriptions yet."
    assert command(client, "unsubscribe sub-000000000000")["text"].startswith(":mag:")
