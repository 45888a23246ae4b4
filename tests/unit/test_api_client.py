"""The CLI's API client, SigV4 signing and progress rendering, over fake transports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.session import Session
from rich.console import Console

from chalicelib import errors
from chalicelib.models import BuildRecord, BuildRequest, BuildSpec, BuildStatus, ErrorInfo
from rlayer.client import ApiClient, HttpRequest, HttpResponse
from rlayer.client.progress import follow, log_tail
from rlayer.client.render import progress_view, summary
from rlayer.client.sigv4 import region_for, signing_transport
from rlayer.client.transport import is_local

API = "https://abc123.execute-api.eu-west-1.amazonaws.com/api"


class FakeApi:
    """Answers each request with the next canned (status, body); records the requests."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        status, body = self.answers.pop(0)
        if isinstance(body, Exception):
            raise body
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return HttpResponse(status, {"Content-Type": "application/json"}, raw)


def record(status: BuildStatus = BuildStatus.QUEUED, **fields: Any) -> BuildRecord:
    spec = BuildSpec(r_version="4.2.2", packages=["jsonlite", "digest"])  # type: ignore[arg-type]
    rec = BuildRecord(
        build_id="20260101T000000-0000abcd",
        spec_hash=spec.spec_hash,
        spec=spec,
        created_at="2026-01-01T00:00:00.000000Z",
    )
    steps = dict(rec.steps)
    order = [s for s in BuildStatus if s is not BuildStatus.FAILED]
    if status is BuildStatus.FAILED:
        order = [BuildStatus.QUEUED, BuildStatus.BUILDING, BuildStatus.FAILED]
    for i, step in enumerate(order[: order.index(status) + 1]):
        steps[step.value] = f"2026-01-01T00:0{i}:00.000000Z"
    return rec.model_copy(update={"status": status, "steps": steps, **fields})


def test_create_build_posts_the_request_and_tells_a_duplicate_apart() -> None:
    body = {"build_id": "b1", "status": "QUEUED", "status_url": f"{API}/builds/b1"}
    fake = FakeApi((202, body), (200, {**body, "status": "SUCCEEDED"}))
    client = ApiClient(API, transport=fake)
    first = client.create_build(BuildRequest(r_version="4.2.2", packages=["digest"]))
    again = client.create_build(BuildRequest(r_version="4.2.2", packages=["digest"]))
    assert (first.created, again.created, again.status) == (True, False, BuildStatus.SUCCEEDED)
    sent = fake.requests[0]
    assert (sent.method, sent.url) == ("POST", f"{API}/builds")
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body or b"") == {
        "r_version": "4.2.2",
        "packages": ["digest"],
        "architecture": "x86_64",
        "force": False,
    }


def test_errors_come_back_as_the_class_the_api_named() -> None:
    fake = FakeApi(
        (404, {"error": "NotFoundError", "message": "no build with id 'x'", "field": "build_id"}),
        (409, {"error": "TransitionRejectedError", "message": "late"}),
        (403, {"message": "User is not authorized to access this resource"}),
        (502, b"<html>Bad Gateway</html>"),
        (0, errors.UpstreamError("cannot reach")),
    )
    client = ApiClient(API, transport=fake)
    with pytest.raises(errors.NotFoundError) as nf:
        client.get_build("x")
    assert (nf.value.message, nf.value.field) == ("no build with id 'x'", "build_id")
    with pytest.raises(errors.TransitionRejectedError):
        client.get_build("x")
    with pytest.raises(errors.ForbiddenError, match="not authorized"):
        client.list_builds()
    with pytest.raises(errors.UpstreamError, match="not a JSON object: '<html>Bad Gateway"):
        client.layers()
    with pytest.raises(errors.UpstreamError, match="cannot reach"):
        client.layers()


def test_list_and_layers_pass_their_filters_as_query_parameters() -> None:
    fake = FakeApi((200, {"builds": [], "next": None}), (200, {"layers": []}))
    client = ApiClient(API, transport=fake)
    client.list_builds(status=BuildStatus.FAILED, limit=5, next_token="tok")
    client.layers(r_version="4.2.2")
    assert fake.requests[0].url == f"{API}/builds?limit=5&status=FAILED&next=tok"
    assert fake.requests[1].url == f"{API}/layers?r_version=4.2.2"


def test_not_an_api_url_is_rejected() -> None:
    with pytest.raises(errors.RequestInvalidError, match="not an http"):
        ApiClient("127.0.0.1:8000")


def test_local_urls_are_not_signed_and_aws_ones_name_their_region() -> None:
    assert is_local("http://127.0.0.1:8000") and is_local("http://localhost:8000/")
    assert is_local("http://[::1]:8000")
    assert not is_local(API) and not is_local("https://rlayer.example.com")
    assert region_for(API) == "eu-west-1"
    assert region_for("https://x.execute-api.cn-north-1.amazonaws.com.cn/api") == "cn-north-1"


def test_signing_adds_a_sigv4_authorization_for_execute_api() -> None:
    session = Session()
    session.set_credentials("AKIDEXAMPLE", "secret", "session-token")
    fake = FakeApi((200, {"layers": []}))
    client = ApiClient(API, transport=signing_transport(fake, API, session=session))
    client.layers()
    headers = {k.lower(): v for k, v in fake.requests[0].headers.items()}
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in auth
    assert "SignedHeaders=" in auth and "Signature=" in auth
    assert headers["x-amz-security-token"] == "session-token"
    assert len(headers["x-amz-date"]) == 16


def test_signing_without_credentials_says_how_to_configure_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fake = FakeApi()
    client = ApiClient(API, transport=signing_transport(fake, API, session=Session()))
    with pytest.raises(errors.ConfigurationError, match="no AWS credentials were found"):
        client.layers()
    assert fake.requests == []


def test_follow_polls_until_final_and_rides_out_a_few_failed_polls() -> None:
    final = record(BuildStatus.SUCCEEDED)
    fake = FakeApi(
        (200, record(BuildStatus.QUEUED).model_dump(mode="json")),
        (0, errors.UpstreamError("connection reset")),
        (200, record(BuildStatus.BUILDING).model_dump(mode="json")),
        (200, final.model_dump(mode="json")),
    )
    sleeps: list[float] = []
    out = Console(record=True, width=120)
    got = follow(
        ApiClient(API, transport=fake),
        final.build_id,
        console=out,
        interval=2.5,
        sleep=sleeps.append,
    )
    assert got.status is BuildStatus.SUCCEEDED
    assert sleeps == [2.5, 2.5, 2.5]
    text = out.export_text()
    # Steps passed between two polls are shown too, each at the time it began.
    assert text.splitlines() == [
        "[      0s] QUEUED",
        "[  1m 00s] BUILDING",
        "[  2m 00s] VALIDATING",
        "[  3m 00s] PUBLISHING",
        "[  4m 00s] TESTING",
        "[  5m 00s] SUCCEEDED",
    ]


def test_follow_gives_up_after_the_timeout() -> None:
    def answers() -> Iterator[tuple[int, Any]]:
        while True:
            yield 200, record(BuildStatus.BUILDING).model_dump(mode="json")

    it = answers()

    def transport(request: HttpRequest) -> HttpResponse:
        status, body = next(it)
        return HttpResponse(status, {}, json.dumps(body).encode())

    with pytest.raises(TimeoutError, match="still BUILDING"):
        follow(
            ApiClient(API, transport=transport),
            "b",
            console=Console(record=True),
            timeout=0,
            sleep=lambda s: None,
        )


def test_log_tail_reads_a_local_log_file_or_the_record(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "make: done\r\n\n")
    assert log_tail({"log_url": log.as_uri()}, 3) == ["line 98", "line 99", "make: done"]
    assert log_tail({"log_url": str(log)}, 1) == ["make: done"]
    assert log_tail({"log_url": "https://console.aws.amazon.com/x", "log_tail": ["a", "b"]}) == [
        "a",
        "b",
    ]
    assert log_tail({"log_url": (tmp_path / "gone.log").as_uri()}) == []


def test_progress_view_shows_every_step_and_the_log() -> None:
    out = Console(record=True, width=120)
    rec = record(BuildStatus.BUILDING)
    out.print(progress_view(rec, ["gcc -O2 -c digest.c", "installing to /opt/R"]))
    text = out.export_text()
    for step in ("QUEUED", "BUILDING", "VALIDATING", "PUBLISHING", "TESTING"):
        assert step in text
    assert "R 4.2.2 x86_64 · digest jsonlite" in text
    assert "gcc -O2 -c digest.c" in text and "build log" in text


def test_summary_of_a_failure_names_the_step_and_keeps_the_message_lines() -> None:
    error = ErrorInfo(
        step="CheckBuild",
        error_type="BuildFailedError",
        message="the build failed\nERROR: package 'nosuchpkg' is not available",
    )
    lines = [text for text, _ in summary(record(BuildStatus.FAILED, error=error))]
    assert lines[0] == "build 20260101T000000-0000abcd FAILED in 2m 00s"
    assert "failed at CheckBuild: BuildFailedError" in lines
    assert "  ERROR: package 'nosuchpkg' is not available" in lines


def test_step_times_parse_in_the_apps_format_and_step_functions_one() -> None:
    from rlayer.client.render import parse_time

    ours = parse_time("2026-11-22T22:40:48.822895Z")
    sfn = parse_time("2026-11-22T22:40:48.822895+00:00")
    assert ours == sfn and ours.utcoffset() is not None


def test_the_last_frame_of_a_failed_build_marks_the_step_it_failed_in() -> None:
    out = Console(record=True, width=120)
    out.print(progress_view(record(BuildStatus.FAILED), []))
    lines = [line.split() for line in out.export_text().splitlines()[1:]]
    assert lines[:3] == [
        ["✓", "QUEUED", "1m", "00s"],
        ["✗", "BUILDING", "1m", "00s"],
        ["VALIDATING"],
    ]
    assert lines[-1] == ["FAILED"]


def test_a_busy_api_a_limit_and_a_failure_on_its_side_read_plainly() -> None:
    fake = FakeApi(
        (429, {"error": "TooManyBuildsError", "message": "you have 5 builds in flight"}),
        (503, {"error": "TransientError", "message": "the service is busy", "request_id": "r-1"}),
        (500, {"error": "InternalError", "message": "failed on our side", "request_id": "r-2"}),
    )
    client = ApiClient(API, transport=fake)
    with pytest.raises(errors.TooManyBuildsError, match="5 builds in flight"):
        client.create_build(BuildRequest(r_version="4.2.2"))
    with pytest.raises(errors.TransientError, match=r"busy \(request id r-1\)"):
        client.list_builds()
    with pytest.raises(errors.InternalError, match=r"our side \(request id r-2\)"):
        client.layers()
