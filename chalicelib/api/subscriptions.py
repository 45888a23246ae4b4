"""Routes: subscriptions, the specs rebuilt on every new R release."""

from __future__ import annotations

from chalice.app import Blueprint, IAMAuthorizer, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api import context
from chalicelib.api.responses import http_errors, json_response, request_body
from chalicelib.subscriptions import (
    SubscriptionRequest,
    create_subscription,
    delete_subscription,
    get_subscription,
    list_subscriptions,
)

subscriptions = Blueprint(__name__)
# In AWS every route here needs a SigV4-signed request (IAM); Chalice local lets them pass.
iam = IAMAuthorizer()


class SubscriptionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=100)
    next: str | None = None


@subscriptions.route("/subscriptions", methods=["POST"], authorizer=iam)
@http_errors
def create_subscription_route() -> Response:
    body = SubscriptionRequest.model_validate_json(
        request_body(subscriptions.current_request.raw_body)
    )
    return json_response(create_subscription(context.store(), body), 201)


@subscriptions.route("/subscriptions", methods=["GET"], authorizer=iam)
@http_errors
def list_subscriptions_route() -> Response:
    query = SubscriptionsQuery.model_validate(subscriptions.current_request.query_params or {})
    found, token = list_subscriptions(context.store(), limit=query.limit, token=query.next)
    return json_response(
        {"subscriptions": [s.model_dump(mode="json") for s in found], "next": token}
    )


@subscriptions.route("/subscriptions/{subscription_id}", methods=["GET"], authorizer=iam)
@http_errors
def get_subscription_route(subscription_id: str) -> Response:
    return json_response(get_subscription(context.store(), subscription_id))


@subscriptions.route("/subscriptions/{subscription_id}", methods=["DELETE"], authorizer=iam)
@http_errors
def delete_subscription_route(subscription_id: str) -> Response:
    delete_subscription(context.store(), subscription_id)
    return Response(body="", status_code=204)
