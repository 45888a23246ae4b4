"""Routes: request builds and read them (the catalog: chalicelib.api.catalog_routes)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, IAMAuthorizer, Response

from chalicelib.api import context
from chalicelib.api.contract import BuildAccepted, BuildList, BuildPath
from chalicelib.api.responses import http_errors, json_response, request_body
from chalicelib.models import BuildRecord, BuildRequest, ListQuery
from chalicelib.observability import bind_build
from chalicelib.submit import submit_build

builds = Blueprint(__name__)
# In AWS every route here needs a SigV4-signed request (IAM); Chalice local lets them pass.
iam = IAMAuthorizer()


# A Slack response_url lets whoever holds it post into the channel for 30 minutes: the
# record keeps it for the Notify step, the API never shows it.
_HIDDEN: dict[str, Any] = {"notify": {"response_url"}, "watchers": {"__all__": {"response_url"}}}


def record_view(record: BuildRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude=_HIDDEN)


def build_view(record: BuildRecord, base: str, *, duplicate: bool) -> BuildAccepted:
    return BuildAccepted(
        build_id=record.build_id,
        status=record.status,
        status_url=f"{base}/builds/{record.build_id}",
        execution_arn=record.execution_arn,
        duplicate_of_request=duplicate,
    )


@builds.route("/builds", methods=["POST"], authorizer=iam)
@http_errors
def create_build() -> Response:
    request = builds.current_request
    body = BuildRequest.model_validate_json(request_body(request.raw_body))
    record, created = submit_build(
        body,
        store=context.store(),
        settings=context.settings(),
        caller=context.caller(request),
    )
    bind_build(record.build_id)
    view = build_view(record, context.base_url(request), duplicate=not created)
    return json_response(view, 202 if created else 200)


@builds.route("/builds/{build_id}", methods=["GET"], authorizer=iam)
@http_errors
def get_build(build_id: str) -> Response:
    path = BuildPath.model_validate({"build_id": build_id})
    bind_build(path.build_id)
    return json_response(record_view(context.store().get_build(path.build_id)))


@builds.route("/builds", methods=["GET"], authorizer=iam)
@http_errors
def list_builds() -> Response:
    query = ListQuery.model_validate(builds.current_request.query_params or {})
    records, token = context.store().list_builds(
        status=query.status, limit=query.limit, token=query.next
    )
    page = BuildList(builds=records, next=token)
    return json_response(page.model_dump(mode="json", exclude={"builds": {"__all__": _HIDDEN}}))
