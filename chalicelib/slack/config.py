"""Slack credentials and allow-lists, from the environment or a stored secret."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

from chalicelib.aws.secrets import read_secret
from chalicelib.settings import Settings


class SlackConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    signing_secret: str = ""
    bot_token: str = ""
    allowed_teams: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()

    def allows(self, team_id: str, channel_id: str) -> str | None:
        """None when the team and channel may use rlayer, else why not."""
        if self.allowed_teams and team_id not in self.allowed_teams:
            return "this Slack workspace is not allowed to use rlayer"
        if self.allowed_channels and channel_id not in self.allowed_channels:
            return "rlayer is not enabled in this channel"
        return None


def _id_set(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def slack_config(settings: Settings) -> SlackConfig:
    """Settings' values, overridden by the stored secret when one is configured.

    The secret (``SLACK_SECRET_PARAMETER``, see ``chalicelib.aws.secrets``) holds either
    a JSON object ``{"signing_secret": ..., "bot_token": ...}`` or just the signing secret.
    Locally, ``SLACK_SIGNING_SECRET`` and ``SLACK_BOT_TOKEN`` are enough.
    """
    signing_secret, bot_token = settings.slack_signing_secret, settings.slack_bot_token
    if settings.slack_secret_parameter:
        raw = read_secret(settings.slack_secret_parameter)
        try:
            stored = json.loads(raw)
        except ValueError:
            stored = None
        if isinstance(stored, dict):
            signing_secret = str(stored.get("signing_secret") or signing_secret)
            bot_token = str(stored.get("bot_token") or bot_token)
        else:
            signing_secret = raw.strip()
    return SlackConfig(
        signing_secret=signing_secret,
        bot_token=bot_token,
        allowed_teams=_id_set(settings.slack_allowed_teams),
        allowed_channels=_id_set(settings.slack_allowed_channels),
    )
