"""Where errors become HTTP responses: the one mapping from the exception tree."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from chalice.app import Request, Response
from pydantic import BaseModel, ValidationError

from chalicelib.aws.faults import as_error
from chalicelib.errors import PayloadTooLargeError, RLayerError, request_invalid
from chalicelib.observability import bind_request, logger, request_id

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


REQUEST_ID_HEADER = "X-Request-Id"
# The body of Chalice's own refusals (chalice.app.error_response).
_CHALICE_ERROR = {"Code", "Message"}


def with_request_id(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """The HTTP middleware: every answer carries the request id its log lines carry."""
    rid = bind_request((request.context or {}).get("requestId"))
    response = get_response(request)
    response.headers[REQUEST_ID_HEADER] = rid
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == _CHALICE_ERROR:
        # Chalice's own refusals (405 method, 415 content type) in our error shape.
        response.body = {"error": body["Code"], "message": body["Message"]}
        if response.status_code in (400, 415):
            response.body["field"] = "headers"
    return response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return Response(
        body=json.dumps(body), status_code=status, headers={**JSON_HEADERS, **(headers or {})}
    )


def http_errors(fn: Callable[P, T]) -> Callable[P, T | Response]:
    """Map every exception to a JSON error response: bad input is a 4xx naming the field,
    throttling a 503, and anything else a 500 that shows only its request id."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | Response:
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            return error_response(request_invalid(exc))
        except Exception as exc:  # the last line of defence: no traceback reaches a caller
            return error_response(as_error(exc))

    return wrapper


def error_body(exc: RLayerError) -> dict[str, str]:
    """What a caller sees of an error: ours in full, an internal one only by its id."""
    if exc.public:
        return exc.to_dict()
    rid = request_id()
    if exc.http_status == 503:
        message = f"the service is busy; try again in {exc.retry_after} s"
    else:
        message = "the request failed on our side; quote the request id when you report it"
    return {"error": type(exc).__name__, "message": message, "request_id": rid}


def error_response(exc: RLayerError) -> Response:
    if exc.http_status >= 500:
        logger.exception("request failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return json_response(error_body(exc), exc.http_status, headers)
