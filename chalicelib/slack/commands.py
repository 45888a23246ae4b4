"""Command text -> the models the HTTP API validates with, so both give the same reasons.

build VERSION [PACKAGE ...] [x86_64|arm64] [layer=NAME] [description="..."] [--force]
status BUILD_ID
list [STATUS] [LIMIT]
layers [VERSION] [x86_64|arm64]
help
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.errors import RequestInvalidError, request_invalid
from chalicelib.models import (
    MAX_NAME,
    MAX_URL,
    Architecture,
    BuildRequest,
    BuildStatus,
    LayersQuery,
    ListQuery,
)
from chalicelib.subscriptions import SubscriptionNotify, SubscriptionRequest

Subcommand = Literal[
    "build", "status", "list", "layers", "subscribe", "subscriptions", "unsubscribe", "help"
]
SUBCOMMANDS: tuple[Subcommand, ...] = (
    "build",
    "status",
    "list",
    "layers",
    "subscribe",
    "subscriptions",
    "unsubscribe",
    "help",
)
# Where Slack's response_url points (commercial and GovSlack). Checked so that a leaked
# signing secret cannot make the Notify step POST to arbitrary hosts.
RESPONSE_URL_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
# `key=value` options of `build`; `name==1.2` (a pinned package) is not one.
_OPTION_RE = re.compile(r"^([a-z_]+)=(?!=)(.*)$", re.DOTALL)
_OPTION_ALIASES = {"arch": "architecture", "layer": "layer_name"}
_ARCHITECTURES = {a.value for a in Architecture}
# Build ids are Step Functions execution names: at most 80 of these characters.
_BUILD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
MAX_SLACK_TEXT = 12_000


class SlashCommand(BaseModel):
    """The form Slack posts (only the fields rlayer uses)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    command: str = Field(default="/rlayer", max_length=32)  # Slack's own limit
    # The whole form is at most 16 KiB (the route's limit): room for 200 pinned packages.
    text: str = Field(default="", max_length=MAX_SLACK_TEXT)
    team_id: str = Field(max_length=MAX_NAME)
    channel_id: str = Field(max_length=MAX_NAME)
    user_id: str = Field(max_length=MAX_NAME)
    user_name: str | None = Field(default=None, max_length=MAX_NAME)
    response_url: str | None = Field(default=None, max_length=MAX_URL)

    @field_validator("response_url")
    @classmethod
    def _response_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or parts.hostname not in RESPONSE_URL_HOSTS:
            raise ValueError("must be a Slack https://hooks.slack.com/ URL")
        return value

    @classmethod
    def from_form(cls, body: bytes) -> SlashCommand:
        try:
            form = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise RequestInvalidError("the form body is not UTF-8", field="body") from exc
        try:
            return cls.model_validate({key: values[0] for key, values in form.items()})
        except ValidationError as exc:
            raise request_invalid(exc) from exc


@dataclass(frozen=True)
class Parsed:
    name: Subcommand
    args: list[str] = field(default_factory=list)


def split(text: str) -> Parsed:
    """Subcommand and arguments; quotes group words as in a shell (no expansion)."""
    try:
        words = shlex.split(text.strip())
    except ValueError as exc:  # an unclosed quote
        raise RequestInvalidError(f"text: {exc}", field="text") from exc
    if not words:
        return Parsed("help")
    head = words[0].lower()
    for name in SUBCOMMANDS:
        if head == name:
            return Parsed(name, words[1:])
    raise RequestInvalidError(f"unknown subcommand {words[0]!r}", field="subcommand")


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise request_invalid(exc) from exc


def _set_once(data: dict[str, Any], key: str, value: Any) -> None:
    if key in data:
        raise RequestInvalidError(f"{key}: given more than once", field=key)
    data[key] = value


def build_request(args: list[str]) -> BuildRequest:
    data: dict[str, Any] = {}
    packages: list[str] = []
    for word in args:
        if word.startswith("--") and len(word) > 2:
            key, eq, value = word[2:].partition("=")
            word = key.replace("-", "_") + eq + value
            if not eq:
                # A flag is a field set to true: --force, or an unknown field rejected below.
                _set_once(data, _OPTION_ALIASES.get(word, word), True)
                continue
        option = _OPTION_RE.match(word)
        if option:
            key = _OPTION_ALIASES.get(option.group(1), option.group(1))
            _set_once(data, key, option.group(2))
        elif word.lower() in _ARCHITECTURES:
            _set_once(data, "architecture", word.lower())
        elif "r_version" not in data:
            data["r_version"] = word
        else:
            # "jsonlite, data.table" and "jsonlite,data.table" both mean two packages.
            packages += [p for p in word.split(",") if p]
    if packages:
        _set_once(data, "packages", packages)
    request: BuildRequest = _validated(BuildRequest, data)
    return request


def build_id(args: list[str]) -> str:
    if len(args) != 1:
        raise RequestInvalidError("build_id: give exactly one build id", field="build_id")
    if not _BUILD_ID_RE.match(args[0]):
        raise RequestInvalidError(f"build_id: {args[0]!r} is not a build id", field="build_id")
    return args[0]


def list_query(args: list[str]) -> ListQuery:
    data: dict[str, Any] = {}
    statuses = {s.value for s in BuildStatus}
    for word in args:
        if word.isdigit():
            _set_once(data, "limit", int(word))
        elif word.upper() in statuses:
            _set_once(data, "status", word.upper())
        else:
            raise RequestInvalidError(
                f"status: {word!r} is neither a status ({', '.join(sorted(statuses))}) "
                "nor a number of builds",
                field="status",
            )
    query: ListQuery = _validated(ListQuery, data)
    return query


def layers_query(args: list[str]) -> LayersQuery:
    data: dict[str, Any] = {}
    for word in args:
        if word.lower() in _ARCHITECTURES:
            _set_once(data, "architecture", word.lower())
        else:
            _set_once(data, "r_version", word)
    query: LayersQuery = _validated(LayersQuery, data)
    return query


def subscription_request(args: list[str], *, channel_id: str, team_id: str) -> SubscriptionRequest:
    """``subscribe jsonlite data.table [x86_64] [arm64]``: results go to this channel."""
    packages: list[str] = []
    architectures: list[str] = []
    for word in args:
        if word.lower() in _ARCHITECTURES:
            architectures.append(word.lower())
        else:
            packages += [p for p in word.split(",") if p]
    data: dict[str, Any] = {
        "packages": packages,
        "notify": SubscriptionNotify(channel_id=channel_id, team_id=team_id),
    }
    if architectures:
        data["architectures"] = architectures
    request: SubscriptionRequest = _validated(SubscriptionRequest, data)
    return request


def subscription_id(args: list[str]) -> str:
    if len(args) != 1 or not _BUILD_ID_RE.match(args[0]):
        raise RequestInvalidError(
            "subscription_id: give exactly one subscription id", field="subscription_id"
        )
    return args[0]
