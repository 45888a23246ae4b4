"""Routes: subscriptions, the specs rebuilt on every new R release."""

from __future__ import annotations

from chalice.app import Blueprint, IAMAuthorizer, Response

from chalicelib.api import context
from chalicelib.api.contract import SubscriptionList, SubscriptionPath, SubscriptionsQuery
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
    return json_response(SubscriptionList(subscriptions=found, next=token))


@subscriptions.route("/subscriptions/{subscription_id}", methods=["GET"], authorizer=iam)
@http_errors
def get_subscription_route(subscription_id: str) -> Response:
    path = SubscriptionPath.model_validate({"subscription_id": subscription_id})
    return json_response(get_subscription(context.store(), path.subscription_id))


@subscriptions.route("/subscriptions/{subscription_id}", methods=["DELETE"], authorizer=iam)
@http_errors
def delete_subscription_route(subscription_id: str) -> Response:
    path = SubscriptionPath.model_validate({"subscription_id": subscription_id})
    delete_subscription(context.store(), path.subscription_id)
    return Response(body="", status_code=204)
