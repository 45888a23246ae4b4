"""Typed calls to the rlayer HTTP API (the routes of ``chalicelib.api.builds``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ValidationError

from chalicelib import errors
from chalicelib.models import Architecture, BuildRecord, BuildRequest, BuildStatus
from rlayer.client.sigv4 import signing_transport
from rlayer.client.transport import HttpRequest, Transport, is_local, urllib_transport

M = TypeVar("M", bound=BaseModel)

_BY_STATUS: dict[int, type[errors.RLayerError]] = {
    400: errors.RequestInvalidError,
    401: errors.SignatureInvalidError,
    403: errors.ForbiddenError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.PayloadTooLargeError,
    429: errors.TooManyBuildsError,
    503: errors.TransientError,
}


def _error_classes() -> dict[str, type[errors.RLayerError]]:
    found: dict[str, type[errors.RLayerError]] = {}
    pending: list[type[errors.RLayerError]] = [errors.RLayerError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


@dataclass(frozen=True)
class Submitted:
    """The answer to ``POST /builds``."""

    build_id: str
    status: BuildStatus
    status_url: str
    execution_arn: str | None
    # False when the API answered with an existing build of the same spec.
    created: bool


class Page(BaseModel):
    builds: list[BuildRecord]
    next: str | None = None


class ApiClient:
    def __init__(self, base_url: str, *, transport: Transport | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise errors.RequestInvalidError(
                f"{base_url!r} is not an http(s) URL of the rlayer API", field="api"
            )
        self.base_url = base_url.rstrip("/")
        self._send = transport or urllib_transport()

    @classmethod
    def for_url(cls, base_url: str, *, timeout: float = 30.0) -> ApiClient:
        """The client a user means: unsigned for the local stack, SigV4 for AWS."""
        transport = urllib_transport(timeout)
        if not is_local(base_url):
            transport = signing_transport(transport, base_url)
        return cls(base_url, transport=transport)

    # -- routes ------------------------------------------------------------------------
    def create_build(self, request: BuildRequest) -> Submitted:
        # Fields left empty are left out: an older API refuses fields it does not know.
        empty = {name for name in ("regions", "share") if not getattr(request, name)}
        status, body = self._call(
            "POST",
            "/builds",
            body=request.model_dump(mode="json", exclude_none=True, exclude=empty),
        )
        return Submitted(
            build_id=str(body["build_id"]),
            status=BuildStatus(body["status"]),
            status_url=str(body.get("status_url", f"{self.base_url}/builds/{body['build_id']}")),
            execution_arn=body.get("execution_arn"),
            created=status == 202,
        )

    def get_build_raw(self, build_id: str) -> dict[str, Any]:
        """The record as the API sent it (fields this client's model may not know yet)."""
        return self._call("GET", f"/builds/{build_id}")[1]

    def get_build(self, build_id: str) -> BuildRecord:
        return self._model(BuildRecord, self.get_build_raw(build_id))

    def list_builds(
        self, *, status: BuildStatus | None = None, limit: int = 20, next_token: str | None = None
    ) -> Page:
        query: dict[str, str] = {"limit": str(limit)}
        if status is not None:
            query["status"] = status.value
        if next_token:
            query["next"] = next_token
        return self._model(Page, self._call("GET", "/builds", query=query)[1])

    def layers(
        self, *, r_version: str | None = None, architecture: Architecture | None = None
    ) -> list[dict[str, Any]]:
        query: dict[str, str] = {}
        if r_version:
            query["r_version"] = r_version
        if architecture is not None:
            query["architecture"] = architecture.value
        body = self._call("GET", "/layers", query=query)[1]
        layers = body.get("layers")
        if not isinstance(layers, list):
            raise errors.UpstreamError(f"{self.base_url}/layers answered without a layer list")
        return layers

    def catalog(self) -> dict[str, Any]:
        """``GET /layers`` as it came (what the catalog page reads)."""
        body = self._call("GET", "/layers")[1]
        if not isinstance(body.get("layers"), list):
            raise errors.UpstreamError(f"{self.base_url}/layers answered without a layer list")
        return body

    def latest(
        self,
        *,
        r_version: str,
        architecture: Architecture,
        region: str | None = None,
        packages: list[str] | None = None,
    ) -> dict[str, Any]:
        """``GET /layers/latest``: the newest proven layers of a spec, in attach order."""
        query = {"r_version": r_version, "architecture": architecture.value}
        if region:
            query["region"] = region
        if packages:
            query["packages"] = ",".join(packages)
        body = self._call("GET", "/layers/latest", query=query)[1]
        if not isinstance(body.get("arns"), list):
            raise errors.UpstreamError(f"{self.base_url}/layers/latest answered without ARNs")
        return body

    # -- plumbing ----------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        resp = self._send(HttpRequest(method, url, headers, data))
        try:
            parsed = json.loads(resp.body) if resp.body else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            snippet = resp.body[:200].decode(errors="replace")
            raise errors.UpstreamError(
                f"{method} {url} answered {resp.status} with a body that is not a JSON "
                f"object: {snippet!r}"
            )
        if resp.status >= 400:
            raise self._error(resp.status, parsed)
        return resp.status, parsed

    @staticmethod
    def _error(status: int, body: dict[str, Any]) -> errors.RLayerError:
        # API Gateway's own errors say {"message": ...}; ours also name the class.
        message = str(body.get("message") or body.get("Message") or f"HTTP {status}")
        cls = _error_classes().get(str(body.get("error", "")))
        if cls is None:
            cls = _BY_STATUS.get(status, errors.UpstreamError)
        if body.get("request_id"):
            message = f"{message} (request id {body['request_id']})"
        field = body.get("field")
        return cls(message, field=str(field) if field else None)

    def _model(self, model: type[M], data: dict[str, Any]) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise errors.UpstreamError(
                f"the API at {self.base_url} answered with an unexpected shape: {exc}"
            ) from exc
