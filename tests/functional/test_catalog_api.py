"""GET /layers (JSON and CSV) and GET /layers/latest on the Chalice test client and moto."""

from __future__ import annotations

import csv
import io
import json

from chalice.test import Client

from chalicelib.aws.store import Store
from chalicelib.models import Architecture, BuildRecord
from tests.catalog_seed import proven, supersede, tombstone

EU, SYD, US = "eu-west-1", "ap-southeast-2", "us-east-1"


def seed(store: Store) -> dict[str, BuildRecord]:
    pkgs = {"dplyr": "1.1.4", "data.table": "1.16.0"}
    old = proven(store, "4.5.0", packages=pkgs, architecture=Architecture.ARM64, regions=(US, EU))
    new = proven(store, "4.5.1", packages=pkgs, architecture=Architecture.ARM64, regions=(US, EU))
    newest_elsewhere = proven(
        store, "4.5.2", packages=pkgs, architecture=Architecture.ARM64, regions=(US, SYD)
    )
    gone = proven(store, "4.4.1", packages={"dplyr": "1.1.4"}, regions=(US,), version=1)
    replacement = proven(
        store, "4.4.1", packages={"dplyr": "1.1.4"}, regions=(US,), version=2, build_id="bnewer"
    )
    superseded = proven(store, "4.3.3", regions=(US, EU), version=1)
    current = proven(store, "4.3.3", regions=(US, EU), version=2, build_id="bcurrent433")
    supersede(store, superseded, current)
    tombstone(store, gone, replacement)
    supersede(store, old, new)
    return {"old": old, "new": new, "syd": newest_elsewhere, "gone": gone, "rep": replacement}


def test_latest_answers_the_newest_current_layers_in_attach_order(
    client: Client, store: Store
) -> None:
    seeded = seed(store)
    new = seeded["new"]
    resp = client.http.get(
        "/layers/latest?r_version=4.5&architecture=arm64&region=eu-west-1&packages=data.table,dplyr"
    )
    assert resp.status_code == 200, resp.body
    body = json.loads(resp.body)
    # 4.5.2 is newer but not in eu-west-1; 4.5.0 is superseded.
    assert body["r_version"] == "4.5.1" and body["build_id"] == new.build_id
    assert [la["kind"] for la in body["layers"]] == ["runtime", "packages"]
    assert all(":eu-west-1:" in arn for arn in body["arns"])
    assert body["arns"] == [la["arn"] for la in body["layers"]]
    assert body["packages"]["dplyr"] == "1.1.4"

    sydney = json.loads(
        client.http.get(
            "/layers/latest?r_version=4.5&architecture=arm64&region=ap-southeast-2"
            "&packages=dplyr,data.table"
        ).body
    )
    assert sydney["r_version"] == "4.5.2"
    exact = client.http.get(
        "/layers/latest?r_version=4.5.1&architecture=arm64&packages=dplyr,data.table"
    )
    assert json.loads(exact.body)["region"] == "us-east-1"

    as_csv = client.http.get(
        "/layers/latest?r_version=4.5&architecture=arm64&region=eu-west-1"
        "&packages=dplyr,data.table&format=csv"
    )
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.body.decode())))
    assert [(r["order"], r["kind"], r["arn"]) for r in rows] == [
        ("1", "runtime", body["arns"][0]),
        ("2", "packages", body["arns"][1]),
    ]


def test_latest_says_clearly_when_there_is_none(client: Client, store: Store) -> None:
    seed(store)
    cases = {
        # The only 4.4.1 build with dplyr is current; with other packages there is none.
        "r_version=4.4&packages=dplyr,ggplot2": "with dplyr, ggplot2",
        "r_version=4.5&architecture=x86_64&packages=dplyr,data.table": "on x86_64",
        "r_version=4.3&region=ap-southeast-2": "in ap-southeast-2 with no packages",
    }
    for query, said in cases.items():
        resp = client.http.get(f"/layers/latest?{query}")
        assert resp.status_code == 404, query
        body = json.loads(resp.body)
        assert body["error"] == "NotFoundError"
        assert said in body["message"] and "no proven layers" in body["message"]
    for query, field in {
        "r_version=4": "r_version",
        "r_version=4.5&region=Mars": "region",
        "r_version=4.5&packages=not_a_package": "packages",
        "r_version=4.5&format=xml": "format",
    }.items():
        resp = client.http.get(f"/layers/latest?{query}")
        assert resp.status_code == 400, query
        assert json.loads(resp.body)["field"] == field


def test_the_catalog_shows_regions_expiry_and_tombstones(client: Client, store: Store) -> None:
    seeded = seed(store)
    entries = json.loads(client.http.get("/layers").body)["layers"]
    by_id = {e["build_id"]: e for e in entries}
    old, gone, rep = seeded["old"], seeded["gone"], seeded["rep"]
    assert by_id[old.build_id]["status"] == "superseded"
    assert by_id[old.build_id]["expires_at"]
    assert set(by_id[old.build_id]["regions"]) == {US, EU}
    tomb = by_id[gone.build_id]
    assert tomb["status"] == "deleted" and tomb["deleted_at"]
    assert tomb["regions"] == {}  # nothing left to attach
    packages = next(la for la in tomb["layers"] if la["kind"] == "packages")
    assert packages["regions"][US]["replaced_by"] == rep.layers[1].arn

    rows = list(csv.DictReader(io.StringIO(client.http.get("/layers?format=csv").body.decode())))
    assert {r["status"] for r in rows} == {"current", "superseded", "deleted"}
    deleted = [r for r in rows if r["build_id"] == gone.build_id]
    assert all(r["deleted_at"] and r["replaced_by"] for r in deleted)
    # One row per layer version per region.
    assert len(rows) == sum(len(la["regions"]) for e in entries for la in e["layers"])
    filtered = json.loads(client.http.get("/layers?r_version=4.3.3").body)["layers"]
    assert {e["r_version"] for e in filtered} == {"4.3.3"} and len(filtered) == 2
