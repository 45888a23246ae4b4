"""Where errors become HTTP responses: the one mapping from the exception tree."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from chalice.app import Response
from pydantic import BaseModel, ValidationError

from chalicelib.errors import RLayerError, request_invalid
from chalicelib.observability import logger

P = ParamSpec("P")
T = TypeVar("T")

JSON_HEADERS: dict[str, str | list[str]] = {"Content-Type": "application/json"}


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
