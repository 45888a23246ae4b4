"""Routes: the R releases the scheduler has seen, and starting its check at once (admin)."""

from __future__ import annotations

from chalice.app import Blueprint, IAMAuthorizer, Response

from chalicelib.api import context
from chalicelib.api.contract import (
    CheckAccepted,
    CheckPath,
    CheckRunView,
    ReleaseList,
    ReleasesQuery,
    ReleaseView,
    TriggeredBuildView,
)
from chalicelib.api.responses import http_errors, json_response
from chalicelib.releases import ReleaseRecord, list_releases
from chalicelib.releases.runs import CheckRun, find_run, request_check

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


def check_url(run: CheckRun, base: str) -> str:
    return f"{base}/releases/checks/{run.check_id}"


@releases.route("/releases/check", methods=["POST"], authorizer=iam)
@http_errors
def check_releases_route() -> Response:
    # The check runs in the scheduled check's function; its outcome is read at status_url.
    request = releases.current_request
    run, started = request_check(
        context.store(), context.settings(), requested_by=context.caller(request)
    )
    url = check_url(run, context.base_url(request))
    view = CheckAccepted(
        check_id=run.check_id,
        state=run.state,
        status_url=url,
        requested_at=run.requested_at,
        duplicate_of_request=not started,
    )
    return json_response(view, 202, headers={"Location": url})


@releases.route("/releases/checks/{check_id}", methods=["GET"], authorizer=iam)
@http_errors
def get_check_route(check_id: str) -> Response:
    path = CheckPath.model_validate({"check_id": check_id})
    run = find_run(context.store(), path.check_id)
    base = context.base_url(releases.current_request)
    return json_response(CheckRunView(**run.model_dump(), status_url=check_url(run, base)))
