"""POST /slack/commands: the Slack slash command.

Not IAM-authorized: Slack cannot sign with SigV4. The request signature (v0 HMAC over the
raw body with the app's signing secret) is the authentication, checked before anything
else; unsigned, forged and stale requests get 401 and start nothing.
"""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.api import context
from chalicelib.api.responses import http_errors, json_response, request_body
from chalicelib.slack import verify
from chalicelib.slack.commands import SlashCommand
from chalicelib.slack.config import slack_config
from chalicelib.slack.handler import handle

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
    store = context.store()
    earlier = verify.claim(store, signature)
    if earlier is not None:
        return json_response(earlier)
    reply = handle(SlashCommand.from_form(body), store=store, settings=settings, config=config)
    verify.remember(store, signature, reply)
    return json_response(reply)
