"""The build's final message in Slack, posted by the state machine's Notify step.

The request's ``response_url`` is tried first (it needs no token, but Slack honours it for
30 minutes only); a build that outlived it, or a failed post, falls back to
``chat.postMessage`` with the bot token into the requesting channel. Posting never fails
a build: :func:`notify_slack` logs every error and returns.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from chalicelib.errors import RLayerError, SlackPostError
from chalicelib.models import BuildRecord, NotifyTarget
from chalicelib.observability import logger
from chalicelib.settings import Settings, get_settings
from chalicelib.slack.config import slack_config
from chalicelib.slack.messages import record_text

# Slack accepts posts to a response_url for 30 minutes; leave a margin for clock skew.
RESPONSE_URL_LIFETIME = timedelta(minutes=29)
# Short: a slow Slack must not hold the Notify step (each client retries a connection
# error once, so the worst case is about four timeouts).
TIMEOUT_S = 3


def notify_slack(record: BuildRecord) -> None:
    """Post the final message to everyone who asked from Slack; log, never raise.

    The first requester and every watcher (a later request answered with this build) are
    told separately, so one dead response_url does not silence the others.
    """
    for target in record.notify_targets():
        if not (target.response_url or target.channel_id):
            continue
        try:
            via = deliver(record, settings=get_settings(), target=target)
        except Exception:  # a Slack outage or bad config must never fail the build
            logger.exception(
                "slack notification failed",
                extra={"build_id": record.build_id, "channel_id": target.channel_id},
            )
            continue
        logger.info("slack notified", extra={"build_id": record.build_id, "via": via})


def deliver(
    record: BuildRecord,
    *,
    settings: Settings,
    now: datetime | None = None,
    target: NotifyTarget | None = None,
) -> str:
    """Post the message to ``target`` (default: the first requester); return how, or raise.

    How is ``response_url`` or ``chat.postMessage``.
    """
    target = target or record.notify
    if target is None:
        raise SlackPostError("the build has no Slack target")
    text = record_text(record, mention=target.user_id)
    failures: list[str] = []
    now = now or datetime.now(UTC)
    age = now - datetime.fromisoformat(target.requested_at or record.created_at)
    if target.response_url and age < RESPONSE_URL_LIFETIME:
        try:
            resp = WebhookClient(target.response_url, timeout=TIMEOUT_S).send_dict(
                {"response_type": "in_channel", "replace_original": False, "text": text}
            )
            if resp.status_code == 200:
                return "response_url"
            failures.append(f"response_url answered {resp.status_code}: {resp.body[:200]}")
        except (SlackClientError, OSError) as exc:
            failures.append(f"response_url: {exc}")
    elif target.response_url:
        failures.append(f"response_url expired ({age} old)")
    if target.channel_id:
        try:
            token = slack_config(settings).bot_token
        except RLayerError as exc:  # the stored secret could not be read
            failures.append(f"bot token: {exc.message}")
        else:
            if not token:
                failures.append("no bot token to post into the channel")
            else:
                try:
                    WebClient(
                        token=token, base_url=settings.slack_api_url, timeout=TIMEOUT_S
                    ).chat_postMessage(channel=target.channel_id, text=text, unfurl_links=False)
                    return "chat.postMessage"
                except SlackApiError as exc:
                    failures.append(f"chat.postMessage: {exc.response.get('error')}")
                except (SlackClientError, OSError) as exc:
                    failures.append(f"chat.postMessage: {exc}")
    raise SlackPostError("; ".join(failures) or "nowhere to post")
