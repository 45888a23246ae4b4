"""Where errors become HTTP responses: the one mapping from the exception tree."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from chalice.app import Response
from pydantic import BaseModel, ValidationError

from chalicelib.errors import PayloadTooLargeError, RLayerError, request_invalid
from chalicelib.observability import logger

P = ParamSpec("P")
T = TypeVar("T")

JSON_HEADERS: dict[str, str | list[str]] = {"Content-Type": "application/json"}
# Our limit on a request body, checked before it is parsed: the largest valid request (200
# packages of 98 characters, a description) is about 25 KB. API Gateway itself refuses
# bodies over 10 MB before any code runs.
MAX_BODY_BYTES = 64 * 1024


def request_body(raw: bytes | str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, or PayloadTooLargeError (413) when it exceeds ``limit``."""
    body = (raw.encode() if isinstance(raw, str) else raw) or b""
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"the request body is {len(body):,} bytes; at most {limit:,} are accepted",
            field="body",
        )
    return body


def json_response(body: Any, status: int = 200) -> Response:
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return Response(body=json.dumps(body), status_code=status, headers=JSON_HEADERS)


def http_errors(fn: Callable[P, T]) -> Callable[P, T | Response]:
    """Map the exception tree to JSON error responses; bad input never becomes a 500."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | Response:
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            return error_response(request_invalid(exc))
        except RLayerError as exc:
            return error_response(exc)

    return wrapper


def error_response(exc: RLayerError) -> Response:
    if exc.http_status >= 500:
        logger.exception("request failed")
    return json_response(exc.to_dict(), exc.http_status)
