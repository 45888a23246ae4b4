"""Standing requests to rebuild a spec on every new R release."""

from chalicelib.subscriptions.models import (
    Subscription,
    SubscriptionNotify,
    SubscriptionRequest,
)
from chalicelib.subscriptions.records import (
    create_subscription,
    delete_subscription,
    get_subscription,
    iter_subscriptions,
    list_subscriptions,
)

__all__ = [
    "Subscription",
    "SubscriptionNotify",
    "SubscriptionRequest",
    "create_subscription",
    "delete_subscription",
    "get_subscription",
    "iter_subscriptions",
    "list_subscriptions",
]
