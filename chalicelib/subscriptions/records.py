"""Subscription items in the table (``SUB#<id>``, kind ``SUB``), through the generic store."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from chalicelib.aws.items import BY_TIME, SUBSCRIPTION
from chalicelib.aws.store import Store
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.models import Source
from chalicelib.observability import logger
from chalicelib.subscriptions.models import Subscription, SubscriptionRequest


def new_subscription_id() -> str:
    return f"sub-{secrets.token_hex(6)}"


def _from_item(item: dict[str, Any]) -> Subscription:
    return Subscription.model_validate(SUBSCRIPTION.decode(item))


def create_subscription(
    store: Store,
    request: SubscriptionRequest,
    *,
    source: Source = "api",
    created_by: str | None = None,
) -> Subscription:
    subscription = Subscription(
        subscription_id=new_subscription_id(),
        packages=request.packages,
        architectures=request.architectures,
        notify=request.notify,
        description=request.description,
        source=source,
        created_by=created_by,
    )
    data = SUBSCRIPTION.encode(
        subscription.model_dump(mode="json"),
        created_at=subscription.created_at,
        ident=subscription.subscription_id,
    )
    if not store.put_new(SUBSCRIPTION.key(subscription.subscription_id), data):
        # 48 random bits colliding is not expected; never overwrite someone's subscription.
        raise ConflictError("subscription id collision; try again")
    logger.info(
        "subscription created",
        extra={"subscription_id": subscription.subscription_id, "source": source},
    )
    return subscription


def get_subscription(store: Store, subscription_id: str) -> Subscription:
    item = store.get_item(SUBSCRIPTION.key(subscription_id))
    if item is None:
        raise NotFoundError(f"no subscription with id {subscription_id!r}", field="subscription_id")
    return _from_item(item)


def delete_subscription(store: Store, subscription_id: str) -> Subscription:
    """Delete and return the subscription; NotFoundError when there is none."""
    subscription = get_subscription(store, subscription_id)
    store.delete(SUBSCRIPTION.key(subscription_id))
    logger.info("subscription deleted", extra={"subscription_id": subscription_id})
    return subscription


def list_subscriptions(
    store: Store, *, limit: int, token: str | None
) -> tuple[list[Subscription], str | None]:
    items, nxt = store.query_kind(SUBSCRIPTION.prefix, limit=limit, token=token)
    return [_from_item(item) for item in items], nxt


def iter_subscriptions(store: Store) -> Iterator[Subscription]:
    for item in store.iter_query(BY_TIME, "kind", SUBSCRIPTION.prefix):
        yield _from_item(item)
