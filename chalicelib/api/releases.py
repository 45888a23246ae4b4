"""Routes: the R releases the scheduler has seen, and running its check at once (admin)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, IAMAuthorizer, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api import context
from chalicelib.api.responses import http_errors, json_response
from chalicelib.releases import ReleaseRecord, check_releases, list_releases

releases = Blueprint(__name__)
# IAM in AWS: POST /releases/check is for whoever the account's policies let call it.
iam = IAMAuthorizer()


class ReleasesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    next: str | None = None


def release_view(record: ReleaseRecord, base: str) -> dict[str, Any]:
    view = record.model_dump(mode="json")
    for build in view["builds"]:
        build["status_url"] = f"{base}/builds/{build['build_id']}"
    return view


@releases.route("/releases", methods=["GET"], authorizer=iam)
@http_errors
def list_releases_route() -> Response:
    request = releases.current_request
    query = ReleasesQuery.model_validate(request.query_params or {})
    records, token = list_releases(context.store(), limit=query.limit, token=query.next)
    base = context.base_url(request)
    return json_response({"releases": [release_view(r, base) for r in records], "next": token})


@releases.route("/releases/check", methods=["POST"], authorizer=iam)
@http_errors
def check_releases_route() -> Response:
    # The scheduled check, now; an unusable feed is a 502 naming FeedError.
    return json_response(check_releases(context.store(), context.settings()))
