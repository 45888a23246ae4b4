"""POST/GET /builds and GET /layers through the Chalice test client, on moto."""

from __future__ import annotations

import base64
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.aws.store import Store
from chalicelib.models import BuildRequest, BuildStatus
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.submit import submit_build
from tests.functional.conftest import atomic_store, mark_succeeded

HEADERS = {"Content-Type": "application/json"}


def post(client: Client, body: Any) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, str) else json.dumps(body)
    resp = client.http.post("/builds", headers=HEADERS, body=raw)
    return resp.status_code, json.loads(resp.body)


def executions(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return sfn.list_executions(stateMachineArn=arn)["executions"]  # type: ignore[no-any-return]


def test_post_starts_one_execution_named_after_the_build(
    client: Client, aws: dict[str, Any], store: Store
) -> None:
    status, body = post(client, {"r_version": "4.4.1", "packages": ["jsonlite", "data.table"]})
    assert status == 202
    assert body["status"] == "QUEUED"
    assert body["status_url"].endswith(f"/builds/{body['build_id']}")
    runs = executions(aws["state_machine_arn"])
    assert [r["name"] for r in runs] == [body["build_id"]]
    assert body["execution_arn"] == runs[0]["executionArn"]
    record = store.get_build(body["build_id"])
    assert record.spec.architecture.value == "x86_64"
    assert [p.name for p in record.spec.packages] == ["data.table", "jsonlite"]
    assert record.execution_arn == runs[0]["executionArn"]
    assert "QUEUED" in record.steps


def test_same_spec_in_any_order_answers_the_existing_build(
    client: Client, aws: dict[str, Any]
) -> None:
    _, first = post(client, {"r_version": "4.4.1", "packages": ["jsonlite", "digest"]})
    status, again = post(
        client, {"r_version": "4.4.1", "packages": ["digest", "jsonlite"], "architecture": "x86_64"}
    )
    assert status == 200
    assert again["build_id"] == first["build_id"]
    assert len(executions(aws["state_machine_arn"])) == 1


def test_force_and_other_architecture_start_new_builds(client: Client, aws: dict[str, Any]) -> None:
    _, first = post(client, {"r_version": "4.4.1", "packages": ["jsonlite"]})
    status, forced = post(client, {"r_version": "4.4.1", "packages": ["jsonlite"], "force": True})
    assert status == 202 and forced["build_id"] != first["build_id"]
    status, arm = post(
        client, {"r_version": "4.4.1", "packages": ["jsonlite"], "architecture": "arm64"}
    )
    assert status == 202 and arm["build_id"] not in (first["build_id"], forced["build_id"])
    assert len(executions(aws["state_machine_arn"])) == 3
    # The newest build of the spec is the one a plain request now answers with.
    status, plain = post(client, {"r_version": "4.4.1", "packages": ["jsonlite"]})
    assert status == 200 and plain["build_id"] == forced["build_id"]


def test_a_failed_build_does_not_block_a_new_request(client: Client, store: Store) -> None:
    _, first = post(client, {"r_version": "4.3.0", "packages": ["digest"]})
    store.transition(first["build_id"], BuildStatus.FAILED)
    status, second = post(client, {"r_version": "4.3.0", "packages": ["digest"]})
    assert status == 202
    assert second["build_id"] != first["build_id"]


def test_racing_identical_requests_start_exactly_one_execution(
    aws: dict[str, Any], store: Store
) -> None:
    request = BuildRequest(r_version="4.4.1", packages=["jsonlite", "digest", "R6"])
    settings = get_settings()

    def one(_: int) -> tuple[str, bool]:
        record, created = submit_build(
            request, store=atomic_store(store.table_name), settings=settings
        )
        return record.build_id, created

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(48)))
    assert len({build_id for build_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(executions(aws["state_machine_arn"])) == 1


BAD_BODIES = [
    ({"r_version": "4.4.1", "colour": "red"}, "colour"),
    ({"r_version": 441}, "r_version"),
    ({"r_version": "4.4.1", "packages": "jsonlite"}, "packages"),
    ({"r_version": "4.4.1", "force": "yes"}, "force"),
    ({"r_version": "4.4"}, "r_version"),
    ({"r_version": "latest"}, "r_version"),
    ({"r_version": "3.6.3"}, "r_version"),
    ({"packages": ["jsonlite"]}, "r_version"),
    ({"r_version": "4.4.1", "packages": ["jsonlite; rm -rf /"]}, "packages"),
    ({"r_version": "4.4.1", "packages": ["$(curl http://x)"]}, "packages"),
    ({"r_version": "4.4.1", "packages": ["a"]}, "packages"),
    ({"r_version": "4.4.1", "packages": ["jsonlite."]}, "packages"),
    ({"r_version": "4.4.1", "packages": ["jsonlite==1.0; ls"]}, "packages"),
    ({"r_version": "4.4.1", "packages": ["jsonlite", "jsonlite==1.8.7"]}, "packages"),
    ({"r_version": "4.4.1", "packages": [f"pkg{i}" for i in range(201)]}, "packages"),
    ({"r_version": "4.4.1", "architecture": "sparc"}, "architecture"),
    ({"r_version": "4.4.1", "layer_name": "my layer!"}, "layer_name"),
    ({"r_version": "4.4.1", "layer_name": "x" * 139}, "layer_name"),
    ({"r_version": "4.4.1", "description": "d" * 257}, "description"),
    ([], "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_input_gets_400_naming_the_field(
    client: Client, aws: dict[str, Any], body: Any, field: str
) -> None:
    status, answer = post(client, body)
    assert status == 400, answer
    assert answer["field"].split(".")[0] == field, answer
    assert field in answer["message"] or field == "body"
    assert executions(aws["state_machine_arn"]) == []


@pytest.mark.parametrize("raw", ["{not json", "", '{"r_version": "4.4.1",}'])
def test_malformed_json_gets_400(client: Client, raw: str) -> None:
    status, answer = post(client, raw)
    assert status == 400
    assert answer["field"] == "body"


def test_get_build_returns_the_whole_record(client: Client, store: Store) -> None:
    _, body = post(client, {"r_version": "4.4.1", "packages": ["jsonlite"]})
    resp = client.http.get(f"/builds/{body['build_id']}")
    assert resp.status_code == 200
    record = json.loads(resp.body)
    for key in ("spec", "status", "steps", "layers", "canary", "error", "created_at"):
        assert key in record
    assert record["spec"]["packages"] == [{"name": "jsonlite", "version": None}]


def test_unknown_build_is_404(client: Client) -> None:
    resp = client.http.get("/builds/20250101T000000-deadbeef")
    assert resp.status_code == 404
    assert json.loads(resp.body)["error"] == "NotFoundError"


def test_list_is_newest_first_and_paginates_with_an_opaque_token(
    client: Client, store: Store
) -> None:
    ids = [post(client, {"r_version": f"4.{i}.0"})[1]["build_id"] for i in range(5)]
    store.transition(ids[1], BuildStatus.FAILED)
    seen: list[str] = []
    token = None
    while True:
        url = "/builds?limit=2" + (f"&next={token}" if token else "")
        page = json.loads(client.http.get(url).body)
        assert len(page["builds"]) <= 2
        seen += [b["build_id"] for b in page["builds"]]
        token = page["next"]
        if not token:
            break
    assert seen == list(reversed(ids))
    failed = json.loads(client.http.get("/builds?status=FAILED").body)
    assert [b["build_id"] for b in failed["builds"]] == [ids[1]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("status=DONE", "status"),
        ("next=%21%21", "next"),
        # Decodes, but is no key of the index: made up, not from this API.
        ("next=" + base64.urlsafe_b64encode(b'{"pk": "x"}').decode(), "next"),
        ("next=" + base64.urlsafe_b64encode(b'{"pk": {"a": 1}}').decode(), "next"),
        ("next=" + "A" * 2049, "next"),
        ("sort=asc", "sort"),
    ],
)
def test_bad_list_queries_get_400(client: Client, query: str, field: str) -> None:
    resp = client.http.get(f"/builds?{query}")
    assert resp.status_code == 400
    assert json.loads(resp.body)["field"] == field


def test_layers_catalog_lists_only_proven_layers(client: Client, store: Store) -> None:
    _, good = post(client, {"r_version": "4.4.1", "packages": ["jsonlite"]})
    _, arm = post(client, {"r_version": "4.4.1", "architecture": "arm64"})
    post(client, {"r_version": "4.3.2"})  # still queued: not in the catalog
    mark_succeeded(store, good["build_id"], "arn:aws:lambda:us-east-1:123456789012:layer:a:1")
    mark_succeeded(store, arm["build_id"], "arn:aws:lambda:us-east-1:123456789012:layer:b:1")
    catalog = json.loads(client.http.get("/layers?r_version=4.4.1&architecture=x86_64").body)
    assert [entry["build_id"] for entry in catalog["layers"]] == [good["build_id"]]
    assert catalog["layers"][0]["layer_arns"] == ["arn:aws:lambda:us-east-1:123456789012:layer:a:1"]
    assert catalog["layers"][0]["packages"] == {"jsonlite": "1.8.9"}
    everything = json.loads(client.http.get("/layers").body)
    assert len(everything["layers"]) == 2
    bad = client.http.get("/layers?r_version=4")
    assert bad.status_code == 400 and json.loads(bad.body)["field"] == "r_version"


def test_failed_start_leaves_a_final_record(
    client: Client, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:missing"
    )
    get_settings.cache_clear()
    status, answer = post(client, {"r_version": "4.4.1"})
    # A 500 that names no internals; the record keeps the reason for whoever looks.
    assert status == 500 and answer["error"] == "InternalError"
    assert set(answer) == {"error", "message", "request_id"}
    assert "StateMachine" not in answer["message"]
    records, _ = store.list_builds(status=BuildStatus.FAILED, limit=10, token=None)
    assert len(records) == 1
    assert records[0].error is not None and records[0].error.step == "StartExecution"
    assert "StateMachineDoesNotExist" in records[0].error.message


def test_log_lines_of_a_build_carry_its_id(client: Client) -> None:
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    sink = io.StringIO()
    previous = handler.setStream(sink)
    try:
        _, body = post(client, {"r_version": "4.4.1", "packages": ["digest"]})
    finally:
        handler.setStream(previous)
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    queued = [line for line in lines if line.get("message") == "build queued"]
    assert queued and queued[0]["build_id"] == body["build_id"]


def _table_items(aws: dict[str, Any]) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    return ddb.scan(TableName=get_settings().table_name)["Items"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "status", "field", "phrase"),
    [
        ({"r_version": "4.4.1", "packages": ["a" * 10_000]}, 400, "packages", "at most 98"),
        (
            {"r_version": "4.4.1", "packages": ["jsonlite==1.1." + "1" * 10_000]},
            400,
            "packages",
            "at most 98",
        ),
        ({"r_version": "4.4.1", "packages": ["a" * 100_000]}, 413, "body", "100,0"),
        (
            {"r_version": "4.4.1", "packages": [f"p{i}" + "x" * 5_000 for i in range(200)]},
            413,
            "body",
            "at most 65,536",
        ),
        ({"r_version": "4.4.1", "packages": ["a" * 1_000_000]}, 413, "body", "1,000,0"),
        ({"r_version": "4" * 1_000, "packages": []}, 400, "r_version", "at most 16"),
        ({"r_version": "4.4.1", "packages": [f"p{i}" for i in range(201)]}, 400, "packages", ""),
        ({"r_version": "4.4.1", "layer_name": "n" * 139}, 400, "layer_name", ""),
        ({"r_version": "4.4.1", "description": "d" * 257}, 400, "description", ""),
    ],
    ids=[
        "name-10k",
        "pin-10k",
        "name-100k",
        "200x5000",
        "name-1M",
        "r_version-1k",
        "201-packages",
        "layer-name-139",
        "description-257",
    ],
)
def test_oversized_input_is_refused_naming_the_field_and_leaves_nothing(
    client: Client, aws: dict[str, Any], body: dict[str, Any], status: int, field: str, phrase: str
) -> None:
    got, answer = post(client, body)
    assert got == status, answer
    assert answer["field"] == field
    assert phrase in answer["message"]
    assert set(answer) == {"error", "message", "field"}
    # Nothing written, nothing started.
    assert _table_items(aws) == []
    assert executions(aws["state_machine_arn"]) == []


def test_disabled_metrics_never_reach_stdout(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Powertools prints a metric set once it holds 100 values, disabled or not; the
    # middleware clears it after every event, so 101 builds print nothing.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("MAX_BUILDS_PER_CALLER", "0")
    get_settings.cache_clear()
    for i in range(101):
        status, body = post(client, {"r_version": f"4.{i // 10}.{i % 10}"})
        assert status == 202, (i, body)
    assert "CloudWatchMetrics" not in capsys.readouterr().out


def test_a_stack_that_lists_its_r_versions_refuses_others_at_the_request(
    client: Client, aws: dict[str, Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R_VERSIONS", "4.2.2,4.5.0,4.6.1")
    get_settings.cache_clear()
    status, answer = post(client, {"r_version": "4.4.1", "packages": ["digest"]})
    assert status == 400 and answer["field"] == "r_version"
    assert "4.2.2, 4.5.0, 4.6.1" in answer["message"] and "4.4.1" in answer["message"]
    assert store.list_builds(status=None, limit=10, token=None)[0] == []
    assert executions(aws["state_machine_arn"]) == []
    assert post(client, {"r_version": "4.5.0", "packages": ["digest"]})[0] == 202


def test_an_r_the_stack_cannot_build_is_refused_with_the_reason(
    client: Client, aws: dict[str, Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    why = "R 4.6.1 needs gcc >= 12 (C23); the build root (Debian 11) has gcc 10.2"
    monkeypatch.setenv("R_VERSIONS", "4.2.2,4.5.0")
    monkeypatch.setenv("R_VERSIONS_REFUSED", json.dumps({"4.6.1": why}))
    get_settings.cache_clear()
    status, answer = post(client, {"r_version": "4.6.1", "packages": ["digest"]})
    assert status == 400 and answer["field"] == "r_version"
    assert answer["message"] == f"r_version: {why}"
    assert store.list_builds(status=None, limit=10, token=None)[0] == []
    assert executions(aws["state_machine_arn"]) == []
