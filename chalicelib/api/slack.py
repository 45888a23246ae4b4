"""POST /slack/commands: the Slack slash command.

Not IAM-authorized: Slack cannot sign with SigV4. The request signature (v0 HMAC over the
raw body with the app's signing secret) is the authentication, checked before anything
else; unsigned, forged and stale requests get 401 and start nothing.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.api import context
from chalicelib.api.responses import http_errors, json_response, request_body
from chalicelib.errors import RequestInvalidError
from chalicelib.settings import Settings
from chalicelib.slack import messages, verify
from chalicelib.slack.commands import SlashCommand
from chalicelib.slack.config import SlackConfig, slack_config
from chalicelib.slack.handler import failure_reply, handle

slack = Blueprint(__name__)


# A slash command form with its text; anything larger is not from Slack.
SLACK_BODY_BYTES = 16 * 1024


@slack.route(
    "/slack/commands", methods=["POST"], content_types=["application/x-www-form-urlencoded"]
)
@http_errors
def slash_command() -> Response:
    request = slack.current_request
    settings = context.settings()
    config = slack_config(settings)
    # Slack's forms are a few hundred bytes; verified byte for byte, as the signature
    # covers exactly what Slack sent.
    body = request_body(request.raw_body, SLACK_BODY_BYTES)
    signature = verify.verify_request(config.signing_secret, body, dict(request.headers or {}))
    try:
        reply = _reply(body, signature, settings, config)
    except Exception as exc:  # signed by Slack: whatever went wrong is told in words
        reply = failure_reply(exc)
    return json_response(reply)


def _reply(body: bytes, signature: str, settings: Settings, config: SlackConfig) -> dict[str, Any]:
    store = context.store()
    earlier = verify.claim(store, signature)
    if earlier is not None:
        return earlier
    try:
        command = SlashCommand.from_form(body)
    except RequestInvalidError as exc:
        # Signed by Slack yet not a command form we know: still a 200, or Slack shows
        # only "failed" and drops the reason.
        reply = messages.ephemeral(f":warning: not a slash command rlayer reads: {exc.message}")
    else:
        reply = handle(command, store=store, settings=settings, config=config)
    verify.remember(store, signature, reply)
    return reply
