"""The release scheduler against a real HTTP feed on 127.0.0.1, moto and the Chalice client.

The feed server plays the r-hub rversions API and every way it can fail: down, slow,
dripping, HTML, a bad version, an empty list. The schedule handler is invoked the way
EventBridge does it, and overlapping runs race in threads.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.aws.store import Store
from chalicelib.models import BuildStatus
from chalicelib.releases import CheckResult, run_release_check
from chalicelib.releases.runs import request_check
from chalicelib.settings import get_settings, reset_settings
from chalicelib.subscriptions import SubscriptionRequest, create_subscription
from rlayer.local.lambda_bridge import LambdaBridge
from tests.faults import aws_fault
from tests.functional.conftest import OneCallAtATime, atomic_store

TIMEOUT_S = 0.5
# Releases before 4.0.0, in the feed as in the real one, never matter.
HISTORY: list[dict[str, Any]] = [
    {"version": "0.60", "date": "1997-12-04T08:47:58.000000Z", "nickname": None},
    {"version": "3.6.3", "date": "2020-02-29T08:05:16.744223Z", "nickname": "Holding the Windsock"},
]


def feed_of(*versions: str) -> list[dict[str, Any]]:
    return HISTORY + [
        {"version": v, "date": f"2024-01-{i + 1:02d}T00:00:00Z", "nickname": f"name {v}"}
        for i, v in enumerate(versions)
    ]


class FeedServer:
    """An HTTP server on a free port whose answer each test sets."""

    def __init__(self) -> None:
        self.body: bytes = b"[]"
        self.status = 200
        self.content_type = "application/json"
        self.delay_s = 0.0
        self.drip_s = 0.0
        self.barrier: threading.Barrier | None = None
        self.hits = 0
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                try:
                    if server.barrier is not None:
                        server.barrier.wait()
                    if server.delay_s:
                        server._stopping.wait(server.delay_s)
                    self.send_response(server.status)
                    self.send_header("Content-Type", server.content_type)
                    self.send_header("Content-Length", str(len(server.body)))
                    self.end_headers()
                    if server.drip_s:
                        for byte in server.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if server._stopping.wait(server.drip_s):
                                return
                    else:
                        self.wfile.write(server.body)
                except (BrokenPipeError, ConnectionResetError, threading.BrokenBarrierError):
                    pass  # the client gave up, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/rversions/r-versions"

    def serve(
        self, data: Any, *, status: int = 200, content_type: str = "application/json"
    ) -> None:
        self.body = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.status = status
        self.content_type = content_type
        self.delay_s = self.drip_s = 0.0
        self.barrier = None

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def point_feed_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("R_RELEASES_URL", url)
    reset_settings()


@pytest.fixture
def feed(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedServer]:
    server = FeedServer()
    monkeypatch.setenv("RELEASES_TIMEOUT_S", str(TIMEOUT_S))
    point_feed_at(monkeypatch, server.url)
    try:
        yield server
    finally:
        server.stop()


def dead_url() -> str:
    # A port that was free a moment ago and has nobody listening: connection refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/rversions/r-versions"


def scheduled(client: Client) -> dict[str, Any]:
    """Invoke the schedule handler with the event EventBridge sends."""
    event = client.events.generate_cw_event(
        source="aws.events",
        detail_type="Scheduled Event",
        detail={},
        resources=["arn:aws:events:us-east-1:123456789012:rule/rlayer-dev-check_releases"],
        region="us-east-1",
    )
    payload: dict[str, Any] = client.lambda_.invoke("check_releases", event).payload
    return payload


def executions(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return sfn.list_executions(stateMachineArn=arn)["executions"]  # type: ignore[no-any-return]


def release_items(store: Store) -> dict[str, dict[str, Any]]:
    items, _ = store.query_kind("RELEASE")
    return {item["version"]: item for item in items}


def subscribe(store: Store, packages: list[str], architectures: list[str], **kw: Any) -> str:
    request = SubscriptionRequest(packages=packages, architectures=architectures, **kw)  # type: ignore[arg-type]
    return create_subscription(store, request).subscription_id


def check(store: Store) -> CheckResult:
    return run_release_check(Store(store.table_name), get_settings())


def test_first_run_is_a_baseline_then_each_new_release_builds_every_subscription(
    client: Client, feed: FeedServer, store: Store, aws: dict[str, Any]
) -> None:
    created = client.http.post(
        "/subscriptions",
        headers={"Content-Type": "application/json"},
        body=json.dumps(
            {
                "packages": ["jsonlite", "digest"],
                "architectures": ["x86_64", "arm64"],
                "notify": {"channel_id": "C0123ABCD"},
            }
        ),
    )
    team = json.loads(created.body)["subscription_id"]
    bare = subscribe(store, [], ["x86_64"])
    feed.serve(feed_of("4.3.3", "4.4.0", "4.4.1"))

    first = scheduled(client)
    assert first["ok"] and first["latest"] == "4.4.1"
    assert first["baseline"] == ["4.3.3", "4.4.0", "4.4.1"]
    assert first["releases"] == []
    assert executions(aws["state_machine_arn"]) == []
    listed = json.loads(client.http.get("/releases").body)["releases"]
    assert [(r["version"], r["baseline"], r["builds"]) for r in listed] == [("4.4.1", True, [])]
    assert listed[0]["covers"] == ["4.3.3", "4.4.0", "4.4.1"]

    again = scheduled(client)
    assert again["ok"] and again["baseline"] == [] and again["releases"] == []

    feed.serve(feed_of("4.3.3", "4.4.0", "4.4.1", "4.4.2"))
    result = scheduled(client)
    assert [(r["version"], r["outcome"]) for r in result["releases"]] == [("4.4.2", "recorded")]
    builds = result["releases"][0]["builds"]
    assert sorted((b["subscription_id"], b["architecture"]) for b in builds) == sorted(
        [(team, "x86_64"), (team, "arm64"), (bare, "x86_64")]
    )
    assert all(b["created"] for b in builds)
    runs = executions(aws["state_machine_arn"])
    assert sorted(r["name"] for r in runs) == sorted(b["build_id"] for b in builds)
    for b in builds:
        record = store.get_build(b["build_id"])
        assert record.source == "schedule" and record.status is BuildStatus.QUEUED
        assert record.subscription_id == b["subscription_id"]
        assert record.spec.r_version == "4.4.2"
        assert record.spec.architecture.value == b["architecture"]
        if b["subscription_id"] == team:
            assert record.spec.package_names() == ["digest", "jsonlite"]
            assert record.notify is not None and record.notify.channel_id == "C0123ABCD"
        else:
            assert record.spec.packages == () and record.notify is None

    listed = json.loads(client.http.get("/releases").body)["releases"]
    assert [r["version"] for r in listed] == ["4.4.2", "4.4.1"]
    assert {b["build_id"] for b in listed[0]["builds"]} == {b["build_id"] for b in builds}
    assert all(b["status_url"].endswith(f"/builds/{b['build_id']}") for b in listed[0]["builds"])

    quiet = scheduled(client)
    assert quiet["releases"] == []
    assert len(executions(aws["state_machine_arn"])) == 3


def test_subscriptions_with_the_same_spec_share_one_build_and_both_channels_hear(
    client: Client, feed: FeedServer, store: Store, aws: dict[str, Any]
) -> None:
    first = subscribe(store, ["jsonlite"], ["x86_64"], notify={"channel_id": "C000000AAA"})
    second = subscribe(store, ["jsonlite"], ["x86_64"], notify={"channel_id": "C000000BBB"})
    feed.serve(feed_of("4.4.1"))
    scheduled(client)
    feed.serve(feed_of("4.4.1", "4.4.2"))
    [release] = scheduled(client)["releases"]
    by_subscription = {b["subscription_id"]: b for b in release["builds"]}
    assert by_subscription[first]["build_id"] == by_subscription[second]["build_id"]
    assert sorted(b["created"] for b in release["builds"]) == [False, True]
    record = store.get_build(by_subscription[first]["build_id"])
    channels = [t.channel_id for t in record.notify_targets()]
    assert sorted(channels) == ["C000000AAA", "C000000BBB"]
    assert len(executions(aws["state_machine_arn"])) == 1


def test_several_releases_since_the_last_run_build_in_release_order(
    feed: FeedServer, store: Store, aws: dict[str, Any]
) -> None:
    subscribe(store, ["R6"], ["arm64"])
    feed.serve(feed_of("4.4.0"))
    check(store)
    # Out of order in the feed, and a late patch of an older branch among them.
    feed.serve(feed_of("4.4.0", "4.5.1", "4.3.4", "4.5.0"))
    result = check(store)
    assert [r.version for r in result.releases] == ["4.3.4", "4.5.0", "4.5.1"]
    assert all(r.outcome == "recorded" for r in result.releases)
    assert len(executions(aws["state_machine_arn"])) == 3
    assert set(release_items(store)) == {"4.4.0", "4.3.4", "4.5.0", "4.5.1"}


@pytest.mark.parametrize(
    ("baseline", "built"),
    [
        ("current", []),
        ("none", ["4.0.0", "4.3.0", "4.4.0"]),
        ("4.3.0", ["4.4.0"]),
        ("4.2.9", ["4.3.0", "4.4.0"]),
    ],
)
def test_the_first_run_baseline_is_configurable(
    feed: FeedServer,
    store: Store,
    aws: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    baseline: str,
    built: list[str],
) -> None:
    monkeypatch.setenv("RELEASES_BASELINE", baseline)
    reset_settings()
    subscribe(store, [], ["x86_64"])
    feed.serve(feed_of("4.0.0", "4.3.0", "4.4.0"))
    result = check(store)
    assert [r.version for r in result.releases] == built
    assert len(executions(aws["state_machine_arn"])) == len(built)
    # Whatever the baseline, nothing is left unseen and a second run does nothing.
    assert check(store).releases == []


def test_a_bad_baseline_setting_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.errors import ConfigurationError

    monkeypatch.setenv("RELEASES_BASELINE", "latest")
    reset_settings()
    with pytest.raises(ConfigurationError):
        get_settings()


def _down(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    point_feed_at(monkeypatch, dead_url())


def _slow(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    feed.serve(feed_of("4.4.0", "4.4.1", "4.5.0"))
    feed.delay_s = TIMEOUT_S * 6


def _dripping(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every byte arrives within the socket timeout; the whole body never does in time.
    feed.serve(feed_of("4.4.0", "4.4.1", "4.5.0"))
    feed.drip_s = TIMEOUT_S / 5


def _html(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    feed.serve(
        b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
        content_type="text/html",
    )


def _bad_version(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    feed.serve(feed_of("4.4.0", "4.4.1", "4.5"))


def _empty(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    feed.serve([])


def _server_error(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    feed.serve({"error": "internal"}, status=500)


# How each breakage is set up, and what the run reports about it.
BREAKAGES = {
    "down": (_down, "could not be reached"),
    "slow": (_slow, f"did not answer within {TIMEOUT_S:g} s"),
    "dripping": (_dripping, f"took longer than {TIMEOUT_S:g} s"),
    "html": (_html, "not a JSON release list"),
    "bad_version": (_bad_version, "'4.5'"),
    "empty_list": (_empty, "no releases"),
    "http_500": (_server_error, "HTTP 500"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_an_unusable_feed_records_nothing_triggers_nothing_and_the_next_run_retries(
    client: Client,
    feed: FeedServer,
    store: Store,
    aws: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    breakage: str,
) -> None:
    subscribe(store, ["jsonlite"], ["x86_64", "arm64"])
    good_url = feed.url

    def broken_run() -> dict[str, Any]:
        breaks, reason = BREAKAGES[breakage]
        breaks(feed, monkeypatch)
        started = time.monotonic()
        result = scheduled(client)
        assert result["ok"] is False and reason in result["error"]
        # Bounded: the socket timeout per wait, the deadline for the whole body.
        assert time.monotonic() - started < TIMEOUT_S * 4
        point_feed_at(monkeypatch, good_url)
        return result

    # On an empty table: no baseline is recorded from garbage.
    result = broken_run()
    assert result["baseline"] == [] and result["releases"] == []
    assert release_items(store) == {}

    feed.serve(feed_of("4.4.0", "4.4.1"))
    assert scheduled(client)["baseline"] == ["4.4.0", "4.4.1"]

    # After the baseline: a broken feed (even one naming 4.5.0) starts nothing.
    result = broken_run()
    assert result["releases"] == []
    assert set(release_items(store)) == {"4.4.1"}
    assert executions(aws["state_machine_arn"]) == []

    feed.serve(feed_of("4.4.0", "4.4.1", "4.5.0"))
    result = scheduled(client)
    assert result["ok"] and [r["version"] for r in result["releases"]] == ["4.5.0"]
    assert len(executions(aws["state_machine_arn"])) == 2


class LambdaDied(Exception):
    pass


class DyingStore(Store):
    """Dies (as a Lambda hitting its timeout would) just before a release is marked seen."""

    def put_new(self, pk: str, data: Any) -> bool:
        if pk.startswith("RELEASE#") and not data.get("baseline"):
            raise LambdaDied(pk)
        return super().put_new(pk, data)


def test_a_crash_before_marking_reruns_without_starting_builds_twice(
    client: Client, feed: FeedServer, store: Store, aws: dict[str, Any]
) -> None:
    subscribe(store, ["jsonlite"], ["x86_64", "arm64"])
    subscribe(store, ["digest"], ["x86_64"])
    feed.serve(feed_of("4.4.1"))
    check(store)
    feed.serve(feed_of("4.4.1", "4.4.2"))

    with pytest.raises(LambdaDied):
        run_release_check(DyingStore(store.table_name), get_settings())
    started = {r["name"] for r in executions(aws["state_machine_arn"])}
    assert len(started) == 3
    assert "4.4.2" not in release_items(store)

    result = scheduled(client)
    [outcome] = result["releases"]
    assert outcome["version"] == "4.4.2" and outcome["outcome"] == "recorded"
    # The same builds, answered by de-duplication; nothing new started.
    assert {b["build_id"] for b in outcome["builds"]} == started
    assert not any(b["created"] for b in outcome["builds"])
    assert {r["name"] for r in executions(aws["state_machine_arn"])} == started
    assert {b["build_id"] for b in release_items(store)["4.4.2"]["builds"]} == started


def test_a_build_that_cannot_start_leaves_the_release_for_the_next_run(
    client: Client,
    feed: FeedServer,
    store: Store,
    aws: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscribe(store, ["jsonlite"], ["x86_64", "arm64"])
    feed.serve(feed_of("4.4.1"))
    check(store)
    feed.serve(feed_of("4.4.1", "4.4.2"))
    monkeypatch.setenv(
        "STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:missing"
    )
    reset_settings()
    result = scheduled(client)
    [outcome] = result["releases"]
    assert outcome["outcome"] == "retry_next_run"
    assert {f["architecture"] for f in outcome["failures"]} == {"x86_64", "arm64"}
    assert {f["error_type"] for f in outcome["failures"]} == {"InternalError"}
    assert "4.4.2" not in release_items(store)

    monkeypatch.setenv("STATE_MACHINE_ARN", aws["state_machine_arn"])
    reset_settings()
    [outcome] = scheduled(client)["releases"]
    assert outcome["outcome"] == "recorded"
    assert all(b["created"] for b in outcome["builds"])  # the failed ones are replaced
    assert len(executions(aws["state_machine_arn"])) == 2
    assert "4.4.2" in release_items(store)


RACERS = 4


class AtomicStore(Store):
    """Atomic calls, and every run held at the door of marking a release seen until all
    runs are there: the overlap is certain, not a matter of thread timing."""

    def __init__(self, table_name: str, gate: threading.Barrier) -> None:
        super().__init__(table_name)
        self._ddb = OneCallAtATime(self._ddb)
        self._gate = gate

    def put_new(self, pk: str, data: Any) -> bool:
        if pk.startswith("RELEASE#"):
            self._gate.wait()
        return super().put_new(pk, data)


def race(store: Store, feed: FeedServer) -> list[CheckResult]:
    feed.barrier = threading.Barrier(RACERS, timeout=10)
    gate = threading.Barrier(RACERS, timeout=10)

    def one(_: int) -> CheckResult:
        return run_release_check(AtomicStore(store.table_name, gate), get_settings())

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def test_overlapping_first_runs_record_one_baseline(
    feed: FeedServer, store: Store, aws: dict[str, Any]
) -> None:
    subscribe(store, ["jsonlite"], ["x86_64"])
    feed.serve(feed_of("4.3.0", "4.4.0"))
    results = race(store, feed)
    # Every run took itself for the first, and still one baseline item, nothing built.
    assert all(r.ok and r.baseline == ["4.3.0", "4.4.0"] for r in results)
    assert all(r.releases == [] for r in results)
    assert set(release_items(store)) == {"4.4.0"}
    assert executions(aws["state_machine_arn"]) == []


def test_overlapping_runs_start_each_spec_once_and_record_the_round_once(
    feed: FeedServer, store: Store, aws: dict[str, Any]
) -> None:
    subscribe(store, ["jsonlite"], ["x86_64", "arm64"])
    subscribe(store, ["digest", "R6"], ["x86_64"])
    # The same spec as the first subscription's x86_64 build: one build serves both.
    subscribe(store, ["jsonlite"], ["x86_64"])
    distinct_specs = 3
    versions = ["4.4.0"]
    feed.serve(feed_of(*versions))
    check(store)
    for round_ in range(3):
        versions.append(f"4.5.{round_}")
        feed.serve(feed_of(*versions))
        results = race(store, feed)
        assert all(r.ok for r in results)
        new = versions[-1]
        outcomes = [o for r in results for o in r.releases if o.version == new]
        assert len(outcomes) == RACERS  # every run started builds for it
        assert sorted(o.outcome for o in outcomes) == ["recorded"] + ["recorded_by_other_run"] * (
            RACERS - 1
        )
        # Every run that acted names the same build for each (subscription, architecture).
        answers = {
            (b.subscription_id, b.architecture, b.build_id) for o in outcomes for b in o.builds
        }
        assert len(answers) == 4
        build_ids = {build_id for _, _, build_id in answers}
        assert len(build_ids) == distinct_specs
        recorded = release_items(store)[new]
        assert {b["build_id"] for b in recorded["builds"]} == build_ids
        assert len(executions(aws["state_machine_arn"])) == distinct_specs * (round_ + 1)


class CheckFunction:
    """The scheduled check's function in moto, run by the Lambda bridge: POST
    /releases/check invokes it asynchronously, as in AWS. ``hold`` keeps its runs waiting
    (a check in progress) until ``let_go``."""

    def __init__(self, bridge: LambdaBridge, gate: threading.Event) -> None:
        self.bridge = bridge
        self.gate = gate

    def hold(self) -> None:
        self.gate.clear()

    def let_go(self) -> None:
        self.gate.set()

    def settle(self) -> None:
        self.let_go()
        assert self.bridge.wait_idle(30), "the check function is still running"


@pytest.fixture
def check_function(client: Client, aws: dict[str, Any]) -> Iterator[CheckFunction]:
    from app import app

    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="check", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    name = get_settings().release_check_function_name()
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("app.py", "# run by the bridge\n")
    boto3.client("lambda", region_name="us-east-1").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.check_releases",
        Code={"ZipFile": code.getvalue()},
        Timeout=60,
    )
    handler = app.handler_map["check_releases"]
    gate = threading.Event()
    gate.set()

    def held(event: Any, context: Any) -> Any:
        assert gate.wait(30), "held too long"
        return handler(event, context)

    with LambdaBridge({name: held}) as bridge:
        function = CheckFunction(bridge, gate)
        try:
            yield function
        finally:
            function.settle()


def post_check(client: Client) -> dict[str, Any]:
    resp = client.http.post("/releases/check")
    assert resp.status_code == 202, resp.body
    body: dict[str, Any] = json.loads(resp.body)
    assert resp.headers["Location"] == body["status_url"]
    return body


def check_run(client: Client, check_id: str) -> dict[str, Any]:
    resp = client.http.get(f"/releases/checks/{check_id}")
    assert resp.status_code == 200, resp.body
    body: dict[str, Any] = json.loads(resp.body)
    assert body["check_id"] == check_id
    assert body["status_url"].endswith(f"/releases/checks/{check_id}")
    return body


def check_items(store: Store) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    items = ddb.scan(TableName=store.table_name)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("RELCHECK")]


def test_post_releases_check_answers_202_and_the_check_runs_in_its_function(
    client: Client,
    feed: FeedServer,
    store: Store,
    aws: dict[str, Any],
    check_function: CheckFunction,
) -> None:
    subscribe(store, [], ["arm64"])
    feed.serve(feed_of("4.4.0"))
    check_function.hold()
    accepted = post_check(client)
    assert re.fullmatch(r"chk-[0-9a-f]{12}", accepted["check_id"])
    assert accepted["state"] == "RUNNING" and accepted["duplicate_of_request"] is False
    # Answered before the check ran: nothing is recorded yet.
    assert check_run(client, accepted["check_id"])["state"] == "RUNNING"
    assert release_items(store) == {}
    check_function.settle()

    first = check_run(client, accepted["check_id"])
    assert first["state"] == "SUCCEEDED" and first["error"] is None
    assert first["finished_at"] >= first["requested_at"]
    result = CheckResult.model_validate(first["result"])
    assert result.ok and result.baseline == ["4.4.0"] and result.releases == []

    # The next release: the result the synchronous answer used to carry, now recorded.
    feed.serve(feed_of("4.4.0", "4.4.1"))
    second = post_check(client)
    assert second["check_id"] != accepted["check_id"]
    check_function.settle()
    result = CheckResult.model_validate(check_run(client, second["check_id"])["result"])
    assert [(r.version, r.outcome) for r in result.releases] == [("4.4.1", "recorded")]
    [build] = result.releases[0].builds
    assert [r["name"] for r in executions(aws["state_machine_arn"])] == [build.build_id]
    assert store.get_build(build.build_id).source == "schedule"
    # The schedule's own path is untouched: it finds nothing new now.
    assert scheduled(client)["releases"] == []


def test_a_failing_check_ends_failed_with_the_reason_and_frees_the_next(
    client: Client, feed: FeedServer, store: Store, check_function: CheckFunction
) -> None:
    feed.serve(b"<html>maintenance</html>", content_type="text/html")
    failed = post_check(client)
    check_function.settle()
    run = check_run(client, failed["check_id"])
    assert run["state"] == "FAILED" and run["result"] is None
    assert run["error_type"] == "FeedError" and "not a JSON release list" in run["error"]
    assert release_items(store) == {}

    feed.serve(feed_of("4.4.0"))
    again = post_check(client)
    assert again["check_id"] != failed["check_id"] and not again["duplicate_of_request"]
    check_function.settle()
    assert check_run(client, again["check_id"])["state"] == "SUCCEEDED"


def test_an_aws_failure_inside_the_check_ends_failed_and_names_only_its_class(
    client: Client, feed: FeedServer, store: Store, check_function: CheckFunction
) -> None:
    feed.serve(feed_of("4.4.0"))
    check_function.hold()
    accepted = post_check(client)
    # The check reads the releases seen with a Query; the run's own writes still work.
    with aws_fault("dynamodb", "AccessDeniedException", 400, operation="Query") as injected:
        check_function.settle()
    assert injected.calls
    run = check_run(client, accepted["check_id"])
    assert run["state"] == "FAILED" and run["error_type"] == "InternalError"
    assert "AccessDenied" not in run["error"]
    assert post_check(client)["check_id"] != accepted["check_id"]


def test_a_post_while_a_check_runs_is_answered_with_that_check(
    client: Client, feed: FeedServer, store: Store, check_function: CheckFunction
) -> None:
    feed.serve(feed_of("4.4.0"))
    check_function.hold()
    running = post_check(client)
    again = post_check(client)
    assert again["check_id"] == running["check_id"]
    assert again["duplicate_of_request"] is True and again["state"] == "RUNNING"
    check_function.settle()
    assert len(check_function.bridge.calls) == 1  # one check ran
    assert check_run(client, running["check_id"])["state"] == "SUCCEEDED"
    assert post_check(client)["check_id"] != running["check_id"]


def test_racing_requests_start_one_check(
    feed: FeedServer, store: Store, check_function: CheckFunction
) -> None:
    feed.serve(feed_of("4.4.0"))
    check_function.hold()

    def one(_: int) -> tuple[str, bool]:
        run, started = request_check(
            atomic_store(store.table_name), get_settings(), requested_by="test"
        )
        return run.check_id, started

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        answers = list(pool.map(one, range(RACERS)))
    assert len({check_id for check_id, _ in answers}) == 1
    assert sorted(started for _, started in answers) == [False] * (RACERS - 1) + [True]
    check_function.settle()
    assert len(check_function.bridge.calls) == 1
    assert len([i for i in check_items(store) if "chk-" in i["pk"]["S"]]) == 1


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        (("TooManyRequestsException", 429), 503, "TransientError"),
        (("AccessDeniedException", 403), 500, "InternalError"),
    ],
    ids=["throttled", "denied"],
)
def test_an_invoke_that_cannot_be_queued_leaves_a_failed_record_and_no_lock(
    client: Client,
    feed: FeedServer,
    store: Store,
    check_function: CheckFunction,
    fault: tuple[str, int],
    status: int,
    error: str,
) -> None:
    feed.serve(feed_of("4.4.0"))
    with aws_fault("lambda", *fault, operation="Invoke") as injected:
        resp = client.http.post("/releases/check")
    assert injected.calls == ["Invoke"]
    assert resp.status_code == status and json.loads(resp.body)["error"] == error
    # The run says why it never started, and nothing holds the check.
    [item] = check_items(store)
    run = check_run(client, item["check_id"]["S"])
    assert run["state"] == "FAILED" and run["error_type"] == error
    assert run["error"].startswith("the check function could not be invoked")
    assert check_function.bridge.calls == []
    # Nothing holds the check: the next request starts one.
    accepted = post_check(client)
    check_function.settle()
    assert check_run(client, accepted["check_id"])["state"] == "SUCCEEDED"


def test_without_the_function_the_request_fails_and_nothing_stays_running(
    client: Client, feed: FeedServer, store: Store
) -> None:
    feed.serve(feed_of("4.4.0"))
    resp = client.http.post("/releases/check")
    assert resp.status_code == 500 and json.loads(resp.body)["error"] == "InternalError"
    [item] = check_items(store)
    assert item["state"]["S"] == "FAILED" and item["error_type"]["S"] == "InternalError"
    # The cause (no such function) is in the log only: the record is read over HTTP.
    assert item["error"]["S"] == (
        "the check function could not be invoked: InternalError on our side; the log has the cause"
    )


def test_a_check_that_never_ran_fails_at_its_deadline_and_a_late_run_does_nothing(
    client: Client,
    feed: FeedServer,
    store: Store,
    check_function: CheckFunction,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed.serve(feed_of("4.4.0"))
    monkeypatch.setenv("RELEASE_CHECK_DEADLINE_S", "1")
    reset_settings()
    check_function.hold()
    lost = post_check(client)
    time.sleep(1.2)
    run = check_run(client, lost["check_id"])
    assert run["state"] == "FAILED" and run["error_type"] == "CheckTimedOut"
    assert "deadline" in run["error"]

    monkeypatch.setenv("RELEASE_CHECK_DEADLINE_S", "60")
    reset_settings()
    # The lock the lost run held is taken over.
    fresh = post_check(client)
    assert fresh["check_id"] != lost["check_id"] and not fresh["duplicate_of_request"]
    check_function.settle()
    # The late event of the lost run found it over and did nothing; the fresh one ran.
    assert check_run(client, lost["check_id"])["state"] == "FAILED"
    fresh_run = check_run(client, fresh["check_id"])
    assert fresh_run["state"] == "SUCCEEDED"
    assert fresh_run["result"]["baseline"] == ["4.4.0"]


def test_an_unknown_or_malformed_check_id(client: Client, store: Store) -> None:
    missing = client.http.get("/releases/checks/chk-000000000000")
    assert missing.status_code == 404 and json.loads(missing.body)["field"] == "check_id"
    bad = client.http.get("/releases/checks/not-a-check")
    assert bad.status_code == 400 and json.loads(bad.body)["field"] == "check_id"


def test_get_releases_paginates_newest_first(
    client: Client, feed: FeedServer, store: Store
) -> None:
    versions = ["4.0.0"]
    feed.serve(feed_of(*versions))
    check(store)
    for patch in range(1, 4):
        versions.append(f"4.0.{patch}")
        feed.serve(feed_of(*versions))
        check(store)
    seen: list[str] = []
    token = None
    while True:
        page = json.loads(
            client.http.get("/releases?limit=2" + (f"&next={token}" if token else "")).body
        )
        seen += [r["version"] for r in page["releases"]]
        token = page["next"]
        if not token:
            break
    assert seen == ["4.0.3", "4.0.2", "4.0.1", "4.0.0"]
    bad = client.http.get("/releases?limit=500")
    assert bad.status_code == 400 and json.loads(bad.body)["field"] == "limit"


def test_the_schedule_runs_at_the_configured_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalice.app import Rate, ScheduledEventConfig

    from app import app
    from chalicelib.releases import schedule_rate_hours

    [schedule] = [s for s in app.event_sources if s.name == "check_releases"]
    assert isinstance(schedule, ScheduledEventConfig)
    assert isinstance(schedule.schedule_expression, Rate)
    assert schedule.schedule_expression.to_string() == "rate(6 hours)"
    monkeypatch.setenv("RELEASES_SCHEDULE_HOURS", "1")
    reset_settings()
    assert Rate(schedule_rate_hours(), unit=Rate.HOURS).to_string() == "rate(1 hour)"


def test_a_file_url_feeds_the_check_offline(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Where the r-hub API cannot be reached (the one-machine stack), a file can stand in.
    path = tmp_path / "r-versions.json"
    path.write_text(json.dumps(feed_of("4.4.0", "4.4.1")))
    point_feed_at(monkeypatch, path.as_uri())
    assert check(store).baseline == ["4.4.0", "4.4.1"]
    point_feed_at(monkeypatch, "ftp://example.org/r-versions")
    result = check(store)
    assert result.ok is False and result.error is not None and "ftp://" in result.error
