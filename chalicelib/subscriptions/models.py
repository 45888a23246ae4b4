"""Subscriptions: "rebuild this spec on every new R release", and where to say so."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

from chalicelib.models import (
    LAMBDA_DESCRIPTION_MAX,
    MAX_PACKAGES,
    Architecture,
    NotifyTarget,
    PackageEntry,
    Source,
    parse_packages,
    utcnow,
)

# Slack conversation ids: C (channel), G (private/group), D (direct message) + upper alnum.
SLACK_CHANNEL_RE = re.compile(r"^[CGD][A-Z0-9]{2,30}$")
SLACK_TEAM_RE = re.compile(r"^[TE][A-Z0-9]{2,30}$")


class SubscriptionNotify(BaseModel):
    """Where a subscription's builds report: a Slack channel."""

    model_config = ConfigDict(extra="forbid", strict=True)

    channel_id: str
    team_id: str | None = None

    @field_validator("channel_id")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not SLACK_CHANNEL_RE.match(value):
            raise ValueError("must be a Slack channel id such as C0123456789")
        return value

    @field_validator("team_id")
    @classmethod
    def _team(cls, value: str | None) -> str | None:
        if value is not None and not SLACK_TEAM_RE.match(value):
            raise ValueError("must be a Slack team id such as T0123456789")
        return value


class SubscriptionRequest(BaseModel):
    """Body of ``POST /subscriptions`` (and what ``/rlayer subscribe`` turns into one)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    packages: list[PackageEntry] = Field(
        default_factory=list, max_length=MAX_PACKAGES, json_schema_extra={"uniqueItems": True}
    )
    # Lax for the enum only, so Python callers (Slack) may pass plain strings.
    architectures: list[Annotated[Architecture, Strict(False)]] = Field(
        default_factory=lambda: [Architecture.X86_64], max_length=len(Architecture)
    )
    notify: SubscriptionNotify | None = None
    description: str | None = Field(default=None, max_length=LAMBDA_DESCRIPTION_MAX)

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: list[str]) -> list[str]:
        # The same rules as a build; stored in canonical (sorted, normalised) form.
        return [str(spec) for spec in parse_packages(value)]

    @field_validator("architectures")
    @classmethod
    def _architectures(cls, value: list[Architecture]) -> list[Architecture]:
        if not value:
            raise ValueError("must name at least one architecture (x86_64, arm64)")
        if len(set(value)) != len(value):
            raise ValueError("lists an architecture more than once")
        return sorted(value, key=lambda a: a.value)


class Subscription(BaseModel):
    """A subscription as stored under ``SUB#<id>`` and returned by the API."""

    subscription_id: str
    packages: list[str] = Field(default_factory=list)
    architectures: list[Architecture]
    notify: SubscriptionNotify | None = None
    description: str | None = None
    source: Source = "api"
    created_by: str | None = None
    created_at: str = Field(default_factory=utcnow)

    def notify_target(self) -> NotifyTarget | None:
        if self.notify is None:
            return None
        return NotifyTarget(channel_id=self.notify.channel_id, team_id=self.notify.team_id)
