"""GET /openapi.json: the OpenAPI 3.1 document, rendered from ``contract.OPERATIONS``.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits, so the models'
schemas go into ``components`` as they are.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from chalice.app import Blueprint, IAMAuthorizer, Response
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.api import context
from chalicelib.api.contract import FORM, JSON, OPERATIONS, ErrorBody, Operation
from chalicelib.api.responses import http_errors, json_response

docs = Blueprint(__name__)
# Behind IAM like every route in AWS; Chalice local lets it pass, so it is public there.
iam = IAMAuthorizer()

VERSION = "1"
REF = "#/components/schemas/{model}"
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    400: "A field is invalid (named in `field`)",
    401: "Not signed by Slack, or stale",
    404: "Not found",
    409: "A concurrent change won; try again",
    413: "The body is over the limit",
    429: "Too many builds in flight for this caller; see Retry-After",
    500: "Failed on our side; quote `request_id`",
    502: "An upstream service (the release feed) failed",
    503: "AWS is throttling or unavailable; see Retry-After",
}


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for op in OPERATIONS:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.answer is not None:
            wanted.append((op.answer, "serialization"))
    return list(dict.fromkeys(wanted))


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": where, "required": where == "path" or name in required, "schema": prop}
        for name, prop in schema["properties"].items()
    ]


def _response(
    description: str,
    ref: dict[str, Any] | None,
    headers: dict[str, Any],
    media: tuple[str, ...] = (JSON,),
) -> Any:
    out: dict[str, Any] = {"description": description}
    text = {"type": "string"}
    content = {m: {"schema": ref if m == JSON else text} for m in media if m != JSON or ref}
    if content:
        out["content"] = content
    if headers:
        out["headers"] = headers
    return out


def _operation(op: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    error = refs[(ErrorBody, "serialization")]
    request_id = {"X-Request-Id": {"schema": {"type": "string"}}}
    retry = {"Retry-After": {"schema": {"type": "string"}}}
    answer = refs[(op.answer, "serialization")] if op.answer is not None else None
    responses: dict[str, Any] = {}
    for status in (op.ok, *op.also):
        responses[str(status)] = _response(STATUS_TEXT[status], answer, request_id, op.media)
    for status in (*op.errors, 500, 503):
        headers = {**request_id, **(retry if status in (429, 503) else {})}
        responses[str(status)] = _response(STATUS_TEXT[status], error, headers)
    parameters = _parameters(op.path_params, "path") + _parameters(op.query, "query")
    parameters += [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in op.headers.items()
    ]
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", op.path).rstrip("_"),
        "responses": responses,
        "security": [{"sigv4": []}] if op.iam else [],
    }
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_type == FORM,
            "content": {op.body_type: {"schema": refs[(op.body, "validation")]}},
        }
    return out


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    refs, defs = models_json_schema(_models(), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rlayer",
            "version": VERSION,
            "description": "Build, validate, publish and prove R runtime layers for AWS Lambda.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                # API Gateway's IAM authorizer: requests signed with SigV4.
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
        },
    }


def document(base_url: str | None = None) -> dict[str, Any]:
    doc = dict(_document())
    if base_url:
        doc["servers"] = [{"url": base_url}]
    return doc


@docs.route("/openapi.json", methods=["GET"], authorizer=iam)
@http_errors
def openapi_route() -> Response:
    return json_response(document(context.base_url(docs.current_request)))
