"""POST/GET/DELETE /subscriptions through the Chalice test client, on moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.aws.store import Store

HEADERS = {"Content-Type": "application/json"}


def post(client: Client, body: Any) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, str) else json.dumps(body)
    resp = client.http.post("/subscriptions", headers=HEADERS, body=raw)
    return resp.status_code, json.loads(resp.body)


def test_create_normalises_and_stores_the_subscription(client: Client, store: Store) -> None:
    status, sub = post(
        client,
        {
            "packages": ["jsonlite", "data.table==1.15.4"],
            "architectures": ["arm64", "x86_64"],
            "notify": {"channel_id": "C0123ABCD"},
            "description": "team analytics",
        },
    )
    assert status == 201, sub
    assert sub["subscription_id"].startswith("sub-")
    # Same normal form as a build spec: sorted, pins kept.
    assert sub["packages"] == ["data.table==1.15.4", "jsonlite"]
    assert sub["architectures"] == ["arm64", "x86_64"]
    assert sub["notify"] == {"channel_id": "C0123ABCD", "team_id": None}
    item = store.get_item(f"SUB#{sub['subscription_id']}")
    assert item is not None and item["kind"] == "SUB"
    fetched = client.http.get(f"/subscriptions/{sub['subscription_id']}")
    assert fetched.status_code == 200 and json.loads(fetched.body) == sub


def test_defaults_are_x86_64_no_packages_no_notification(client: Client) -> None:
    status, sub = post(client, {})
    assert status == 201
    assert sub["architectures"] == ["x86_64"]
    assert sub["packages"] == [] and sub["notify"] is None


def test_list_is_newest_first_and_paginates(client: Client) -> None:
    ids = [post(client, {"packages": [f"pkg{i}"]})[1]["subscription_id"] for i in range(5)]
    seen: list[str] = []
    token = None
    while True:
        url = "/subscriptions?limit=2" + (f"&next={token}" if token else "")
        page = json.loads(client.http.get(url).body)
        assert len(page["subscriptions"]) <= 2
        seen += [s["subscription_id"] for s in page["subscriptions"]]
        token = page["next"]
        if not token:
            break
    assert seen == list(reversed(ids))


def test_delete_removes_it_and_a_second_delete_is_404(client: Client, store: Store) -> None:
    _, sub = post(client, {"packages": ["digest"]})
    keep = post(client, {"packages": ["R6"]})[1]
    resp = client.http.delete(f"/subscriptions/{sub['subscription_id']}")
    assert resp.status_code == 204
    assert store.get_item(f"SUB#{sub['subscription_id']}") is None
    again = client.http.delete(f"/subscriptions/{sub['subscription_id']}")
    assert again.status_code == 404
    assert json.loads(again.body)["error"] == "NotFoundError"
    listed = json.loads(client.http.get("/subscriptions").body)["subscriptions"]
    assert [s["subscription_id"] for s in listed] == [keep["subscription_id"]]


@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_ids_are_404(client: Client, method: str) -> None:
    resp = getattr(client.http, method)("/subscriptions/sub-000000000000")
    assert resp.status_code == 404
    assert json.loads(resp.body)["field"] == "subscription_id"


BAD_BODIES = [
    ({"packages": ["jsonlite; rm -rf /"]}, "packages"),
    ({"packages": ["a"]}, "packages"),
    ({"packages": ["jsonlite", "jsonlite==1.8.7"]}, "packages"),
    ({"packages": "jsonlite"}, "packages"),
    ({"packages": [f"pkg{i}" for i in range(201)]}, "packages"),
    ({"architectures": ["sparc"]}, "architectures"),
    ({"architectures": []}, "architectures"),
    ({"architectures": ["arm64", "arm64"]}, "architectures"),
    ({"architectures": "arm64"}, "architectures"),
    ({"notify": {"channel_id": "#general"}}, "notify"),
    ({"notify": {"channel_id": "C0123ABCD", "webhook": "http://x"}}, "notify"),
    ({"notify": {"channel_id": "C0123ABCD", "team_id": "nope"}}, "notify"),
    ({"notify": "C0123ABCD"}, "notify"),
    ({"description": "d" * 257}, "description"),
    ({"r_version": "4.4.1"}, "r_version"),
    ([], "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_input_gets_400_naming_the_field(
    client: Client, store: Store, body: Any, field: str
) -> None:
    status, answer = post(client, body)
    assert status == 400, answer
    assert answer["field"].split(".")[0] == field, answer
    assert store.query_kind("SUB")[0] == []


@pytest.mark.parametrize("raw", ["{not json", ""])
def test_malformed_json_gets_400(client: Client, raw: str) -> None:
    status, answer = post(client, raw)
    assert status == 400 and answer["field"] == "body"


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("next=%21%21", "next")])
def test_bad_list_queries_get_400(client: Client, query: str, field: str) -> None:
    resp = client.http.get(f"/subscriptions?{query}")
    assert resp.status_code == 400
    assert json.loads(resp.body)["field"] == field
