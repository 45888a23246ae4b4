"""Is this request from Slack, and have we seen it before?"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from slack_sdk.signature import SignatureVerifier

from chalicelib.aws.items import SLACK_REQUEST
from chalicelib.aws.store import Store
from chalicelib.errors import ConfigurationError, SignatureInvalidError

# Slack's own freshness window; SignatureVerifier enforces it, the replay guard matches it.
WINDOW_S = 5 * 60
SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"


def verify_request(signing_secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Return the request's signature when it is Slack's, fresh and over this body.

    SignatureVerifier does the v0 HMAC, the 5-minute window and the constant-time compare.
    """
    if not signing_secret.strip():
        raise ConfigurationError("no Slack signing secret is configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER)
    timestamp = lowered.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise SignatureInvalidError("missing Slack signature headers", field="headers")
    if not timestamp.isdigit():
        # The verifier would raise ValueError on int(); a garbled timestamp is just invalid.
        raise SignatureInvalidError("malformed request timestamp", field="headers")
    verifier = SignatureVerifier(signing_secret)
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise SignatureInvalidError(
            "the Slack signature does not match or the request is stale", field="headers"
        )
    return signature


def replay_key(signature: str) -> str:
    return SLACK_REQUEST.key(signature)


def claim(store: Store, signature: str) -> dict[str, Any] | None:
    """Mark a verified request as seen. None the first time; else the earlier reply.

    A valid signature can be replayed inside the window; the second copy must start
    nothing, so it gets the first one's answer. ``ttl`` lets DynamoDB expire the marker.
    """
    if store.put_new(replay_key(signature), {"ttl": int(time.time()) + WINDOW_S}):
        return None
    earlier = store.get_item(replay_key(signature)) or {}
    reply = earlier.get("reply")
    if isinstance(reply, dict):
        return reply
    return {"response_type": "ephemeral", "text": "This request is already being handled."}


def remember(store: Store, signature: str, reply: dict[str, Any]) -> None:
    store.put(replay_key(signature), {"ttl": int(time.time()) + WINDOW_S, "reply": reply})
