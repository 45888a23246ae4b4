"""One verified slash command -> one reply (a Slack message body).

Bad input and refusals are answered with a message (HTTP 200), because Slack shows any
other status as an opaque "failed with the error ..." and drops our body. That covers a
team or channel outside the allow-list too: the request was signed by Slack for our app,
so telling the user why is safe. Only unverifiable requests get an HTTP error (401).
"""

from __future__ import annotations

from typing import Any

from chalicelib.aws.faults import as_error
from chalicelib.aws.store import Store
from chalicelib.catalog import proven_builds
from chalicelib.errors import NotFoundError, RequestInvalidError, TooManyBuildsError
from chalicelib.models import NotifyTarget
from chalicelib.observability import bind_build, logger, request_id
from chalicelib.settings import Settings
from chalicelib.slack import commands, messages
from chalicelib.slack.commands import SlashCommand
from chalicelib.slack.config import SlackConfig
from chalicelib.submit import submit_build
from chalicelib.subscriptions import (
    create_subscription,
    delete_subscription,
    list_subscriptions,
)

LAYERS_SHOWN = 10


def handle(
    command: SlashCommand, *, store: Store, settings: Settings, config: SlackConfig
) -> dict[str, Any]:
    refusal = config.allows(command.team_id, command.channel_id)
    if refusal is not None:
        logger.info(
            "slack command refused",
            extra={"team_id": command.team_id, "channel_id": command.channel_id},
        )
        return messages.ephemeral(f":no_entry: {refusal}.")
    try:
        return _dispatch(command, store=store, settings=settings)
    except RequestInvalidError as exc:
        return messages.problem(exc.message, command.command)
    except NotFoundError as exc:
        return messages.ephemeral(f":mag: {messages.escape(exc.message)}")
    except TooManyBuildsError as exc:
        return messages.ephemeral(f":hourglass: {messages.escape(exc.message)}")
    except Exception as exc:
        return failure_reply(exc)


def failure_reply(exc: Exception) -> dict[str, Any]:
    """An error as a message: Slack would show any status but 200 as a bare "failed"."""
    error = as_error(exc)
    logger.exception("slack command failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    if error.public:
        return messages.ephemeral(
            f":boom: rlayer could not do that ({type(error).__name__}): "
            f"{messages.escape(error.message)}"
        )
    when = f"try again in {error.retry_after} s" if error.retry_after else "try again later"
    return messages.ephemeral(
        f":boom: rlayer could not do that just now; {when}. "
        f"If it keeps failing, quote request id `{request_id()}`."
    )


def _dispatch(command: SlashCommand, *, store: Store, settings: Settings) -> dict[str, Any]:
    parsed = commands.split(command.text)
    if parsed.name == "build":
        request = commands.build_request(parsed.args)
        record, created = submit_build(
            request,
            store=store,
            settings=settings,
            source="slack",
            notify=NotifyTarget(
                response_url=command.response_url,
                channel_id=command.channel_id,
                team_id=command.team_id,
                user_id=command.user_id,
            ),
            caller=f"slack:{command.team_id}:{command.user_id}",
        )
        bind_build(record.build_id)
        logger.info("slack build", extra={"new_build": created, "user_id": command.user_id})
        if created:
            return messages.queued(record, command.command)
        return messages.duplicate(record, command.command)
    if parsed.name == "status":
        build_id = commands.build_id(parsed.args)
        return messages.ephemeral(messages.record_text(store.get_build(build_id)))
    if parsed.name == "list":
        query = commands.list_query(parsed.args)
        limit = query.limit if "limit" in query.model_fields_set else 10
        records, _ = store.list_builds(status=query.status, limit=limit, token=None)
        return messages.build_list(records)
    if parsed.name == "layers":
        layers = commands.layers_query(parsed.args)
        matching = proven_builds(
            store, r_version=layers.r_version, architecture=layers.architecture
        )
        return messages.layer_list(matching, shown=LAYERS_SHOWN)
    if parsed.name == "subscribe":
        wanted = commands.subscription_request(
            parsed.args, channel_id=command.channel_id, team_id=command.team_id
        )
        subscription = create_subscription(
            store, wanted, source="slack", created_by=command.user_id
        )
        return messages.subscribed(subscription, command.command)
    if parsed.name == "subscriptions":
        subscriptions, _ = list_subscriptions(store, limit=LAYERS_SHOWN, token=None)
        return messages.subscription_list(subscriptions)
    if parsed.name == "unsubscribe":
        removed = delete_subscription(store, commands.subscription_id(parsed.args))
        return messages.ephemeral(
            f":wave: subscription `{messages.escape(removed.subscription_id)}` removed"
        )
    return messages.ephemeral(messages.help_text(command.command))
