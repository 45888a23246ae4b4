"""Routes: the R releases the scheduler has seen, and running its check at once (admin)."""

from __future__ import annotations

from chalice.app import Blueprint, IAMAuthorizer, Response

from chalicelib.api import context
from chalicelib.api.contract import ReleaseList, ReleasesQuery, ReleaseView, TriggeredBuildView
from chalicelib.api.responses import http_errors, json_response
from chalicelib.releases import ReleaseRecord, check_releases, list_releases

releases = Blueprint(__name__)
# IAM in AWS: POST /releases/check is for whoever the account's policies let call it.
iam = IAMAuthorizer()


def release_view(record: ReleaseRecord, base: str) -> ReleaseView:
    builds = [
        TriggeredBuildView(**b.model_dump(), status_url=f"{base}/builds/{b.build_id}")
        for b in record.builds
    ]
    return ReleaseView(**{**record.model_dump(), "builds": builds})


@releases.route("/releases", methods=["GET"], authorizer=iam)
@http_errors
def list_releases_route() -> Response:
    request = releases.current_request
    query = ReleasesQuery.model_validate(request.query_params or {})
    records, token = list_releases(context.store(), limit=query.limit, token=query.next)
    base = context.base_url(request)
    return json_response(ReleaseList(releases=[release_view(r, base) for r in records], next=token))


@releases.route("/releases/check", methods=["POST"], authorizer=iam)
@http_errors
def check_releases_route() -> Response:
    # The scheduled check, now; an unusable feed is a 502 naming FeedError.
    return json_response(check_releases(context.store(), context.settings()))
