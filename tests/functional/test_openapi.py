"""The OpenAPI document: rendered from the models the routes use, valid OpenAPI 3.1, and
naming exactly the routes Chalice has."""

from __future__ import annotations

import json
from typing import Any

from chalice.test import Client
from openapi_spec_validator import validate

from chalicelib.api.contract import OPERATIONS, BuildAccepted
from chalicelib.api.openapi import document
from chalicelib.models import BuildRequest


def test_the_document_names_exactly_the_routes_chalice_has() -> None:
    from app import app

    routes = {(m, path) for path, methods in app.routes.items() for m in methods}
    documented = {
        (method.upper(), path) for path, item in document()["paths"].items() for method in item
    }
    assert documented == routes
    assert {(op.method, op.path) for op in OPERATIONS} == routes


def test_it_is_valid_openapi_3_1() -> None:
    doc = document("http://127.0.0.1:8000")
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any violation of the 3.1 schema


def test_schemas_are_the_models_own() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    request = BuildRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert schemas["BuildRequest"]["properties"] == request["properties"]
    assert schemas["BuildRequest"]["properties"]["packages"]["maxItems"] == 200
    assert schemas["BuildRequest"]["properties"]["r_version"]["maxLength"] == 16
    post = doc["paths"]["/builds"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BuildRequest"
    }
    accepted = post["responses"]["202"]["content"]["application/json"]["schema"]
    assert accepted == {"$ref": f"#/components/schemas/{BuildAccepted.__name__}"}
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert "Retry-After" in post["responses"]["503"]["headers"]


def test_iam_everywhere_but_slack() -> None:
    doc = document()
    for path, item in doc["paths"].items():
        for operation in item.values():
            expected = [] if path == "/slack/commands" else [{"sigv4": []}]
            assert operation["security"] == expected, path


def test_it_is_served_with_the_callers_base_url(client: Client, aws: dict[str, Any]) -> None:
    resp = client.http.get("/openapi.json", headers={"Host": "rlayer.example"})
    assert resp.status_code == 200
    served = json.loads(resp.body)
    assert served["servers"] == [{"url": "http://rlayer.example"}]
    assert served["paths"] == document()["paths"]
