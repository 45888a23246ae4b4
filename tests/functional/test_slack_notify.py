"""The final Slack message, posted to a local HTTP server standing in for Slack."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from chalice.test import Client

from chalicelib.aws.store import Store
from chalicelib.errors import SlackPostError
from chalicelib.models import (
    BuildRecord,
    BuildSpec,
    BuildStatus,
    CanaryResult,
    ErrorInfo,
    LayerRef,
    NotifyTarget,
)
from chalicelib.observability import logger
from chalicelib.settings import get_settings, reset_settings
from chalicelib.slack.notifier import deliver, notify_slack
from tests.functional.test_slack_api import HOOK, command, queued_id, slack

__all__ = ["slack"]  # the fixture, imported for the Notify step tests

TOKEN = "xoxb-test-token"
RUNTIME_ARN = "arn:aws:lambda:us-east-1:123456789012:layer:r-4_4_1-x86_64:4"
PACKAGES_ARN = "arn:aws:lambda:us-east-1:123456789012:layer:r-4_4_1-x86_64-pkgs-0123:1"


@dataclass
class FakeSlack:
    """Records every POST; answers each path with a configured status and body."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            fake.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)}
            )
            status, body = fake.answers.get(self.path, (200, {"ok": True}))
            data = json.dumps(body).encode() if self.path.startswith("/api/") else b"ok"
            if status != 200:
                data = b"internal error"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def bot(fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", f"{fake_slack.url}/api/")
    reset_settings()


def record(
    status: BuildStatus, *, response_url: str | None, age: timedelta = timedelta(minutes=12)
) -> BuildRecord:
    created = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    extra: dict[str, Any] = {}
    if status is BuildStatus.SUCCEEDED:
        extra["layers"] = [
            LayerRef(
                kind="runtime",
                name="r-4_4_1-x86_64",
                arn=RUNTIME_ARN,
                version=4,
                sha256="a" * 64,
                zipped_bytes=14155776,
                unzipped_bytes=20971520,
                reused=True,
            ),
            LayerRef(
                kind="packages",
                name="r-4_4_1-x86_64-pkgs-0123",
                arn=PACKAGES_ARN,
                version=1,
                sha256="b" * 64,
                zipped_bytes=5242880,
                unzipped_bytes=15728640,
            ),
        ]
        extra["canary"] = CanaryResult(
            r_version="4.4.1", packages={"jsonlite": "1.8.9", "data.table": "1.15.4"}, init_ms=290
        )
    else:
        extra["error"] = ErrorInfo(
            step="RunCanary", error_type="CanaryFailedError", message="library(data.table) failed"
        )
    return BuildRecord(
        build_id="20250101T120000-0badcafe",
        spec_hash="0123456789abcdef",
        spec=BuildSpec(r_version="4.4.1", packages=("jsonlite", "data.table")),
        status=status,
        source="slack",
        created_at=created,
        notify=NotifyTarget(
            response_url=response_url, channel_id="C0001", team_id="T0001", user_id="U0001"
        ),
        **extra,
    )


def test_success_goes_to_the_response_url_with_arns_sizes_and_canary(
    fake_slack: FakeSlack,
) -> None:
    notify_slack(record(BuildStatus.SUCCEEDED, response_url=f"{fake_slack.url}/hook/1"))
    [post] = fake_slack.requests
    assert post["path"] == "/hook/1"
    assert post["headers"]["Content-Type"].startswith("application/json")
    body = post["body"]
    assert body["response_type"] == "in_channel" and body["replace_original"] is False
    text = body["text"]
    assert text.startswith(":white_check_mark: <@U0001> build `20250101T120000-0badcafe`")
    assert f"```{RUNTIME_ARN}\n{PACKAGES_ARN}```" in text
    assert "13.5 MB zipped, 20.0 MB unzipped, reused" in text
    assert "5.0 MB zipped, 15.0 MB unzipped" in text
    assert "*Canary:* R 4.4.1 · data.table 1.15.4, jsonlite 1.8.9 · init 290 ms" in text


def test_failure_names_the_step_and_reason(fake_slack: FakeSlack) -> None:
    notify_slack(record(BuildStatus.FAILED, response_url=f"{fake_slack.url}/hook/2"))
    text = fake_slack.requests[0]["body"]["text"]
    assert text.startswith(":x: <@U0001> build `20250101T120000-0badcafe`")
    assert "*Failed at* `RunCanary` (CanaryFailedError): library(data.table) failed" in text


def test_a_build_that_outlived_the_response_url_uses_the_bot_token(
    fake_slack: FakeSlack, bot: None
) -> None:
    old = record(
        BuildStatus.SUCCEEDED, response_url=f"{fake_slack.url}/hook/3", age=timedelta(minutes=40)
    )
    assert deliver(old, settings=get_settings()) == "chat.postMessage"
    [post] = fake_slack.requests  # the expired response_url was not tried
    assert post["path"] == "/api/chat.postMessage"
    assert post["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert post["body"]["channel"] == "C0001"
    assert RUNTIME_ARN in post["body"]["text"]


def test_a_failed_response_url_post_falls_back_to_the_channel(
    fake_slack: FakeSlack, bot: None
) -> None:
    fake_slack.answers["/hook/4"] = (500, {})
    rec = record(BuildStatus.FAILED, response_url=f"{fake_slack.url}/hook/4")
    assert deliver(rec, settings=get_settings()) == "chat.postMessage"
    assert fake_slack.paths() == ["/hook/4", "/api/chat.postMessage"]


def _log_lines(run: Any) -> list[dict[str, Any]]:
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    sink = io.StringIO()
    previous = handler.setStream(sink)
    try:
        run()
    finally:
        handler.setStream(previous)
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_every_posting_failure_is_logged_and_swallowed(fake_slack: FakeSlack, bot: None) -> None:
    fake_slack.answers["/hook/5"] = (500, {})
    fake_slack.answers["/api/chat.postMessage"] = (200, {"ok": False, "error": "not_in_channel"})
    rec = record(BuildStatus.SUCCEEDED, response_url=f"{fake_slack.url}/hook/5")
    with pytest.raises(SlackPostError) as caught:
        deliver(rec, settings=get_settings())
    assert "response_url answered 500" in caught.value.message
    assert "chat.postMessage: not_in_channel" in caught.value.message
    lines = _log_lines(lambda: notify_slack(rec))  # returns normally
    [failure] = [line for line in lines if line["message"] == "slack notification failed"]
    assert failure["level"] == "ERROR" and failure["build_id"] == rec.build_id
    assert "not_in_channel" in failure["exception"]


def test_an_unreachable_slack_is_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", f"http://127.0.0.1:{port}/api/")
    reset_settings()
    rec = record(BuildStatus.SUCCEEDED, response_url=f"http://127.0.0.1:{port}/hook")
    with pytest.raises(SlackPostError, match="refused"):
        deliver(rec, settings=get_settings())
    lines = _log_lines(lambda: notify_slack(rec))  # returns normally
    assert [line["level"] for line in lines if "slack" in line["message"]] == ["ERROR"]


def test_no_token_and_an_expired_url_is_reported(fake_slack: FakeSlack) -> None:
    rec = record(
        BuildStatus.SUCCEEDED, response_url=f"{fake_slack.url}/hook/6", age=timedelta(hours=2)
    )
    with pytest.raises(SlackPostError) as caught:
        deliver(rec, settings=get_settings())
    assert "expired" in caught.value.message and "no bot token" in caught.value.message
    assert fake_slack.requests == []


def test_builds_not_from_slack_post_nothing(fake_slack: FakeSlack, bot: None) -> None:
    rec = record(BuildStatus.SUCCEEDED, response_url=None).model_copy(update={"notify": None})
    notify_slack(rec)
    assert fake_slack.requests == []


# ---- through the state machine's Notify step (the `notify` Lambda app.py registers)


def _request_from_slack(client: Client, store: Store, fake: FakeSlack, text: str) -> str:
    """A build asked for with /rlayer; its response_url then re-pointed at the fake.

    The route only accepts Slack's hooks.slack.com, so the test swaps the stored URL for
    the local server that stands in for it; everything else is what the command stored.
    """
    reply = command(client, text)
    build_id = queued_id(reply)
    record = store.get_build(build_id)
    assert record.notify is not None and record.notify.response_url == HOOK
    target = record.notify.model_copy(update={"response_url": f"{fake.url}/commands/T/1/x"})
    store.update_build(build_id, {"notify": target.model_dump()}, expect=BuildStatus.QUEUED)
    return build_id


def _finish(store: Store, build_id: str) -> None:
    for status in (
        BuildStatus.BUILDING,
        BuildStatus.VALIDATING,
        BuildStatus.PUBLISHING,
        BuildStatus.TESTING,
    ):
        store.transition(build_id, status)
    done = record(BuildStatus.SUCCEEDED, response_url=None)
    store.transition(
        build_id,
        BuildStatus.SUCCEEDED,
        {
            "layers": [layer.model_dump() for layer in done.layers],
            "canary": done.canary.model_dump() if done.canary else None,
        },
    )


def test_notify_step_posts_the_result_to_the_requesting_channel(
    client: Client, slack: None, store: Store, fake_slack: FakeSlack
) -> None:
    build_id = _request_from_slack(client, store, fake_slack, "build 4.4.1 jsonlite data.table")
    _finish(store, build_id)
    result = client.lambda_.invoke("notify", {"build_id": build_id})
    assert result.payload == {"status": "SUCCEEDED"}
    [post] = fake_slack.requests
    assert post["path"] == "/commands/T/1/x"
    text = post["body"]["text"]
    assert post["body"]["response_type"] == "in_channel"
    assert text.startswith(f":white_check_mark: <@U2147483697> build `{build_id}` of R 4.4.1")
    assert f"```{RUNTIME_ARN}\n{PACKAGES_ARN}```" in text
    assert "*Canary:* R 4.4.1 · data.table 1.15.4, jsonlite 1.8.9" in text


def test_notify_step_tells_every_requester_even_when_one_post_fails(
    client: Client, slack: None, store: Store, fake_slack: FakeSlack
) -> None:
    build_id = _request_from_slack(client, store, fake_slack, "build 4.4.1 jsonlite data.table")
    # Two more people ask for the same spec while it builds; the first of them from a
    # response_url that now fails.
    for user, path in (("U0000000002", "/commands/T/2/dead"), ("U0000000003", "/commands/T/3/y")):
        command(client, "build 4.4.1 data.table jsonlite", user_id=user)
        fake_slack.answers[path] = (500, {}) if path.endswith("dead") else (200, {})
        watchers = store.get_build(build_id).watchers
        store.update_build(
            build_id,
            {
                "watchers": [
                    w.model_dump()
                    if w.user_id != user
                    else w.model_copy(
                        update={"response_url": f"{fake_slack.url}{path}"}
                    ).model_dump()
                    for w in watchers
                ]
            },
            expect=BuildStatus.QUEUED,
        )
    _finish(store, build_id)
    result = client.lambda_.invoke("notify", {"build_id": build_id})
    assert result.payload == {"status": "SUCCEEDED"}
    assert fake_slack.paths() == ["/commands/T/1/x", "/commands/T/2/dead", "/commands/T/3/y"]
    mentions = [r["body"]["text"].split(" build `")[0] for r in fake_slack.requests]
    assert mentions == [
        ":white_check_mark: <@U2147483697>",
        ":white_check_mark: <@U0000000002>",
        ":white_check_mark: <@U0000000003>",
    ]


def test_a_watchers_response_url_lifetime_runs_from_its_own_request(
    fake_slack: FakeSlack, bot: None
) -> None:
    rec = record(BuildStatus.SUCCEEDED, response_url=None, age=timedelta(hours=2))
    watcher = NotifyTarget(
        response_url=f"{fake_slack.url}/hook/late",
        channel_id="C0002",
        user_id="U0000000002",
        requested_at=(datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
    )
    assert deliver(rec, settings=get_settings(), target=watcher) == "response_url"
    assert fake_slack.paths() == ["/hook/late"]


@pytest.mark.parametrize("failure", ["http 500", "connection refused"])
def test_a_posting_failure_leaves_the_build_succeeded(
    client: Client,
    slack: None,
    store: Store,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    build_id = _request_from_slack(client, store, fake_slack, "build 4.4.1 jsonlite")
    target = store.get_build(build_id).notify
    assert target is not None and target.response_url is not None
    if failure == "http 500":
        fake_slack.answers[urlsplit(target.response_url).path] = (500, {})
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}/commands/T/1/x"
        store.update_build(
            build_id,
            {"notify": target.model_copy(update={"response_url": dead}).model_dump()},
            expect=BuildStatus.QUEUED,
        )
    _finish(store, build_id)
    results: list[Any] = []
    lines = _log_lines(
        lambda: results.append(client.lambda_.invoke("notify", {"build_id": build_id}))
    )
    assert results[0].payload == {"status": "SUCCEEDED"}  # the step itself succeeded
    assert store.get_build(build_id).status is BuildStatus.SUCCEEDED
    if failure == "http 500":
        assert fake_slack.paths() == [urlsplit(target.response_url).path]
    [failed] = [line for line in lines if line["message"] == "slack notification failed"]
    assert failed["build_id"] == build_id
    finished = [line for line in lines if line["message"] == "build finished"]
    assert finished and finished[0]["status"] == "SUCCEEDED"
